"""A user's mistake on the command line is one line on stderr and exit status 2, never a
traceback, and it is caught before any run starts (every case here runs in-process in well
under a second: nothing is simulated or load-tested)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cqrs_lab import __version__
from cqrs_lab.cli import build_parser, main

LOG_AT = "[workload.arrivals]\nprocess = 'poisson'\nrate = 20.0\n"
QUICK = ["--duration", "1", "-r", "2", "-j", "1"]
CONSUMERS = "projections.balances.consumers"
NO_SERVER = ["--duration", "1", "--host", "http://127.0.0.1:9"]  # never reached

#: (case id, files to write under tmp_path, argv with {tmp} for tmp_path, words the message
#: must name)
CASES = [
    ("sweep-zero-handlers", {}, ["sweep", "baseline", *QUICK, "--param", "commands.handlers=0"],
     ["commands.handlers", "0", "whole number from 1"]),
    ("sweep-negative-rate", {}, ["sweep", "baseline", *QUICK, "--param", "rate=-5"],
     ["rate", "-5", "> 0"]),
    ("sweep-text-for-a-count", {}, ["sweep", *QUICK, "--param", f"{CONSUMERS}=two"],
     ["projections.balances.consumers", "'two'"]),
    ("sweep-consumers-over-partitions", {}, ["sweep", *QUICK, "--param", f"{CONSUMERS}=99"],
     ["projections.balances.consumers", "99", "partitions"]),
    ("sweep-unknown-field", {}, ["sweep", *QUICK, "--param", "commands.handlerz=2"],
     ["commands.handlerz", "handlers"]),
    ("sweep-ray-missing", {}, ["sweep", *QUICK, "-j", "2", "--backend", "ray"],
     ["ray is not installed", "pip install ray"]),
    ("sweep-dask-without-scheduler", {}, ["sweep", *QUICK, "-j", "2", "--backend", "dask"],
     ["dask", "DASK_SCHEDULER_ADDRESS"]),
    ("sweep-unknown-backend", {}, ["sweep", *QUICK, "--backend", "spark"],
     ["--backend", "spark", "loky"]),
    ("sweep-no-jobs", {}, ["sweep", *QUICK, "-j", "0"], ["jobs", "0"]),
    ("sweep-the-seed", {}, ["sweep", *QUICK, "--param", "seed=1,2"], ["seed", "replications"]),
    ("sweep-a-value-twice", {}, ["sweep", *QUICK, "--param", "commands.handlers=2,2"],
     ["commands.handlers=2,2", "twice"]),
    ("sweep-a-metric-that-is-a-key", {},
     ["sweep", *QUICK, "--param", "commands.handlers=2", "--metrics", "commands.handlers"],
     ["commands.handlers", "column of the grid"]),
    ("plan-max-below-the-stability-bound", {},
     ["plan", *QUICK, "--knob", "commands.handlers", "--rate", "3000", "--max", "1"],
     ["--max", "stability bound", "7 commands.handlers"]),
    ("plan-negative-rate-flag", {}, ["plan", *QUICK, "--rate", "-5"], ["rate", "-5"]),
    ("simulate-zero-duration", {}, ["simulate", "--duration", "0"], ["duration", "0"]),
    ("plan-service-is-not-a-count", {}, ["plan", "baseline", *QUICK, "--knob", "commands.service"],
     ["commands.service", "commands.handlers", "projections.balances.consumers"]),
    ("plan-unknown-view", {}, ["plan", *QUICK, "--knob", "projections.ledger.consumers"],
     ["projections.ledger.consumers", "projections.balances.consumers"]),
    ("plan-bad-confidence", {}, ["plan", *QUICK, "--confidence", "95"], ["confidence", "95"]),
    ("twin-warmup-below-zero", {}, ["twin", "{tmp}", "--warmup", "-1"], ["--warmup", ">= 0"]),
    ("twin-measure-inf", {}, ["twin", "{tmp}", "--measure", "50,inf"], ["--measure", "finite"]),
    ("twin-no-processes", {}, ["twin", "{tmp}", "--predict-processes", "0,2"],
     ["--predict-processes", ">= 1"]),
    ("twin-knee-only-alone", {}, ["twin", "{tmp}", "--knee-only"],
     ["--knee-only", "--measure-knee"]),
    ("twin-levels-of-no-time", {}, ["twin", "{tmp}", "--measure-knee", "--level-seconds", "0"],
     ["--level-seconds", "> 0"]),
    # a level too short to judge after its warm-up: told before its load test, not after
    ("twin-levels-shorter-than-their-warmup", {},
     ["twin", "{tmp}", "--measure-knee", "--level-seconds", "4", "--warmup", "2"],
     ["--level-seconds 4", "--warmup 2", "at least 5 s"]),
    ("twin-measure-shorter-than-its-warmup", {},
     ["twin", "{tmp}", "--measure", "50", "--duration", "2"],
     ["--duration 2", "--warmup 2", "at least 5 s"]),
    ("twin-missing-folder", {}, ["twin", "{tmp}/nonexistent", "--no-plots"],
     ["nonexistent"]),
    ("simulate-missing-file", {}, ["simulate", "{tmp}/nope.toml", "--duration", "1"],
     ["nope.toml"]),
    ("simulate-empty-file", {"empty.toml": ""}, ["simulate", "{tmp}/empty.toml", "--duration", "1"],
     ["empty.toml", "no tables"]),
    ("simulate-without-arrivals", {"calm.toml": "[scenario]\nduration = 1.0\n"},
     ["simulate", "{tmp}/calm.toml"], ["calm.toml", "[workload.arrivals]"]),
    ("simulate-mix-sums-to-zero", {"zero.toml": LOG_AT + "[workload.mix]\ndeposit = 0\n"},
     ["simulate", "{tmp}/zero.toml", "--duration", "1"], ["zero.toml", "workload.mix", "positive"]),
    ("simulate-lognormal-without-cv",
     {"ln.toml": LOG_AT + "[commands]\nservice = { dist = 'lognormal', mean = 0.002 }\n"},
     ["simulate", "{tmp}/ln.toml", "--duration", "1"], ["ln.toml", "commands.service.cv"]),
    ("simulate-out-holds-the-users-files", {"o/mine.txt": "x"},
     ["simulate", "--duration", "1", "--no-plots", "--out", "{tmp}/o"],
     ["mine.txt", "left as they are", "new folder"]),
    ("simulate-out-empty", {}, ["simulate", "--duration", "1", "--out", ""], ["--out", "folder"]),
    ("simulate-out-is-a-file", {"taken": "x"},
     ["simulate", "--duration", "1", "--no-plots", "--out", "{tmp}/taken"], ["taken"]),
    ("reference-over-a-scenario", {"mine.toml": LOG_AT}, ["scenario-reference", "--out",
     "{tmp}/mine.toml"], ["mine.toml", "not a scenario reference", "left as it is"]),
    ("reference-into-a-missing-folder", {}, ["scenario-reference", "--out", "{tmp}/no/ref.md"],
     ["no/ref.md", "No such file"]),
    ("loadtest-unknown-kind", {}, ["loadtest", *NO_SERVER, "--mix", "steal=2"], ["steal"]),
    ("loadtest-mistyped-view", {}, ["loadtest", *NO_SERVER, "--faults", "1:crash=balanc"],
     ["balanc", "balances"]),
    ("loadtest-unknown-class", {}, ["loadtest", *NO_SERVER, "--classes", "WriterUser,Robot"],
     ["Robot", "WriterUser"]),
    ("check-missing-history", {}, ["check", "{tmp}/history.jsonl"], ["history.jsonl"]),
    ("demo-more-commands-than-memory", {}, ["demo", "--commands", "99999999999999999999"],
     ["commands=99999999999999999999", "10,000,000"]),
    ("check-nested-too-deep", {"deep.jsonl": "[" * 100_000 + "]" * 100_000},
     ["check", "{tmp}/deep.jsonl"], ["deep.jsonl line 1", "nested too deeply"]),
    ("check-negative-show", {}, ["check", "{tmp}/h.jsonl", "--show", "-1"], ["--show", "-1"]),
    ("serve-port-out-of-range", {}, ["serve", "--port", "70000"], ["--port", "70000", "65535"]),
    ("serve-empty-host", {}, ["serve", "--host", ""], ["--host", "address"]),
    ("serve-stages-into-the-store", {"s.db": ""},
     ["serve", "--store", "sqlite:{tmp}/s.db", "--stages-csv", "{tmp}/s.db"],
     ["--stages-csv", "event store"]),
    ("serve-stages-into-a-folder", {"d/x": ""}, ["serve", "--stages-csv", "{tmp}/d"],
     ["--stages-csv", "folder"]),
    ("serve-stages-over-notes", {"notes.txt": "mine"}, ["serve", "--stages-csv", "{tmp}/notes.txt"],
     ["notes.txt", "not a stage samples CSV"]),
    ("serve-a-store-that-is-not-a-database", {"junk.db": "not a database, some notes " * 40},
     ["serve", "--store", "sqlite:{tmp}/junk.db"], ["junk.db", "not an event store"]),
    ("no-command", {}, [], ["COMMAND"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("files", "argv", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_mistake_is_one_line_and_exit_2_before_any_work(
    files: dict[str, str],
    argv: list[str],
    names: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, err)
    assert "Traceback" not in captured.err + captured.out
    assert err.count("\n") == 0, err
    assert err.startswith("cqrs-lab"), err
    for word in names:
        assert word in err, (word, err)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cqrs-lab {__version__}"


def test_ctrl_c_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("cqrs_lab.sim.cli.simulate", interrupted)
    assert main(["simulate", "--duration", "1"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "cqrs-lab simulate: interrupted"


def test_mix_weights_not_summing_to_1_are_normalised_with_one_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mix.toml"
    f.write_text(LOG_AT + "[workload.mix]\ndeposit = 1.0\nwithdraw = 0.3\n", encoding="utf-8")
    assert main(["simulate", str(f), "--duration", "1", "--json"]) == 0
    err = capsys.readouterr().err
    assert err.count("normalised") == 1 and "sum to 1.3" in err, err


def test_a_swept_service_time_keeps_the_distribution_and_sets_its_mean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["sweep", *QUICK, "--param", "commands.service=0.001,0.004", "--json"]
    assert main(argv) == 0
    assert "commands.service" in capsys.readouterr().out


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize(
    "command", ["simulate", "sweep", "plan", "scenario-reference", "loadtest", "twin", "check"]
)
def test_every_flag_has_help_that_shows_its_default(command: str) -> None:
    p = _subcommands()[command]
    formatter = p._get_formatter()
    for action in p._actions:
        if action.help == argparse.SUPPRESS:
            continue  # a hidden alias
        assert action.help, (command, action.option_strings or action.dest)
        shown = formatter._get_help_string(action) or ""
        if action.default not in (None, False, "", [], argparse.SUPPRESS):
            assert "default" in shown, (command, action.option_strings, shown)


def test_no_plots_is_one_spelling_everywhere_with_a_hidden_alias() -> None:
    cmds = _subcommands()
    for command in ("simulate", "twin"):
        argv = ["r"] if command == "twin" else []
        for flag in ("--no-plots", "--no-plot"):
            assert cmds[command].parse_args([*argv, flag]).no_plots is True
        assert "--no-plot " not in cmds[command].format_help()


def test_serve_leaves_a_database_of_something_else_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (x)")
    assert main(["serve", "--store", f"sqlite:{path}"]) == 2
    assert "something else (tables events)" in capsys.readouterr().err
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master")]
    assert tables == ["events"]  # nothing created in it


def test_a_sqlite_store_is_served_with_the_domain_that_wrote_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cqrs_lab.http import ServerConfig, build_engine

    store = f"sqlite:{tmp_path / 'bank.db'}"
    build_engine(ServerConfig(store=store)).store.close()  # the bank's, recorded
    code = main(["serve", "--store", store, "--domain", "cqrs_lab.domains.inventory"])
    err = capsys.readouterr().err
    assert code == 2 and "holds the events of domain 'bank', not 'inventory'" in err, err
    build_engine(ServerConfig(store=store)).store.close()  # the bank's again: fine


def test_a_sqlite_store_that_recorded_its_domains_module_is_still_served(tmp_path: Path) -> None:
    """Stores written before the domain's name was recorded hold the module reference the
    command line took: still the same domain (served, and recorded by name from then on)."""
    import sqlite3

    from cqrs_lab.http import ServerConfig, build_engine

    path = tmp_path / "bank.db"
    build_engine(ServerConfig(store=f"sqlite:{path}")).store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'cqrs_lab.domains.bank' WHERE key = 'domain'")
    build_engine(ServerConfig(store=f"sqlite:{path}")).store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'domain'").fetchall() == [("bank",)]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (["--param", "rate=1e9"], "'workload.arrivals.rate' asks for about 1e+09"),
        (["--param", "projections.balances.crash.ttf=0", "--param",
          "projections.balances.crash.ttr=0"], "'projections.balances.crash.ttf' asks"),
    ],
)  # fmt: skip
def test_a_sweep_that_would_never_finish_is_refused_before_it_runs(
    params: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "baseline", "--duration", "1", "-r", "1", "-j", "1", *params]) == 2
    err = capsys.readouterr().err
    assert named in err and "refused past 5e+07" in err


def test_sweep_defaults_leave_out_staleness_without_reads_and_plan_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "burst_overload", "--duration", "2", "-r", "2", "-j", "1"]) == 0
    assert "latency p99" in capsys.readouterr().out  # ran, with the defaults that apply
    target = ["--target", "staleness_p99_s<0.2"]
    assert main(["plan", "burst_overload", "--duration", "2", "-j", "1", *target]) == 2
    assert "no [reads], so no staleness" in capsys.readouterr().err
    unservable = tmp_path / "s.toml"
    unservable.write_text("[workload.arrivals]\nrate = 100\n[commands]\nservice = 100\n")
    knob = ["--knob", "commands.handlers", "--target", "latency_p99_s<0.2"]
    assert main(["plan", str(unservable), "-j", "1", *knob]) == 2
    assert "stability bound is 10001" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["sweep", "--param", "commands.handlers=1", "--param", "commands.handlers=2"],
         "commands.handlers is given twice"),
        (["plan", "--set", "commands.handlers=1", "--set", "commands.handlers=8"],
         "commands.handlers is set twice"),
        (["plan", "--set", "projections.balances.consumers=3"], "is the knob the plan searches"),
    ],
)  # fmt: skip
def test_a_key_given_twice_or_the_searched_knob_set_is_refused(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--duration", "1"]) == 2
    assert said in capsys.readouterr().err
