"""The history format (JSON Lines, pandas) and ``cqrs-lab check``."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from cqrs_lab.checks import (
    HistoryError,
    Operation,
    check_history,
    load_frame,
    read_jsonl,
    to_frame,
    write_jsonl,
)
from cqrs_lab.checks.cli import register

GOOD = [
    Operation("s1", "write", "a", 0.0, 0.5, "ok", 10, 1),
    Operation("s1", "read", "a", 1.0, 1.2, "ok", 10, 1),
    Operation("s2", "write", "b", 0.1, 3.0, "unknown", 4, None),
]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cqrs-lab")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


def test_jsonl_round_trip_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl(GOOD, path)
    assert read_jsonl(path) == GOOD
    df = load_frame(path)
    assert list(df.columns) == [
        "session",
        "op",
        "key",
        "invoke",
        "complete",
        "outcome",
        "value",
        "position",
    ]
    assert df["outcome"].tolist() == ["ok", "ok", "unknown"]
    assert len(df) == 3


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (
            {
                "session": "s",
                "op": "delete",
                "key": "a",
                "invoke": 0,
                "complete": 1,
                "outcome": "ok",
                "position": 1,
            },
            "op",
        ),
        (
            {
                "session": "s",
                "op": "read",
                "key": "a",
                "invoke": 2,
                "complete": 1,
                "outcome": "ok",
                "position": 1,
            },
            "complete",
        ),
        (
            {
                "session": "s",
                "op": "read",
                "key": "a",
                "invoke": 0,
                "complete": 1,
                "outcome": "maybe",
                "position": 1,
            },
            "outcome",
        ),
        (
            {"session": "s", "op": "read", "key": "a", "invoke": 0, "complete": 1, "outcome": "ok"},
            "position",
        ),
        (
            {
                "session": "s",
                "op": "read",
                "key": "a",
                "invoke": "x",
                "complete": 1,
                "outcome": "ok",
                "position": 1,
            },
            "invoke",
        ),
        (
            {"op": "read", "key": "a", "invoke": 0, "complete": 1, "outcome": "ok", "position": 1},
            "session",
        ),
        (
            {
                "session": "s",
                "op": "read",
                "key": "a",
                "invoke": 0,
                "complete": 1,
                "outcome": "ok",
                "position": 1,
                "colour": 2,
            },
            "colour",
        ),
    ],
)
def test_malformed_record_names_line_and_field(
    tmp_path: Path, record: dict[str, object], field: str
) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(GOOD[0].to_dict())
    path.write_text(good + "\n\n" + json.dumps(record) + "\n")
    with pytest.raises(HistoryError) as info:
        read_jsonl(path)
    assert "line 3" in str(info.value) and repr(field) in str(info.value)


def test_not_json_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("{oops\n")
    with pytest.raises(HistoryError, match="line 1: not valid JSON"):
        read_jsonl(path)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad, broken = tmp_path / "good.jsonl", tmp_path / "bad.jsonl", tmp_path / "broken.jsonl"
    write_jsonl(GOOD, good)
    # the read misses the session's own write (position 5 > 4): read-your-writes violated
    write_jsonl(
        [
            Operation("s", "write", "a", 0, 1, "ok", 1, 5),
            Operation("s", "read", "a", 2, 3, "ok", 0, 4),
        ],
        bad,
    )
    broken.write_text('{"session": "s"}\n')
    assert run(["check", str(good)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert run(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "[fail] read-your-writes" in out and "line=2" in out
    assert run(["check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "line 1" in err and "'op'" in err
    assert run(["check", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such history file" in capsys.readouterr().err


def test_cli_json_and_staleness_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.jsonl"
    # a write to "a" completes at t=1 (position 3); another session reads "a" at t=3 from
    # position 2: stale by 1 position and 2 seconds
    write_jsonl(
        [
            Operation("x", "write", "a", 0, 1, "ok", 1, 3),
            Operation("y", "read", "a", 3, 4, "ok", 0, 2),
        ],
        path,
    )
    assert run(["check", str(path), "--staleness-bound", "2.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    stale = next(c for c in data["checks"] if c["name"] == "bounded staleness")
    assert stale["measures"]["max_staleness_seconds"] == 2.0
    assert run(["check", str(path), "--staleness-bound", "1.5"]) == 1
    with pytest.raises(SystemExit):
        run(["check", str(path), "--staleness-bound", "-1"])


def test_cli_is_discovered_by_the_main_entry_point(tmp_path: Path) -> None:
    from cqrs_lab.cli import main

    path = tmp_path / "h.jsonl"
    write_jsonl(GOOD, path)
    assert main(["check", str(path)]) == 0


def record(**fields: object) -> str:
    base: dict[str, object] = {
        "session": "s", "op": "read", "key": "a", "invoke": 0, "complete": 1,
        "outcome": "ok", "position": 1,
    }  # fmt: skip
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


def test_a_record_without_key_is_an_error_naming_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(record() + "\n" + record(key=...) + "\n")
    with pytest.raises(HistoryError) as info:
        read_jsonl(path)
    msg = str(info.value)
    assert msg.startswith(f"{path} line 2: missing field 'key'")
    assert '"key": null' in msg  # says how to write a whole-model operation


def test_an_explicit_null_key_is_a_whole_model_operation(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(record(op="write", position=7) + "\n" + record(key=None, invoke=2, complete=3))
    ops = read_jsonl(path)
    assert ops[1].key is None
    # the whole-model read (position 1) misses the session's write to "a" (position 7)
    assert check_history(ops)["read-your-writes"].status == "fail"


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_an_empty_history_is_an_error(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(text)
    with pytest.raises(HistoryError, match="no operation"):
        read_jsonl(path)
    with pytest.raises(HistoryError, match="no operation"):
        read_jsonl(io.StringIO(text))
    assert run(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert "PASS" not in captured.out and captured.out == ""
    assert f"{path}: no operation" in captured.err


def test_violations_cite_file_lines_counting_blank_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.jsonl"
    write = record(op="write", position=5)
    read = record(invoke=2, complete=3, position=4)
    path.write_text("\n" + write + "\n\n\n" + read + "\n")  # the write on line 2, the read on 5
    res = check_history(read_jsonl(path))["read-your-writes"]
    (v,) = res.violations
    assert "read at line 5" in v.message and "write at line 2" in v.message
    assert [(e["file"], e["line"]) for e in v.evidence] == [(str(path), 2), (str(path), 5)]
    assert run(["check", str(path)]) == 1
    assert "read at line 5 (position 4) misses write at line 2" in capsys.readouterr().out


def test_frame_keeps_positions_whole_when_some_are_missing(tmp_path: Path) -> None:
    df = to_frame(GOOD)  # the unknown write has no position
    assert str(df["position"].dtype) == "Int64"
    assert df["position"].tolist()[:2] == [1, 1] and df["position"].isna().tolist()[2]
    path = tmp_path / "h.jsonl"
    write_jsonl(GOOD, path)
    loaded = load_frame(path)
    assert str(loaded["position"].dtype) == "Int64"
    assert all(isinstance(p, int) for p in loaded["position"].dropna().tolist())
    assert str(to_frame(GOOD[:2])["position"].dtype) == "Int64"
