"""W3 on the PostgreSQL store: ``cqrs-lab serve --workers 2`` against one worker, same wrk.

The server (the bank) serves a fresh database holding 1,000 open accounts; wrk (``-t1 -c50``)
sends queries (``GET /accounts/{random 0..999}``), then commands (a deposit of 1 to a random
account; spread over accounts so the two processes rarely race for one stream). The two
configurations alternate on the same cluster; generator and servers share the machine's cores.

When the two processes do race (both decided a deposit on one account before either
committed), the loser's append finds the stream moved. The client sent no ``If-Match``, so the
server decides that command again on the stream as it now is instead of answering ``409
concurrent write`` (which it did, 16-33 times per 10 s, before it retried); ``non_2xx`` counts
what is left, and should be 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.w3_http import Server

DURATION = int(os.environ.get("W4_PG_HTTP_SECONDS", "10"))
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
SCRIPTS = {
    "get": 'request = function() return wrk.format("GET", "/accounts/" .. math.random(0, 999)) '
    "end\n",
    "post": 'local h = {["Content-Type"] = "application/json"}\n'
    'request = function() return wrk.format("POST", "/accounts/" .. math.random(0, 999) .. '
    '"/deposits", h, \'{"amount": 1}\') end\n',
}


def wrk(url: str, script: str) -> dict[str, float]:
    """requests/s, p99 (s) and the count of non-2xx answers of one wrk run."""
    argv = ["wrk", "-t1", "-c50", f"-d{DURATION}s", "--latency", "-s", script, url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if rps is None or p99 is None:
        raise RuntimeError(f"wrk printed no figures: {out[-500:]}")
    return {
        "rps": float(rps.group(1)),
        "p99_s": float(p99.group(1)) * _UNITS[p99.group(2)] / 1e3,
        "non_2xx": float(bad.group(1)) if bad else 0.0,
    }


def _ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready within {seconds:.0f} s")


def measure(store_url: str, workers: int) -> dict[str, dict[str, float]]:
    """One server with ``workers`` processes on ``store_url``: wrk's figures per request."""
    argv = [sys.executable, "-m", "cqrs_lab.cli", "serve", "--store", store_url,
            "--workers", str(workers)]  # fmt: skip
    server = Server(argv)
    try:
        _ready(server.url)
        out: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for kind, text in SCRIPTS.items():
                script = Path(tmp) / f"{kind}.lua"
                script.write_text(text)
                out[kind] = wrk(server.url, str(script))
        return out
    finally:
        server.stop()


def figures(runs: dict[int, list[dict[str, dict[str, float]]]]) -> list[dict[str, Any]]:
    """One figure per request kind and worker count (medians over the runs)."""
    import statistics

    out = []
    for kind, metric in (("get", "query GET /accounts/{id}"), ("post", "command POST deposit")):
        med = {
            w: {k: statistics.median(r[kind][k] for r in rs) for k in ("rps", "p99_s", "non_2xx")}
            for w, rs in runs.items()
        }
        one, two = med[1], med[2]
        for w, m in med.items():
            extra: dict[str, Any] = {}
            if w == 2:
                extra = {"peer": "--workers 1", "peer_value": round(one["rps"]),
                         "ratio": round(two["rps"] / one["rps"], 2)}  # fmt: skip
            out.append({
                "metric": f"W3 {metric} req/s", "implementation": f"cqrs-lab serve --workers {w}",
                "value": round(m["rps"]), "unit": "req/s", "p99_s": round(m["p99_s"], 4),
                "non_2xx": m["non_2xx"], "repeats": len(runs[w]), "seconds": DURATION, **extra,
            })  # fmt: skip
    return out
