"""``--server-cpus``: the options' checks, the control group on this machine (a busy child
held to a quarter of a core, the group gone afterwards), the knee rule against the limit,
and one short real load test whose server ran limited.

The control group needs Linux, a cpu controller and root (CI runs as root on Linux): where
it cannot be made the tests that need one fail and say why, rather than skip."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.load import LoadTestOptions, load_results, run_loadtest
from cqrs_lab.load.cli import options, register
from cqrs_lab.load.cpu_limit import (
    CpuLimit,
    _find_parent,
    _mounts,
    _own_group,
    available_cpus,
    check_cpu_limit,
)
from cqrs_lab.load.knee import find_knee
from cqrs_lab.load.procs import cpu_seconds
from cqrs_lab.load.summary import format_summary


def limit(cores: float, period_s: float = 0.01) -> CpuLimit:
    try:
        return CpuLimit(cores, period_s)
    except ConfigError as exc:
        pytest.fail(f"a CPU-limited control group cannot be made here: {exc}")


@pytest.mark.parametrize(
    ("cores", "period", "words"),
    [
        (0.0, 0.01, "--server-cpus 0.0: CPU cores the server may use, > 0"),
        (-1.0, 0.01, "--server-cpus -1.0"),
        (available_cpus() + 1.0, 0.01, f"at most the {available_cpus()} CPU(s) available"),
        (0.5, 0.0001, "--server-cpu-period 0.0001: seconds per CFS period"),
        (0.5, 2.0, "--server-cpu-period 2.0"),
        (0.05, 0.01, "a quota of 0.5 ms a period; the kernel's least is 1 ms"),
    ],
)
def test_bad_limits_are_config_errors_naming_the_flag(
    cores: float, period: float, words: str
) -> None:
    with pytest.raises(ConfigError, match="--server-cpu") as info:
        check_cpu_limit(cores, period)
    assert words in str(info.value)
    with pytest.raises(ConfigError, match="--server-cpu"):
        LoadTestOptions(rate=10.0, server_cpus=cores, server_cpu_period=period)


def test_options_accept_a_limit_and_refuse_one_on_a_remote_server() -> None:
    opts = LoadTestOptions(rate=10.0, server_cpus=0.5, server_cpu_period=0.02)
    assert (opts.server_cpus, opts.server_cpu_period) == (0.5, 0.02)
    with pytest.raises(ConfigError, match=r"--server-cpus 0\.5 with --host"):
        LoadTestOptions(rate=10.0, server_cpus=0.5, host="http://127.0.0.1:9")


@pytest.mark.parametrize("command", [["loadtest"], ["twin", "/tmp/k", "--measure-knee"]])
def test_both_commands_take_the_flags(command: list[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args([*command, "--server-cpus", "0.4", "--server-cpu-period", "0.02"])
    given = options(args, out="x")  # the twin names each run's folder itself
    assert (given.server_cpus, given.server_cpu_period) == (0.4, 0.02)
    plain = options(parser.parse_args(command), out="x")
    assert (plain.server_cpus, plain.server_cpu_period) == (None, 0.01)


def test_the_hierarchies_are_found_in_the_mount_table() -> None:
    mounts = (
        "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
        "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
        "cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n"
    )
    assert _mounts(mounts) == ([Path("/sys/fs/cgroup/unified")], [Path("/sys/fs/cgroup/cpu")])
    own = "4:memory:/a\n2:cpuacct:/\n1:cpu,cpuacct:/lab/x\n0::/user.slice\n"
    assert _own_group(1, own) == "/lab/x"
    assert _own_group(2, own) == "/user.slice"
    assert _own_group(2, "1:cpu:/\n") == "/"


def test_where_no_group_can_be_made_the_error_says_why_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cqrs_lab.load import cpu_limit

    monkeypatch.setattr(cpu_limit, "_read", lambda path: "")  # nothing mounted
    with pytest.raises(ConfigError, match="no cgroup filesystem is mounted") as info:
        CpuLimit(0.5)
    assert "run as root" in str(info.value) and "drop --server-cpus" in str(info.value)
    monkeypatch.setattr(cpu_limit.sys, "platform", "darwin")
    with pytest.raises(ConfigError, match="Linux control groups; this is darwin"):
        CpuLimit(0.5)


def test_a_busy_process_is_held_to_its_quota_and_the_group_goes_afterwards() -> None:
    busy = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 4: pass\n"
    lim = limit(0.25)
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        lim.add(child.pid)
        assert lim.pids() == [child.pid]
        time.sleep(0.2)
        c0, t0 = cpu_seconds(child.pid), time.monotonic()
        time.sleep(2.0)
        c1, t1 = cpu_seconds(child.pid), time.monotonic()
        assert c0 is not None and c1 is not None
        cores = (c1 - c0) / (t1 - t0)
        assert 0.1 < cores <= 0.35, f"{cores:.3f} cores under a 0.25 core limit"
        stats = lim.close()  # the child still runs: moved back to the parent first
        assert child.poll() is None
        assert not lim.path.exists()
        assert stats["cores"] == 0.25 and stats["period_s"] == 0.01
        # a busy loop uses up its quota in nearly every 10 ms period it has work in
        assert stats["periods"] >= 150 and stats["throttled_periods"] > 0.8 * stats["periods"]
        assert stats["throttled_s"] > 1.0
        assert lim.close() == stats  # closing twice is harmless
    finally:
        child.kill()
        child.wait()
        lim.close()


def test_the_group_of_an_ended_process_is_removed() -> None:
    with limit(0.5) as lim:
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        lim.add(child.pid)
        child.wait()
    assert not lim.path.exists()


def test_the_knee_rule_judges_the_server_cpu_against_its_limit() -> None:
    offered = [100.0 * 1.5**i for i in range(6)]
    steps = pd.DataFrame(
        {
            "offered_per_s": offered,
            "finished_per_s": [100.0, 150.0, 225.0, 300.0, 302.0, 298.0],
            "finished_sd_per_s": [5.0] * 6,
            "seconds": [4] * 6,
            "generator_bound": [False] * 6,
            "generator_bound_why": [""] * 6,
            "server_cpu": [0.38] * 6,  # a saturated server using all of a 0.4 core limit
        }
    )
    unlimited = find_knee(steps)
    assert unlimited.reached and "used 0.38 of its core" in unlimited.why
    limited = find_knee(steps.assign(server_cpu_limit=0.4))
    assert limited.reached and "waited for something else" not in limited.why
    starved = find_knee(steps.assign(server_cpu_limit=0.4, server_cpu=0.2))
    assert "used 0.20 of the 0.4 core(s) it was limited to" in starved.why


@pytest.mark.slow
def test_a_load_test_runs_its_server_under_the_limit(tmp_path: Path) -> None:
    # about 420 commands/s and 840 requests/s offered: well over 0.2 core of server work (at
    # 0.3 it bound in under a fifth of the periods in two fresh-clone runs, 0.14 and 0.18)
    opts = LoadTestOptions(
        rate=700.0, duration=4.0, out=str(tmp_path / "run"), server_cpus=0.2, audit=False
    )
    try:
        path, code = run_loadtest(opts)
    except ConfigError as exc:
        pytest.fail(f"the server could not be limited here: {exc}")
    assert code == 0
    recorded = json.loads((path / "run.json").read_text())["server_cpu_limit"]
    assert set(recorded) == {"cores", "period_s", "throttled_periods", "periods", "throttled_s"}
    assert (recorded["cores"], recorded["period_s"]) == (0.2, 0.01)
    s = load_results(path).summary
    row = s.iloc[0]
    assert 0.1 < row["server_cpu"] <= 0.25
    assert row["server_cpu_limit"] == 0.2
    assert row["server_cpu_throttled"] > 0.2  # the limit bound under this load
    text = format_summary(s)
    assert "server CPU limit (cores)" in text and "server throttled (share of periods)" in text
    assert not list(_find_parent()[1].glob(f"cqrs-lab-{os.getpid()}-*"))  # the group is gone
