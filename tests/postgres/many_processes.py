"""Helpers of the kill -9 drill: processes, their start lines, slot ownership, a client loop."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg

from cqrs_lab.stores.postgres_sagas import lock_key

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """A ``cqrs-lab`` subprocess whose stdout lines are collected (killed on close)."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cqrs_lab.cli", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, None), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self.readers:
            t.start()

    def _read(self, stream: IO[str], into: list[str] | None) -> None:
        for line in stream:
            if into is None:
                self.lines.put(line.rstrip("\n"))
            else:
                into.append(line)

    def wait_line(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            found = re.search(pattern, line)
            if found:
                return found
        raise RuntimeError(f"no line matching {pattern!r}; stderr: {''.join(self.err)[-3000:]}")

    def close(self) -> None:
        """SIGKILL the whole process group (the parent and its workers)."""
        with contextlib.suppress(ProcessLookupError):  # also workers left by a dead parent
            os.killpg(self.proc.pid, 9)
        self.proc.wait(10)
        for t in self.readers:
            t.join(10)  # the pipes end with the last process holding them
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def slot_owners(dsn: str, schema: str, view: str) -> list[int]:
    """The backend pids holding the advisory lock of each owned slot of ``view``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid::bigint = %s AND objsubid = 2",
            (lock_key(schema, view),),
        ).fetchall()
    return [int(r[0]) for r in rows]


@dataclass
class Client:
    """Sends bank commands with Idempotency-Keys, retrying until an answer is final."""

    url: str
    accounts: list[str]
    seed: int
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    retries: int = 0
    given_up: int = 0

    def send(self, client: httpx.Client, path: str, body: dict[str, Any], key: str) -> None:
        for _ in range(60):
            try:
                r = client.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                self.retries += 1
                time.sleep(0.05)
                continue
            if r.status_code in (200, 201, 202):
                token = int(r.headers["x-consistency-token"])
                self.acknowledged.append({"key": key, "path": path, "position": token, **body})
                return
            if r.status_code == 409 and "refused" in r.text:
                self.refused += 1
                return
            self.retries += 1  # 409 concurrent write, 429/503 shed, 5xx: same key again
            time.sleep(0.05)
        self.given_up += 1

    def run(self, n: int, tag: str) -> None:
        rng = random.Random(self.seed)
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for i in range(n):
                source, target = rng.sample(self.accounts, 2)
                if rng.random() < 0.7:
                    body = {"transfer_id": f"{tag}-{i}", "source": source, "target": target,
                            "amount": rng.randint(1, 40)}  # fmt: skip
                    self.send(client, "/transfers", body, f"{tag}-t{i}")
                else:
                    self.send(client, f"/accounts/{source}/deposits",
                              {"amount": rng.randint(1, 20)}, f"{tag}-d{i}")  # fmt: skip
