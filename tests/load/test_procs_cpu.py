"""A process's CPU seconds are read finer than the clock tick (10 ms): a light level's
server uses about 0.1 cores, and one second's idle reading in whole ticks moved its
calibration by a tenth."""

from __future__ import annotations

import itertools
import subprocess
import sys

from cqrs_lab.load.procs import cpu_seconds

SPIN = """
import queue, sys, threading, time
def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
asked, done = queue.Queue(), queue.Queue()
def worker():  # a second thread that lives on, as a server's threads do
    while True:
        spin(asked.get())
        done.put(None)
threading.Thread(target=worker, daemon=True).start()
for seconds in (0.0137, 0.0213, 0.0371):
    asked.put(seconds); spin(seconds); done.get()
    print(time.process_time(), flush=True)
    sys.stdin.readline()
"""


def test_cpu_seconds_follow_a_process_to_the_millisecond() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SPIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        readings = []
        for _ in range(3):
            own = float(child.stdout.readline())  # the child's own count, then it waits
            readings.append((own, cpu_seconds(child.pid)))
            child.stdin.write("\n")
            child.stdin.flush()
        for (own0, ours0), (own1, ours1) in itertools.pairwise(readings):
            assert ours0 is not None and ours1 is not None
            # each step spins 2 x 21 or 2 x 37 ms: in whole ticks it reads 40 or 50 ms
            # (70 or 80), off by up to 10 ms; the scheduler's count is off by under 2
            assert abs((ours1 - ours0) - (own1 - own0)) < 0.002, readings
    finally:
        child.kill()
        child.wait(5)
        child.stdin.close()
        child.stdout.close()
    assert cpu_seconds(child.pid) is None  # gone: no reading
