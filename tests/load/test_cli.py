"""``cqrs-lab loadtest`` argument handling and ``cqrs-lab twin`` on recorded data; the
docstring examples of cqrs_lab.load."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.cli import options, register
from cqrs_lab.sim import load_scenario
from tests.load.test_twin import synthetic_run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser


def test_loadtest_arguments_become_options() -> None:
    args = _parser().parse_args(
        [
            "loadtest",
            "--rate",
            "80",
            "--duration",
            "12",
            "--processes",
            "2",
            "--faults",
            "6:crash=balances",
            "--faults",
            "9:clear",
            "--classes",
            "WriterUser",
        ]
    )
    opts = options(args)
    assert (opts.model, opts.rate, opts.duration, opts.processes) == ("open", 80.0, 12.0, 2)
    assert [f.at for f in opts.faults] == [6.0, 9.0]
    assert opts.classes == ("WriterUser",)
    assert opts.pool_size() == 20  # 80/s at about 4 tasks/s per user
    closed = options(_parser().parse_args(["loadtest", "--users", "7"]))
    assert (closed.model, closed.pool_size()) == ("closed", 7)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["loadtest", "--classes", "Nobody"], "user classes"),
        (["loadtest", "--rate", "-3"], "--rate"),
        (["loadtest", "--processes", "0"], "--processes"),
        (["loadtest", "--users", "10000000"], "--users 10000000: 1 to 5000"),
        (["loadtest", "--users", "10001", "--processes", "2"], "1 to 10000"),
        (["loadtest", "--host", "localhost:80"], "--host"),
        (["loadtest", "--faults", "soon:crash=balances"], "--faults"),
        (["loadtest", "--mix", "steal=2"], "unknown command kind 'steal'.*deposit, withdraw"),
        (["loadtest", "--faults", "1:crash=balanc"], "no view 'balanc'; its views: balances"),
        (["loadtest", "--domain", "cqrs_lab.domains.inventory", "--mix", "deposit=1"], "reserve"),
        (["loadtest", "--domain", "no_such_package.orders"], "cannot import module"),
        (["loadtest", "--keys", "1"], "at least 2 accounts"),
        (["loadtest", "--params", "max_amount=0"], "max_amount=0"),
        (["loadtest", "--params", "colour=3"], "unknown workload parameter 'colour'"),
        (["loadtest", "--locustfile", "/no/such/locustfile.py"], "--locustfile"),
        (["loadtest", "--duration", "3", "--faults", "10:crash=balances"], "never sent"),
        (
            ["loadtest", "--host", "http://127.0.0.1:9", "--store", "sqlite:x.db"],
            "--store with --host",
        ),
        (
            ["loadtest", "--host", "http://127.0.0.1:9", "--delivery", "at-most-once"],
            "--delivery with --host",
        ),
    ],
)
def test_bad_loadtest_arguments_are_refused_clearly(argv: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        options(_parser().parse_args(argv))


def test_a_mistyped_mix_or_fault_exits_2_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_args = {
        "--mix steal=2": (["--mix", "steal=2"], "kinds: deposit, withdraw, transfer"),
        "--faults 1:crash=balanc": (["--faults", "1:crash=balanc"], "its views: balances"),
        "--classes": (["--classes", "WriterUser,Reader"], "choose from WriterUser"),
    }
    for name, (bad, allowed) in bad_args.items():
        args = _parser().parse_args(["loadtest", "--out", str(tmp_path / "run"), *bad])
        assert args.run(args) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("cqrs-lab loadtest: ") and allowed in err, err
        assert len(err.strip().splitlines()) == 1, err  # one line
    assert not (tmp_path / "run").exists()  # no folder, no server, no Locust


def test_the_domain_and_its_workload_reach_the_options() -> None:
    argv = ["loadtest", "--domain", "cqrs_lab.domains.inventory", "--keys", "30",
            "--mix", "reserve=3,restock=1", "--params", "initial_stock=50",
            "--faults", "2:crash=stock"]  # fmt: skip
    opts = options(_parser().parse_args(argv))
    traffic = opts.traffic()
    assert (opts.domain, traffic.keys, traffic.workload.population) == (
        "cqrs_lab.domains.inventory",
        30,
        "products",
    )
    assert traffic.mix == {"reserve": 3.0, "restock": 1.0}
    assert traffic.params == {"initial_stock": 50, "max_quantity": 10}
    bank = options(_parser().parse_args(["loadtest", "--accounts", "40"])).traffic()
    assert (bank.keys, bank.mix) == (40, {"deposit": 0.6, "withdraw": 0.3, "transfer": 0.1})


def test_twin_prints_the_table_and_writes_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for rate in (10, 30):
        synthetic_run(tmp_path / f"commands-{rate}", rate=rate, cpu_per_s=0.01 * rate)
    args = _parser().parse_args(["twin", str(tmp_path), "--model", "fitted"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "calibrated from" in out and "commands-10*" in out
    assert "command latency p95 (ms)" in out and "offered" in out and "(cmd/s)" in out
    assert "validation (within 20%): " in out and "0 not judged" in out
    assert (tmp_path / "twin.csv").exists() and (tmp_path / "twin.png").exists()
    import pandas as pd

    csv = pd.read_csv(tmp_path / "twin.csv")
    assert {"offered_commands_per_s", "sent_commands_per_s", "generator_lateness_p95_s"} <= set(
        csv.columns
    )
    assert set(csv["metric"]) == {
        "throughput_per_s", "command_latency_p50_s", "command_latency_p95_s",
        "command_latency_p99_s", "lag_p50_s", "lag_p95_s",
    }  # fmt: skip
    assert load_scenario(tmp_path / "twin-scenario.toml").commands.handlers == 1


def test_twin_on_an_empty_folder_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parser().parse_args(["twin", str(tmp_path)])
    assert args.run(args) == 2
    assert "no load test results" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--measure", "50,abc"], "--measure 50,abc: 'abc' is not a number; give offered"),
        (["--measure-knee", "--predict-processes", "1,two"], "'two' is not a whole number"),
    ],
)
def test_twin_refuses_a_mistyped_list_before_any_load_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], said: str
) -> None:
    out = tmp_path / "never"
    args = _parser().parse_args(["twin", str(out), *flags])
    assert args.run(args) == 2
    assert said in capsys.readouterr().err
    assert not out.exists()  # nothing ran: the folder a run would make is not there


def test_a_run_refuses_a_folder_that_holds_files(tmp_path: Path) -> None:
    from cqrs_lab.load import LoadTestOptions, run_loadtest

    (tmp_path / "old.csv").write_text("x\n")
    with pytest.raises(ConfigError, match="not an empty folder"):
        run_loadtest(LoadTestOptions(rate=5.0, duration=1.0, out=str(tmp_path)))
    assert [p.name for p in tmp_path.iterdir()] == ["old.csv"]  # nothing started or written


def test_repeated_rates_run_into_their_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cqrs_lab.load.cli_options as cli

    ran: list[tuple[float | None, str | None]] = []

    def fake(opts: object) -> tuple[Path, int]:
        ran.append((opts.rate, opts.out))  # type: ignore[attr-defined]
        return Path(str(opts.out)), 0  # type: ignore[attr-defined]

    monkeypatch.setattr(cli, "run_loadtest", fake)
    args = _parser().parse_args(["loadtest"])
    # levels are offered commands/s; with the default classes a user task is 0.6 commands
    # (writers 5 of 10 users, one command; sessions 1 of 10, one command; readers none)
    cli.run_levels(args, [60.0, 150.0, 60.0, 60.0], tmp_path)
    assert ran == [
        (pytest.approx(100.0), str(tmp_path / "commands-60")),
        (pytest.approx(250.0), str(tmp_path / "commands-150")),
        (pytest.approx(100.0), str(tmp_path / "commands-60-2")),
        (pytest.approx(100.0), str(tmp_path / "commands-60-3")),
    ]
    only_writers = _parser().parse_args(["loadtest", "--classes", "WriterUser"])
    ran.clear()
    cli.run_levels(only_writers, [60.0], tmp_path / "w")
    assert ran == [(pytest.approx(60.0), str(tmp_path / "w" / "commands-60"))]
    readers = _parser().parse_args(["loadtest", "--classes", "ReaderUser"])
    with pytest.raises(ConfigError, match="sends commands"):
        cli.run_levels(readers, [60.0], tmp_path / "r")


def test_the_local_server_and_locust_get_their_own_cpus() -> None:
    import os

    from cqrs_lab.load import LoadTestOptions

    cpus = sorted(os.sched_getaffinity(0))
    split = LoadTestOptions(rate=5.0).cpu_split()
    if len(cpus) >= 2:
        assert split == ({cpus[0]}, set(cpus[1:]))
    else:
        assert split is None  # one CPU: nothing to split
    assert LoadTestOptions(rate=5.0, pin=False).cpu_split() is None
    assert LoadTestOptions(rate=5.0, host="http://127.0.0.1:1").cpu_split() is None


def _running(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (the run's own folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:  # gone meanwhile
                continue
    return found


@pytest.mark.slow
def test_sigterm_stops_the_server_and_locust_a_load_test_started(tmp_path: Path) -> None:
    """SIGTERM (a CI job cancelled, `timeout`) is unwound as Ctrl-C is: exit 143, and the
    server and Locust processes it started are stopped, not left running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "terminated-run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cqrs_lab.cli", "loadtest", "--rate", "20", "--duration", "30",
         "--out", str(out)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not list(out.glob("records/requests-*.csv")):
        time.sleep(0.2)  # Locust is sending: the server and Locust both run
    assert len(_running(str(out))) >= 2, "the server and Locust were not seen running"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err, err
    time.sleep(1.0)
    assert _running(str(out)) == [], "processes left running after SIGTERM"


def test_a_run_whose_server_failed_says_why_and_its_folder_takes_the_next_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cqrs_lab.cli import main

    junk = tmp_path / "junk.db"
    junk.write_text("not a database " * 50)
    out = tmp_path / "run"
    argv = ["loadtest", "--store", f"sqlite:{junk}", "--duration", "1", "--out", str(out)]
    for _ in range(2):  # the second is not refused for the first's leftovers
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "the server exited with code 2: cqrs-lab serve:" in err, err
        assert "not an event store" in err and "not an empty folder" not in err, err
    (out / "notes.txt").write_text("mine")  # anything else: the folder is the user's
    assert main(argv) == 2
    assert "not an empty folder" in capsys.readouterr().err
