"""The ``loadtest`` options shared by ``cqrs-lab loadtest`` and ``cqrs-lab twin``: the
arguments (:func:`load_args`), the :class:`LoadTestOptions` they describe (:func:`options`)
and the open-model levels the twin runs (:func:`run_levels`).

>>> import argparse
>>> p = argparse.ArgumentParser(); load_args(p); _ = p.add_argument("--out")
>>> args = p.parse_args(["--rate", "50", "--duration", "5",
...                      "--domain", "cqrs_lab.domains.inventory", "--mix", "reserve=1"])
>>> options(args).model, options(args).traffic().mix
('open', {'reserve': 1.0})
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cqrs_lab.core import DELIVERY_POLICIES
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.faults import parse_fault
from cqrs_lab.load.generator import per_task
from cqrs_lab.load.runner import USER_CLASSES, LoadTestOptions, run_loadtest
from cqrs_lab.load.shapes import SHAPES

__all__ = ["load_args", "options", "run_levels"]


def options(
    args: argparse.Namespace, out: str | None = None, rate: float | None = None
) -> LoadTestOptions:
    """The :class:`LoadTestOptions` the parsed ``loadtest`` arguments describe."""
    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    return LoadTestOptions(
        users=args.users,
        rate=rate if rate is not None else args.rate,
        shape=args.shape,
        duration=args.duration,
        processes=args.processes,
        host=args.host,
        out=out if out is not None else args.out,
        faults=tuple(parse_fault(f) for f in args.faults),
        classes=classes,
        domain=args.domain,
        keys=args.keys,
        zipf_s=args.zipf_s,
        mix=args.mix,
        params=args.params,
        think=args.think,
        delivery=args.delivery,
        store=args.store,
        server_workers=args.workers,
        admin_token=args.admin_token,
        seed=args.seed,
        audit=not args.no_audit,
        locustfile=args.locustfile,
        pin=not args.no_pin,
        server_cpus=args.server_cpus,
        server_cpu_period=args.server_cpu_period,
    )


def run_levels(args: argparse.Namespace, rates: list[float], base: Path) -> list[Path]:
    """Run one open-model load test per level into ``base/commands-R`` (for the twin), where
    R is the offered commands/s the level aims at (``--rate`` is set to the user tasks/s
    that send them: R over the commands per task of ``--classes``); a rate given again is a
    repeat, in ``base/commands-R-2``, ``-3``, ... (the twin pools repeats)."""
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    per = per_task(classes)[0]
    if not per > 0:
        raise ConfigError(
            f"--classes {args.classes}: none of these user classes sends commands; the twin "
            "needs WriterUser or SessionUser"
        )
    outs = []
    seen: dict[float, int] = {}
    for rate in rates:
        if not rate > 0:
            raise ConfigError(f"--measure {rate:g}: offered commands/s, > 0")
        seen[rate] = n = seen.get(rate, 0) + 1
        name = f"commands-{rate:g}" + (f"-{n}" if n > 1 else "")
        if (base / name / "records").is_dir():
            raise ConfigError(
                f"--measure {rate:g}: {base / name} holds a level run before; judge what is "
                f"there with `cqrs-lab twin {base}`, or measure into a new folder"
            )
        out, code = run_loadtest(options(args, out=str(base / name), rate=rate / per))
        if code != 0:
            raise ConfigError(
                f"the load test at {rate:g} commands/s failed (exit {code}); see {out}"
            )
        outs.append(out)
    return outs


def load_args(p: Any) -> None:
    p.add_argument("--users", type=int, default=None, help="closed model: users (or the pool)")
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open model: user tasks started per second, all users together (a writer's task "
        "is one command, a reader's one read, a session user's a command and two reads: with "
        "the default classes 0.6 commands and 1.2 requests per task; the summary shows the "
        "offered commands/s and requests/s) (default: closed model)",
    )
    p.add_argument("--shape", choices=SHAPES[1:], default=None, help="vary the load over time")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    p.add_argument("--processes", type=int, default=1, help=">1: Locust master and K workers")
    p.add_argument("--host", default=None, help="an existing server (default: start one)")
    p.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="AT:ACTION",
        help="e.g. 10:crash=balances, 5:duplicate=0.05,drop=0.01, 20:clear (views of --domain)",
    )
    p.add_argument(
        "--classes",
        default=",".join(USER_CLASSES),
        help=f"Locust user classes, comma list, from {', '.join(USER_CLASSES)}",
    )
    p.add_argument(
        "--domain",
        default="cqrs_lab.domains.bank",
        help="the domain served and loaded: a module or module:object",
    )
    p.add_argument(
        "--keys",
        "--accounts",
        dest="keys",
        type=int,
        default=None,
        help="keys the load touches (default: the workload's population)",
    )
    p.add_argument("--zipf-s", type=float, default=1.1, help="key skew (0: uniform)")
    p.add_argument(
        "--mix",
        default="",
        metavar="KIND=WEIGHT,...",
        help="command kinds of --domain and their weights (default: the workload's mix)",
    )
    p.add_argument(
        "--params",
        default="",
        metavar="NAME=NUMBER,...",
        help="workload parameters (default: the workload's declared defaults)",
    )
    p.add_argument(
        "--locustfile",
        default=None,
        help="your own Locust file (default: the packaged users; yours must accept their "
        "options, e.g. by importing cqrs_lab.load.locustfile)",
    )
    p.add_argument("--think", type=float, default=1.0, help="closed model: mean think time, s")
    p.add_argument(
        "--delivery",
        choices=DELIVERY_POLICIES,
        default="effectively-once",
        help="delivery semantics of the local server's projections",
    )
    p.add_argument(
        "--store",
        default="memory",
        help="the local server's store: memory, sqlite:PATH or postgresql://... "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the local server's processes (serve --workers; PostgreSQL only; > 1 also runs "
        "the sagas in `cqrs-lab project`) (default: %(default)s)",
    )
    p.add_argument(
        "--admin-token", default=None, help="for --host: its admin token (default: none)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the users' random choices")
    p.add_argument("--no-audit", action="store_true", help="skip the final lost-write audit")
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the local server to one CPU and Locust to the others",
    )
    p.add_argument(
        "--server-cpus",
        type=float,
        default=None,
        metavar="CORES",
        help="run the server under a CPU limit of CORES (a container's --cpus), e.g. so one "
        "generator CPU can drive it past its knee (a Linux cgroup: needs root or a container "
        "with its cgroups) (default: no limit)",
    )
    p.add_argument(
        "--server-cpu-period",
        type=float,
        default=0.01,
        metavar="SECONDS",
        help="the CPU limit's period: a throttled server waits at most this long for its "
        "next quota (default: %(default)s)",
    )
