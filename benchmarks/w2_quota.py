"""W2, the simulated CPU limit against the kernel's: one process pinned to a core and held to
0.4 of it (a control group's CFS quota, 10 ms period, as ``--server-cpus 0.4``) serves jobs
of 0.5 ms of CPU arriving as a Poisson stream at 75% and 90% of its quota, one at a time;
the same arrivals and the CPU each job took are then run through the twin's
:class:`~cqrs_lab.sim.event_loop.EventLoop`, once with a strict quota per period and once
keeping up to :data:`~cqrs_lab.sim.scenario_parts.QUOTA_CARRY` of a period's unused quota.
One figure per load and percentile of the time from a job's arrival to its end: the
model's value, the measured one as its peer, and their ratio.

Needs Linux, two CPUs and write access to the cgroup ``cpu`` controller (root here); without
them it prints one line saying why and no figures.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.cpu_limit import CpuLimit, available_cpus
from cqrs_lab.sim.event_loop import EventLoop
from cqrs_lab.sim.scenario_parts import QUOTA_CARRY

CORES, PERIOD, JOB_CPU, SECONDS = 0.4, 0.01, 0.0005, 15.0
LOADS = (0.75, 0.9)


def serve(rate: float, seconds: float, seed: int, out: str) -> None:
    """The child: wait for a line on stdin, then serve the jobs, writing their arrivals,
    their CPU (each job's own, scaled so that together they are all the process spent,
    its sleeps' and wake-ups' CPU included, as the quota counts it) and their times in the
    system (seconds) to ``out`` as JSON."""
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while (t := t + rng.expovariate(rate)) < seconds:
        arrivals.append(t)
    sys.stdin.readline()
    start = time.monotonic() + 0.05
    cpu, spent = [], []
    process = time.process_time()
    for at in arrivals:
        wait = at - (time.monotonic() - start)
        if wait > 0:
            time.sleep(wait)
        began = time.thread_time()
        while time.thread_time() - began < JOB_CPU:
            pass
        cpu.append(time.thread_time() - began)
        spent.append(time.monotonic() - start - at)
    scale = (time.process_time() - process) / sum(cpu)
    cpu = [c * scale for c in cpu]
    Path(out).write_text(json.dumps({"arrivals": arrivals, "cpu": cpu, "spent": spent}))


def measured(load: float, seed: int) -> dict[str, list[float]]:
    rate = load * CORES / JOB_CPU
    core = min(os.sched_getaffinity(0))  # the first this process may use
    with tempfile.TemporaryDirectory() as tmp, CpuLimit(CORES, PERIOD) as limit:
        out = str(Path(tmp) / "jobs.json")
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.w2_quota", str(rate), str(seed), out],
            stdin=subprocess.PIPE,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        )
        limit.add(child.pid)
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        if child.wait(SECONDS * 4) != 0:
            raise RuntimeError(f"the jobs' process exited {child.returncode}")
        data: dict[str, list[float]] = json.loads(Path(out).read_text())
    return data


def simulated(arrivals: list[float], cpu: list[float], carry: float) -> np.ndarray:
    env = simpy.Environment()
    loop = EventLoop(env, 0.0, 0.001, CORES, PERIOD, carry=carry)
    spent: list[float] = []

    def job(at: float, work: float) -> Generator[simpy.Event, None, None]:
        yield env.timeout(at)
        yield loop.run(work)
        spent.append(env.now - at)

    for at, work in zip(arrivals, cpu, strict=True):
        env.process(job(at, work))
    env.run()
    return np.array(spent)


def run() -> Iterator[dict[str, Any]]:
    try:
        if available_cpus() < 2:
            raise ConfigError("needs two CPUs: one for the limited process, one for the rest")
        jobs = [(load, measured(load, seed=1)) for load in LOADS]
    except (ConfigError, OSError, RuntimeError) as exc:
        yield {"workload": "W2-quota", "skipped": str(exc)}
        return
    for load, data in jobs:
        real = np.array(data["spent"])
        models = {
            "strict quota": simulated(data["arrivals"], data["cpu"], 0.0),
            f"quota keeping {QUOTA_CARRY * 1e3:g} ms": simulated(
                data["arrivals"], data["cpu"], QUOTA_CARRY
            ),
        }
        for p in (50, 95, 99):
            peer = float(np.percentile(real, p)) * 1e3
            for name, spent in models.items():
                value = float(np.percentile(spent, p)) * 1e3
                yield {
                    "workload": "W2-quota", "implementation": f"EventLoop, {name}",
                    "metric": f"time in system p{p} at {load:.0%} of a {CORES:g}-core quota",
                    "value": round(value, 3), "unit": "ms",
                    "peer": "a process under the kernel's CFS quota", "peer_value": round(peer, 3),
                    "ratio": round(value / peer, 3),
                }  # fmt: skip


if __name__ == "__main__":
    serve(float(sys.argv[1]), SECONDS, int(sys.argv[2]), sys.argv[3])
