"""What a load-test user sends, as plain data: a domain's workload turned into HTTP requests.

:class:`Traffic` holds what every user of a run shares (the domain, its workload, the number
of keys, the mix and the workload's parameters), validated before Locust starts.
:class:`Generator` is one user's seeded source of commands and queries: one
:class:`~cqrs_lab.core.Draw` per user, ``draw.index`` from the Zipf (or uniform) key chooser,
``draw.seq`` from a source unique across users and processes. Requests follow the generic
HTTP contract: ``POST /commands/{CommandClass}`` with the command's fields as JSON and
``GET /queries/{QueryClass}?field=value``. Nothing here imports Locust.

>>> t = Traffic.build("cqrs_lab.domains.inventory", keys=3, mix="reserve=1")
>>> g = t.generator(seed=0, user=1, seqs=iter(range(100, 200)))
>>> w = g.write()
>>> w.kind, w.key, w.path, w.body
('reserve', 'sku-1', '/commands/Reserve', {'sku': 'sku-1', 'order_id': 'o100', 'quantity': 3})
>>> r = g.read(w.index)
>>> r.view, r.path, r.params
('stock', '/queries/GetStock', {'sku': 'sku-1'})
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import random
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cqrs_lab.core import Domain, Draw, Workload, load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.workload import CommandMix, ZipfKeys, parse_mix

__all__ = [
    "Read",
    "Traffic",
    "Write",
    "command_body",
    "create_keys",
    "parse_params",
    "query_params",
]


def command_body(command: Any) -> dict[str, Any]:
    """The JSON body of ``POST /commands/{name}``: the command dataclass's fields."""
    return {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}


def query_params(query: Any, *, required_only: bool = False) -> dict[str, str]:
    """The query string of ``GET /queries/{name}``: the query's fields that are set
    (``required_only``: only the fields without a default, the query's widest answer).

    >>> from cqrs_lab.domains.bank.views import GetStatement
    >>> query_params(GetStatement("acct-1", 20))
    {'account_id': 'acct-1', 'limit': '20'}
    >>> query_params(GetStatement("acct-1", 20), required_only=True)
    {'account_id': 'acct-1'}
    """
    out: dict[str, str] = {}
    for f in dataclasses.fields(query):
        value = getattr(query, f.name)
        has_default = f.default is not dataclasses.MISSING
        if value is None or (required_only and has_default):
            continue
        out[f.name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def parse_params(text: str) -> dict[str, int | float]:
    """``"opening_balance=10000,max_amount=50"`` -> numbers (checked later by the workload).

    >>> parse_params("opening_balance=10000, max_amount=2.5")
    {'opening_balance': 10000, 'max_amount': 2.5}
    """
    out: dict[str, int | float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        try:
            value: int | float = int(raw) if raw.strip().lstrip("-").isdigit() else float(raw)
        except ValueError:
            value = float("nan")
        if not sep or value != value:
            raise ConfigError(f"--params {part!r}: give NAME=NUMBER, e.g. max_amount=50")
        out[name.strip()] = value
    return out


@dataclass(frozen=True)
class Write:
    """One command to send: its kind, key (index and id), path and JSON body."""

    kind: str
    index: int
    key: str
    path: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Read:
    """One query to send: the view that answers it, its key, path and query parameters."""

    view: str
    index: int
    key: str
    path: str
    params: dict[str, str]


@dataclass(frozen=True)
class Traffic:
    """What the users of one run share; :meth:`build` validates it (ConfigError)."""

    domain: Domain
    workload: Workload
    keys: int
    mix: Mapping[str, float]
    params: Mapping[str, Any]
    zipf_s: float = 1.1

    @classmethod
    def build(
        cls,
        domain: str | Domain,
        *,
        keys: int | None = None,
        mix: str = "",
        params: str | Mapping[str, Any] = "",
        zipf_s: float = 1.1,
    ) -> Traffic:
        """The traffic of ``domain`` (a reference or a Domain): ``keys`` (default: the
        workload's default population), ``mix`` text over its kinds (empty: its default mix)
        and ``params`` over its parameters (empty: their defaults)."""
        d = load_domain(domain)
        w = d.workload
        if w is None:
            raise ConfigError(
                f"domain {d.name!r} declares no workload; a load test needs its command mix "
                "and samplers (Domain(workload=Workload(...)))"
            )
        n = w.default_population if keys is None else keys
        if n < w.min_population:
            raise ConfigError(
                f"--keys {n}: domain {d.name!r} needs at least {w.min_population} {w.population}"
            )
        kinds = [k.name for k in w.kinds]
        weights = parse_mix(mix, kinds) if mix.strip() else w.mix
        given = parse_params(params) if isinstance(params, str) else dict(params)
        ZipfKeys(n, zipf_s, random.Random(0))  # validates the skew
        return cls(d, w, n, weights, w.resolve(given), zipf_s)

    def setup_writes(self) -> Iterator[Write]:
        """The commands that create every key before the run (none without ``setup``)."""
        if self.workload.setup is None:
            return
        draw = Draw(random.Random(0), self.workload, keys=self.keys, params=self.params)
        for i in range(self.keys):
            draw.index, draw.seq = i, i
            cmd = self.workload.setup(draw)
            yield Write("setup", i, draw.key(), _command_path(cmd), command_body(cmd))

    def audit_reads(self, key: str, index: int) -> list[Read]:
        """One read per workload read of ``key``, with only the query's required fields."""
        draw = Draw(random.Random(0), self.workload, keys=self.keys, params=self.params)
        draw.index = index
        return [
            Read(r.view, index, key, _query_path(q), query_params(q, required_only=True))
            for r in self.workload.reads
            for q in (r.sample(draw),)
        ]

    def generator(self, seed: int | str, user: int, seqs: Iterator[int]) -> Generator:
        """One user's seeded generator; ``seqs`` yields sequence numbers unique in the run."""
        return Generator(self, random.Random(f"{seed}-{user}"), seqs)


class Generator:
    """One user's commands and queries, drawn from its own seeded generator."""

    def __init__(self, traffic: Traffic, rng: random.Random, seqs: Iterator[int]) -> None:
        self.traffic = traffic
        self.rng = rng
        self.seqs = seqs
        self.keys = ZipfKeys(traffic.keys, traffic.zipf_s, rng)
        self.mix = CommandMix(traffic.mix, rng)
        w = traffic.workload
        self.draw = Draw(rng, w, keys=traffic.keys, params=traffic.params)

    def write(self) -> Write:
        """The next command of the mix, on a key drawn by popularity."""
        kind = self.traffic.workload.kind(self.mix())
        d = self.draw
        d.index, d.seq = self.keys.index(), next(self.seqs)
        cmd = kind.sample(d)
        return Write(kind.name, d.index, d.key(), _command_path(cmd), command_body(cmd))

    def read(self, index: int | None = None, view: str | None = None) -> Read | None:
        """A read of the key ``index`` (default: drawn by popularity) through the workload's
        read of ``view`` (default: one of its reads, uniformly); None if it declares none."""
        reads = self.traffic.workload.reads
        if not reads:
            return None
        kind = self.traffic.workload.read_for(view) if view else reads[0]
        if view is None and len(reads) > 1:
            kind = reads[int(self.rng.random() * len(reads))]
        d = self.draw
        d.index = self.keys.index() if index is None else index
        q = kind.sample(d)
        return Read(kind.view, d.index, d.key(), _query_path(q), query_params(q))


def _command_path(command: Any) -> str:
    return f"/commands/{type(command).__name__}"


def _query_path(query: Any) -> str:
    return f"/queries/{type(query).__name__}"


def create_keys(host: str, traffic: Traffic, timeout: float = 10.0) -> int:
    """Send the workload's setup command for every key (409, already there, is fine);
    returns how many were created. Raises :class:`ConfigError` on any other answer."""
    url = urllib.parse.urlsplit(host)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=timeout)
    created = 0
    try:
        for w in traffic.setup_writes():
            conn.request("POST", w.path, json.dumps(w.body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read()[:300].decode("utf-8", "replace")
            if resp.status == 409:
                continue
            if not 200 <= resp.status < 300:
                raise ConfigError(
                    f"creating {traffic.workload.population} {w.key} with POST {w.path} failed: "
                    f"HTTP {resp.status} {text} (does the server serve domain "
                    f"{traffic.domain.name!r}? start it with --domain)"
                )
            created += 1
    finally:
        conn.close()
    return created
