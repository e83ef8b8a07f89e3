"""W3 — HTTP serving: the lab's app against a bare Starlette app, same server, same wrk, one run.

Both run as one uvicorn worker (uvloop, httptools) on 127.0.0.1 and are loaded by
``wrk -t1 -c50 -d15s`` (generator and server share the machine's cores): a query
(``GET /accounts/1``) and a command (``POST /accounts/1/deposits``). Figures: requests/s and
p99 for each, the ratio to the peer, and the lab's projection lag while the command load runs.
Needs ``wrk`` (Debian: ``apt-get update && apt-get install -y wrk``); without it, one JSON
line says so. ``W3_DURATION`` (seconds, default 15) shortens a trial run; ``W3_ROUNDS``
(default 1) repeats peer and lab in alternating order and reports medians, for a machine
that other work shares.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DURATION = int(os.environ.get("W3_DURATION", "15"))
ROUNDS = int(os.environ.get("W3_ROUNDS", "1"))
INSTALL = "apt-get update && apt-get install -y wrk"
LAB = "cqrs_lab http (cqrs-lab serve: one route table, FastAPI for operations; memory store)"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


class Server:
    """A server subprocess on a free port, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, argv: list[str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*argv, "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if _request(self.url + "/livez")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server {argv} did not come up on port {self.port}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wrk(url: str, script: str | None = None) -> dict[str, float]:
    """Run wrk; returns requests/s, p99 (ms) and non-2xx count."""
    argv = ["wrk", "-t1", "-c50", f"-d{DURATION}s", "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p99_ms": p99, "non_2xx": float(bad.group(1)) if bad else 0.0}


def _post_script(directory: str) -> str:
    path = Path(directory) / "deposit.lua"
    path.write_text(
        'wrk.method = "POST"\nwrk.body = \'{"amount": 1}\'\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return str(path)


def _lag_sampler(url: str, stop: threading.Event, out: dict[str, float]) -> None:
    while not stop.wait(0.5):
        try:
            _, data = _request(url + "/projections")
        except OSError:
            continue
        for p in data["projections"]:
            out["backlog"] = max(out.get("backlog", 0), p["backlog"])
            out["lag_seconds"] = max(out.get("lag_seconds", 0.0), p["lag_seconds"])


def measure(argv: list[str], lab: bool, script: str) -> dict[str, Any]:
    server = Server(argv)
    try:
        status, _ = _request(server.url + "/accounts", {"account_id": "1", "opening_balance": 0})
        if status != 201:
            raise RuntimeError(f"opening the account answered {status}")
        get = wrk(server.url + "/accounts/1")
        lag: dict[str, float] = {}
        stop = threading.Event()
        sampler = threading.Thread(target=_lag_sampler, args=(server.url, stop, lag))
        if lab:
            sampler.start()
        post = wrk(server.url + "/accounts/1/deposits", script)
        stop.set()
        if lab:
            sampler.join()
            time.sleep(1.0)
            _, after = _request(server.url + "/projections")
            lag["final_backlog"] = max(p["backlog"] for p in after["projections"])
        _, account = _request(server.url + "/accounts/1")
        return {"get": get, "post": post, "lag": lag, "balance": account and account["balance"]}
    finally:
        server.stop()


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"lag": runs[-1]["lag"], "balance": runs[-1]["balance"]}
    for kind in ("get", "post"):
        out[kind] = {
            k: statistics.median(r[kind][k] for r in runs) for k in ("rps", "p99_ms", "non_2xx")
        }
    out["lag"] = {k: max(r["lag"].get(k, 0) for r in runs) for k in runs[-1]["lag"]}
    return out


def run() -> Iterator[dict[str, Any]]:
    if shutil.which("wrk") is None:
        yield {
            "workload": "W3",
            "implementation": "cqrs_lab http",
            "metric": "skipped",
            "value": None,
            "unit": None,
            "note": f"wrk is not installed; install it with: {INSTALL}",
        }
        return
    py = sys.executable
    peers: list[dict[str, Any]] = []
    labs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = _post_script(tmp)
        for r in range(ROUNDS):
            order = [(False, peers), (True, labs)]
            for lab_side, into in order if r % 2 == 0 else order[::-1]:
                argv = [py, "-m", "cqrs_lab.cli", "serve"] if lab_side else [
                    py, "-m", "benchmarks.peers.starlette_w3"]  # fmt: skip
                into.append(measure(argv, lab_side, script))
    peer, lab = _median(peers), _median(labs)
    per_round = {
        kind: {
            "lab_rps": [round(r[kind]["rps"]) for r in labs],
            "peer_rps": [round(r[kind]["rps"]) for r in peers],
        }
        for kind in ("get", "post")
    }
    for kind, metric in (("get", "query GET /accounts/1"), ("post", "command POST deposit")):
        a, b = lab[kind], peer[kind]
        yield {
            "workload": "W3",
            "implementation": LAB,
            "metric": f"{metric} req/s",
            "value": round(a["rps"]),
            "unit": "req/s",
            "peer": "bare Starlette",
            "peer_value": round(b["rps"]),
            "ratio": round(a["rps"] / b["rps"], 3),
            "rounds": ROUNDS,
            **per_round[kind],
            "target": 0.7 if kind == "get" else 0.5,
            "non_2xx": a["non_2xx"],
            "peer_non_2xx": b["non_2xx"],
        }
        yield {
            "workload": "W3",
            "implementation": LAB,
            "metric": f"{metric} p99",
            "value": a["p99_ms"],
            "unit": "ms",
            "peer": "bare Starlette",
            "peer_value": b["p99_ms"],
            "ratio": round(a["p99_ms"] / b["p99_ms"], 3) if b["p99_ms"] else None,
        }
    yield {
        "workload": "W3",
        "implementation": LAB,
        "metric": "projection lag during command load (max)",
        "value": lab["lag"].get("lag_seconds"),
        "unit": "s",
        "max_backlog_events": lab["lag"].get("backlog"),
        "backlog_1s_after_load": lab["lag"].get("final_backlog"),
        "deposits_in_balance": lab["balance"],
    }


if __name__ == "__main__":
    for figure in run():
        print(json.dumps(figure), flush=True)
