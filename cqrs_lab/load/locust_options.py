"""The Locust users' own command-line options (``--domain``, ``--rate``, ``--mix``, ...)
and the traffic they describe, without Locust: the locustfile registers :func:`add_options`
on Locust's ``init_command_line_parser`` event, and builds its traffic with
:func:`traffic_of`.

>>> parser = argparse.ArgumentParser()
>>> add_options(parser)
>>> opts = parser.parse_args(["--domain", "cqrs_lab.domains.inventory", "--keys", "30"])
>>> traffic_of(opts).keys, opts.rate
(30, 0.0)
"""

from __future__ import annotations

import argparse
from typing import Any

from cqrs_lab.load.traffic import Traffic

__all__ = ["DEFAULT_DOMAIN", "add_options", "traffic_of"]

#: the domain the users load when ``--domain`` is not given
DEFAULT_DOMAIN = "cqrs_lab.domains.bank"


def add_options(parser: Any) -> None:
    """Add the lab's options to Locust's parser (``init_command_line_parser``)."""
    parser.add_argument("--domain", default=DEFAULT_DOMAIN, help="module or module:object")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="open model: user tasks/s in total (0: closed)"
    )
    parser.add_argument("--think", type=float, default=1.0, help="closed model: mean think, s")
    parser.add_argument("--keys", type=int, default=0, help="keys used (0: the workload's)")
    parser.add_argument("--zipf-s", type=float, default=1.1, help="Zipf skew (0: uniform)")
    parser.add_argument("--mix", default="", help="KIND=WEIGHT,... (default: the workload's)")
    parser.add_argument("--params", default="", help="workload parameters NAME=NUMBER,...")
    parser.add_argument(
        "--rw-wait", type=float, default=5.0, help="seconds the server may wait for a token read"
    )
    parser.add_argument("--records-dir", default="", help="write raw requests and history here")
    parser.add_argument("--lab-seed", type=int, default=0, help="seed of the generators")
    parser.add_argument("--skip-setup", action="store_true", help="the keys already exist")
    parser.add_argument(
        "--lab-duration",
        type=float,
        default=0.0,
        help="seconds of load, timed from the test's start on a fresh clock (0: -t alone)",
    )
    # filled in by the master from -u and -t: Locust forwards only custom options to workers
    parser.add_argument("--lab-users", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--lab-run-time", type=float, default=0.0, help=argparse.SUPPRESS)


def traffic_of(opts: Any) -> Traffic:
    """The run's traffic from the parsed Locust options (ConfigError if they are wrong)."""
    return Traffic.build(
        opts.domain,
        keys=opts.keys or None,
        mix=opts.mix,
        params=opts.params,
        zipf_s=opts.zipf_s,
    )
