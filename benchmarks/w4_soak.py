"""W4 — soak: the server's memory over a long mixed run, and its restart-to-ready time.

``cqrs-lab serve`` (the bank, one uvicorn worker, on 127.0.0.1) runs a fixed number of
commands, once on the memory store and once on a SQLite file, driven by ``wrk`` with a Lua
script (one thread, 32 connections) that cycles through a mixed workload over a fixed pool
of accounts: of every 10 requests, 3 deposits (2 of them with a fresh ``Idempotency-Key``),
2 withdrawals, 2 transfers (each a new transfer and its saga), 3 reads (two account reads,
one transfer read); every 50th request instead resends an earlier keyed deposit as it was
(a retry, which must be answered from the stored response). The server's resident memory
(``VmRSS`` in ``/proc/PID/status``) is sampled once the run has reached 10%, 50% and 100% of
its commands and the projections have caught up; the figure that matters is the growth from
50% to 100% (goal: under 20%, memory flat after warm-up, with bounded retention).

The transfer reads carry no consistency token, so one may reach the server before its
transfer is visible: a 404 (measured: none to four per run; the two traced came in the
first ~130 requests of a phase, when 32 fresh connections burst into an idle server). The
script names each such transfer, and once the phase has settled the harness asks for it
again the one way that does not depend on the view, which keeps only the newest 10,000
ended transfers (a phase ends some 50,000 transfers later): it requests the same transfer
again, which the engine refuses with 409 when the log has it. The throughput line reports them
(``transfer_reads_404``) and how many the log had (``transfer_reads_404_found_later``: all
of them, or a transfer was lost, and the request just made has requested it anew) beside
wrk's ``non_2xx``, which counts them too.

After the SQLite run the server is stopped (SIGTERM) and started again on the same file:
restart-to-ready is the time from starting the process until ``/readyz`` answers 200. The
read models come back from their latest snapshot (``--snapshot-every``) and replay only the
events after it, so this time does not grow with the whole log.

Measured here (``W4_COMMANDS=200000 W4_STORES=sqlite``, 372,426 events): RSS 127.8, 158.6 and
180.0 MiB at 10%, 50% and 100%, growth 13.5% (121 bytes per event), restart to ready 2.12 s;
before the bounded read models, outbox and stream versions and the snapshots: 132.9, 197.9
and 278.9 MiB, growth 41%, restart to ready 12.3 s.

``W4_COMMANDS`` (default 500,000) shortens a trial run; ``W4_STORES`` (default
``memory,sqlite``) picks the stores; ``W4_SERVE_ARGS`` adds ``cqrs-lab serve`` options (for
example retention bounds). Needs ``wrk`` (Debian: ``apt-get install -y wrk``); without it,
one JSON line says so.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = int(os.environ.get("W4_COMMANDS", "500000"))
STORES = [s for s in os.environ.get("W4_STORES", "memory,sqlite").split(",") if s]
SERVE_ARGS = shlex.split(os.environ.get("W4_SERVE_ARGS", ""))
ACCOUNTS = 1000
CONNECTIONS = 32
MARKS = (0.1, 0.5, 1.0)
INSTALL = "apt-get update && apt-get install -y wrk"
LAB = "cqrs_lab http (cqrs-lab serve, bank, one worker)"

# Request i of the run (0-based, counted across phases) is decided by i alone, so phases
# continue one sequence and every id is unique. A phase stops once it has sent the command
# numbered W4_TO (requests 7, 8 and 9 of every 10 are reads, request 0 of every 50 a retry).
LUA = r"""
local i = tonumber(os.getenv("W4_FROM_REQUEST"))
local stop_at = tonumber(os.getenv("W4_TO_COMMAND"))
local marker = os.getenv("W4_MARKER")
local stopped = false
local accounts = tonumber(os.getenv("W4_ACCOUNTS"))
local json = {["Content-Type"] = "application/json"}

local function commands_before(n)  -- commands among requests 0 .. n-1
  return n - 3 * math.floor(n / 10) - math.max(0, math.min(n % 10, 10) - 7)
end

local function deposit(n)
  local a = n % accounts
  local h = {["Content-Type"] = "application/json"}
  if n % 10 ~= 2 then h["Idempotency-Key"] = "d-" .. n end
  return wrk.format("POST", "/accounts/a" .. a .. "/deposits", h, '{"amount": 1}')
end

request = function()
  local n = i
  i = i + 1
  if commands_before(n) >= stop_at and not stopped then
    stopped = true  -- wrk runs for its whole duration: the marker tells the caller to stop it
    local f = io.open(marker, "w")
    f:write(tostring(n))
    f:close()
    wrk.thread:stop()
  end
  local a = n % accounts
  local k = n % 10
  if n % 50 == 0 and n >= 50 then
    return deposit(n - 50)  -- a retry of a keyed deposit (n - 50 ends in 0: it had a key)
  elseif k <= 2 then
    return deposit(n)
  elseif k <= 4 then
    return wrk.format("POST", "/accounts/a" .. a .. "/withdrawals", json, '{"amount": 1}')
  elseif k <= 6 then
    local body = string.format(
      '{"transfer_id": "t%d", "source": "a%d", "target": "a%d", "amount": 1}',
      n, a, (a + 1) % accounts)
    return wrk.format("POST", "/transfers", json, body)
  elseif k <= 8 then
    return wrk.format("GET", "/accounts/a" .. a)
  elseif n >= 110 then
    return wrk.format("GET", "/transfers/t" .. (n - 103))  -- one 10 cycles old: projected
  else
    return wrk.format("GET", "/accounts/a" .. a)
  end
end

response = function(status, headers, body)
  if status == 404 then  -- a transfer read ahead of its transfer: named for a later check
    local id = string.match(body or "", "no transfer '(t%d+)'")
    if id then io.write("W4 404 " .. id .. "\n") end
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("W4 requests=%d errors=%d\n", summary.requests,
    e.connect + e.read + e.write + e.timeout))
end
"""


def commands_before(n: int) -> int:
    """Commands among requests ``0 .. n-1`` (requests 7, 8, 9 of every 10 are reads).

    >>> [commands_before(n) for n in (0, 7, 10, 17, 20)]
    [0, 7, 7, 14, 14]
    """
    return n - 3 * (n // 10) - max(0, n % 10 - 7)


def requests_for(commands: int) -> int:
    """The fewest requests that carry ``commands`` commands: where the next phase starts.

    >>> requests_for(7), requests_for(8), commands_before(requests_for(500_000))
    (7, 11, 500000)
    """
    n = max(0, commands // 7 - 1) * 10
    while commands_before(n) < commands:
        n += 1
    return n


def _transfer(transfer_id: str) -> dict[str, Any]:
    """The body the script sent for transfer ``t<n>`` (request ``n``).

    >>> _transfer("t1999")
    {'transfer_id': 't1999', 'source': 'a999', 'target': 'a0', 'amount': 1}
    """
    a = int(transfer_id[1:]) % ACCOUNTS
    return {
        "transfer_id": transfer_id,
        "source": f"a{a}",
        "target": f"a{(a + 1) % ACCOUNTS}",
        "amount": 1,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


def _post(url: str, body: dict[str, Any]) -> int:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


class Served:
    """``cqrs-lab serve`` on a free port of 127.0.0.1; ``started`` is when the process began."""

    def __init__(self, store: str, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "cqrs_lab.cli", "serve", "--port", str(self.port)]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*argv, "--store", store, "--queue-size", "4096", *SERVE_ARGS],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_for(self, path: str, timeout: float = 600.0) -> float:
        """Seconds from the start of the process until ``path`` answers 200."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                if _get(self.url + path, timeout=1)[0] == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{path} did not answer 200 within {timeout} s")

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert kib is not None, "VmRSS missing from /proc/PID/status"
        return int(kib.group(1)) / 1024

    def settle(self, timeout: float = 300.0) -> int:
        """Wait until every projection has caught up; returns the head position."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            _, data = _get(self.url + "/projections", timeout=10)
            if data and all(p["backlog"] == 0 for p in data["projections"]):
                return int(data["head"])
            time.sleep(0.2)
        raise RuntimeError(f"projections did not catch up within {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wrk(url: str, script: str, first_request: int, to_command: int) -> dict[str, float]:
    marker = Path(script).with_suffix(".done")
    marker.unlink(missing_ok=True)
    env = {
        **os.environ,
        "W4_FROM_REQUEST": str(first_request),
        "W4_TO_COMMAND": str(to_command),
        "W4_ACCOUNTS": str(ACCOUNTS),
        "W4_MARKER": str(marker),
    }
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", "-d3600s", "-s", script, url]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    try:
        while not marker.exists() and proc.poll() is None:
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        proc.send_signal(signal.SIGINT)  # wrk then reports what it has done and exits
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = re.search(r"W4 requests=(\d+) errors=(\d+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    assert done is not None, out
    return {
        "requests": float(done.group(1)),
        "errors": float(done.group(2)),
        "non_2xx": float(bad.group(1)) if bad else 0.0,
        "seconds": seconds,
        "not_found": re.findall(r"^W4 404 (t\d+)$", out, re.MULTILINE),
    }


def soak(store: str, script: str) -> dict[str, Any]:
    """One run on ``store``; RSS at each mark, and for SQLite the restart-to-ready time."""
    server = Served(store)
    try:
        server.wait_for("/livez", 30)
        for a in range(ACCOUNTS):
            status = _post(
                server.url + "/accounts", {"account_id": f"a{a}", "opening_balance": 10**9}
            )
            if status != 201:
                raise RuntimeError(f"opening account a{a} answered {status}")
        server.settle()
        out: dict[str, Any] = {"rss_start": server.rss_mib(), "marks": [], "requests": 0.0}
        out.update(non_2xx=0.0, errors=0.0, seconds=0.0, not_found=0, found_later=0)
        sent = 0  # requests so far
        for mark in MARKS:
            target = round(COMMANDS * mark)
            ran = _wrk(server.url, script, sent, target)
            sent = requests_for(target)  # the next phase continues the sequence here
            for key in ("requests", "non_2xx", "errors", "seconds"):
                out[key] += ran[key]
            head = server.settle()
            out["marks"].append({"mark": mark, "rss": server.rss_mib(), "head": head})
            for transfer in ran["not_found"]:  # read ahead of their transfer: in the log?
                out["found_later"] += _post(server.url + "/transfers", _transfer(transfer)) == 409
            out["not_found"] += len(ran["not_found"])
        out["commands_per_s"] = COMMANDS / out["seconds"]
        if store.startswith("sqlite:"):
            server.stop()
            again = Served(store, server.port)
            server = again
            out["live"] = again.wait_for("/livez")
            out["ready"] = again.wait_for("/readyz")
            out["rss_after_restart"] = again.rss_mib()
        return out
    finally:
        server.stop()


def run() -> Iterator[dict[str, Any]]:
    if shutil.which("wrk") is None:
        yield {
            "workload": "W4",
            "implementation": LAB,
            "metric": "skipped",
            "value": None,
            "unit": None,
            "note": f"wrk is not installed; install it with: {INSTALL}",
        }
        return
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "soak.lua"
        script.write_text(LUA)
        for name in STORES:
            store = f"sqlite:{Path(tmp) / 'soak.db'}" if name == "sqlite" else name
            result = soak(store, str(script))
            yield from _figures(name, result)


def _figures(name: str, r: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = {"workload": "W4", "implementation": f"{LAB}, {name} store", "commands": COMMANDS}
    marks = {m["mark"]: m for m in r["marks"]}
    for mark, m in marks.items():
        yield {
            **base,
            "metric": f"RSS at {round(mark * 100)}% of the commands",
            "value": round(m["rss"], 1),
            "unit": "MiB",
            "events": m["head"],
        }
    half, full = marks[0.5]["rss"], marks[1.0]["rss"]
    events = marks[1.0]["head"] - marks[0.5]["head"]
    yield {
        **base,
        "metric": "RSS growth from 50% to 100% of the commands",
        "value": round(100 * (full - half) / half, 1),
        "unit": "%",
        "target": 20,
        "bytes_per_event": round((full - half) * 2**20 / events) if events else None,
        "rss_start": round(r["rss_start"], 1),
    }
    yield {
        **base,
        "metric": "throughput over the soak",
        "value": round(r["commands_per_s"]),
        "unit": "commands/s",
        "requests": int(r["requests"]),
        "non_2xx": int(r["non_2xx"]),
        "transfer_reads_404": int(r["not_found"]),
        "transfer_reads_404_found_later": int(r["found_later"]),
        "socket_errors": int(r["errors"]),
    }
    if "ready" in r:
        yield {
            **base,
            "metric": "restart to ready (process start until /readyz answers 200)",
            "value": round(r["ready"], 2),
            "unit": "s",
            "events": marks[1.0]["head"],
            "restart_to_live_s": round(r["live"], 2),
            "rss_after_restart": round(r["rss_after_restart"], 1),
        }


if __name__ == "__main__":
    for figure in run():
        print(json.dumps(figure), flush=True)
