"""What ``cqrs-lab loadtest`` is asked for (:class:`LoadTestOptions`), checked before
anything starts: the domain, its mix, keys and parameters, the fault steps' view names, the
user classes, the rate, duration and processes.

>>> opts = LoadTestOptions(rate=50.0, duration=5.0, domain="cqrs_lab.domains.inventory")
>>> opts.model, opts.pool_size(), opts.traffic().keys
('open', 13, 200)
>>> LoadTestOptions(mix="steal=2")
Traceback (most recent call last):
...
cqrs_lab.errors.ConfigError: --mix: unknown command kind 'steal'; this domain's kinds: ...
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.cpu_limit import check_cpu_limit
from cqrs_lab.load.faults import FaultStep, check_fault_names
from cqrs_lab.load.traffic import Traffic

__all__ = ["USER_CLASSES", "LoadTestOptions", "default_locustfile"]

#: the most users one Locust process is given (``--users``; more with ``--processes``)
USERS_PER_PROCESS = 5000

#: the Locust user classes of :mod:`cqrs_lab.load.locustfile`
USER_CLASSES = ("WriterUser", "ReaderUser", "SessionUser")


def default_locustfile() -> Path:
    """The packaged Locust users (:mod:`cqrs_lab.load.locustfile`), installed or not."""
    return Path(__file__).resolve().parent / "locustfile.py"


@dataclass(frozen=True)
class LoadTestOptions:
    """What ``cqrs-lab loadtest`` was asked for; bad values raise :class:`ConfigError`."""

    users: int | None = None
    rate: float | None = None
    shape: str | None = None
    duration: float = 30.0
    processes: int = 1
    host: str | None = None
    out: str | None = None
    faults: tuple[FaultStep, ...] = ()
    classes: tuple[str, ...] = USER_CLASSES
    #: the domain served and loaded: a module ("cqrs_lab.domains.inventory") or "mod:object"
    domain: str = "cqrs_lab.domains.bank"
    #: keys the load touches (None: the workload's default population)
    keys: int | None = None
    zipf_s: float = 1.1
    #: KIND=WEIGHT,... over the domain's kinds ("": the workload's default mix)
    mix: str = ""
    #: the workload's parameters, NAME=NUMBER,... ("": their defaults)
    params: str = ""
    think: float = 1.0
    delivery: str = "effectively-once"
    #: the local server's store (``memory``, ``sqlite:PATH``, ``postgresql://...``) and its
    #: processes (``serve --workers``; > 1 also starts ``cqrs-lab project`` for the sagas)
    store: str = "memory"
    server_workers: int = 1
    admin_token: str | None = None
    seed: int = 0
    audit: bool = True
    locustfile: str | None = None
    pin: bool = True
    #: run the local server under a CPU limit of this many cores (a container's --cpus),
    #: CFS period in seconds (:mod:`cqrs_lab.load.cpu_limit`); None: no limit
    server_cpus: float | None = None
    server_cpu_period: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict)
    #: the bank's name for ``keys`` (kept for existing callers)
    accounts: InitVar[int | None] = None

    def __post_init__(self, accounts: int | None) -> None:
        if accounts is not None:
            if self.keys is not None and self.keys != accounts:
                raise ConfigError(f"keys={self.keys} and accounts={accounts}: give one")
            object.__setattr__(self, "keys", accounts)
        most = USERS_PER_PROCESS * max(self.processes, 1)
        if self.users is not None and not 1 <= self.users <= most:
            raise ConfigError(
                f"--users {self.users}: 1 to {most} ({USERS_PER_PROCESS} per Locust process, "
                "--processes to add some: one process drives no more, the users it holds "
                "would wait on its CPU, not on the server)"
            )
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigError(f"--rate {self.rate}: user tasks started per second, > 0")
        if not 0 < self.duration <= 24 * 3600:
            raise ConfigError(f"--duration {self.duration}: seconds in (0, 86400]")
        if not 1 <= self.processes <= 64:
            raise ConfigError(f"--processes {self.processes}: 1 to 64 Locust processes")
        bad = [c for c in self.classes if c not in USER_CLASSES]
        if bad or not self.classes:
            raise ConfigError(f"user classes {bad or '[]'}: choose from {', '.join(USER_CLASSES)}")
        if self.host is not None and not self.host.startswith(("http://", "https://")):
            raise ConfigError(f"--host {self.host!r}: a URL such as http://127.0.0.1:8000")
        if type(self.server_workers) is not int or not 1 <= self.server_workers <= 64:
            raise ConfigError(f"--workers {self.server_workers}: 1 to 64 server processes")
        if self.server_workers > 1 and not self.store.startswith("postgres"):
            raise ConfigError(
                f"--workers {self.server_workers} with --store {self.store!r}: memory and "
                f"SQLite are one-process stores; pass --store postgresql://..."
            )
        if self.host is not None:  # a server of the user's: what it is cannot be chosen here
            given = {"--store": self.store != "memory", "--workers": self.server_workers > 1,
                     "--delivery": self.delivery != "effectively-once"}  # fmt: skip
            named = [flag for flag, on in given.items() if on]
            if named:
                raise ConfigError(
                    f"{', '.join(named)} with --host {self.host}: those choose the server a load "
                    "test starts; yours runs as it was started (drop them, or drop --host)"
                )
        if self.server_cpus is not None:
            if self.host is not None:
                raise ConfigError(
                    f"--server-cpus {self.server_cpus:g} with --host {self.host}: the limit is "
                    "for the server a load test starts; limit yours where it runs"
                )
            check_cpu_limit(self.server_cpus, self.server_cpu_period)
        if self.locustfile is not None and not Path(self.locustfile).is_file():
            raise ConfigError(f"--locustfile {self.locustfile}: no such file")
        traffic = self.traffic()  # the domain, --mix, --keys, --params, --zipf-s
        check_fault_names(self.faults, traffic.domain)
        late = [f for f in self.faults if f.at >= self.duration]
        if late:
            raise ConfigError(
                f"--faults {late[0].at:g}:...: the load lasts --duration {self.duration:g} s; a "
                "step at or after its end is never sent (give seconds under the duration)"
            )

    def traffic(self) -> Traffic:
        """What the users send, validated against the domain (ConfigError otherwise)."""
        return Traffic.build(
            self.domain, keys=self.keys, mix=self.mix, params=self.params, zipf_s=self.zipf_s
        )

    @property
    def model(self) -> str:
        return "open" if self.rate is not None else "closed"

    def cpu_split(self) -> tuple[set[int], set[int]] | None:
        """With ``pin`` and a local server on a Linux machine with at least 2 usable CPUs and
        util-linux's ``taskset`` (which starts each process pinned): (the server's CPU, the
        generator's CPUs), so neither steals the other's core and their scheduling noise
        stays out of each other's measurements; else None."""
        if not self.pin or self.host is not None or not hasattr(os, "sched_getaffinity"):
            return None
        if shutil.which("taskset") is None:
            return None
        cpus = sorted(os.sched_getaffinity(0))
        return ({cpus[0]}, set(cpus[1:])) if len(cpus) >= 2 else None

    def pool_size(self) -> int:
        """Users: as given, else (open model) a pool of one per 4 tasks/s of the rate: free users
        take the next send time, so sends keep to the schedule while fewer are in flight."""
        if self.users is not None:
            return self.users
        if self.rate is not None:
            return open_pool(self.rate)
        return 10


def open_pool(tasks_per_s: float) -> int:
    """The open model's users at ``tasks_per_s``: one per 4 tasks/s, 10 to 500."""
    return max(10, min(500, math.ceil(tasks_per_s / 4)))
