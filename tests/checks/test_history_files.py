"""``cqrs-lab check`` over several files and folders, and the paths it cannot read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cqrs_lab.checks import HistoryError, Operation, check_history, read_histories, write_jsonl
from cqrs_lab.cli import main


def w(session: str, t0: float, t1: float, pos: int) -> Operation:
    return Operation(session, "write", "a", t0, t1, "ok", 1, pos)


def r(session: str, t0: float, t1: float, pos: int) -> Operation:
    return Operation(session, "read", "a", t0, t1, "ok", 0, pos)


def line(op: Operation) -> str:
    return json.dumps(op.to_dict())


def check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_folder_contributes_its_jsonl_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records"
    records.mkdir()
    write_jsonl([w("w1-s", 0, 1, 3), r("w1-s", 2, 3, 3)], records / "history-1.jsonl")
    write_jsonl([w("w2-s", 0, 1, 4), r("w2-s", 2, 3, 4)], records / "history-2.jsonl")
    (records / "requests-1.csv").write_text("not,a,history\n")  # not *.jsonl: ignored
    (records / "sub").mkdir()
    (records / "sub" / "x.jsonl").write_text("{broken\n")  # subfolders are not read
    code, out, err = check([str(records)], capsys)
    assert (code, err) == (0, "")
    assert "over 4 operations" in out and "PASS" in out


def test_several_files_cite_the_file_and_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = tmp_path / "history-1.jsonl", tmp_path / "history-2.jsonl"
    write_jsonl([w("x", 0, 1, 3)], one)
    # session s's write at 7 is on line 1 of two, its stale read on line 3 (after a blank)
    two.write_text(f"{line(w('s', 0, 1, 7))}\n\n{line(r('s', 2, 3, 6))}\n")
    code, out, _ = check([str(one), str(two)], capsys)
    assert code == 1
    assert f"read at {two} line 3 (position 6) misses write at {two} line 1" in out
    ops = read_histories([one, two])
    ryw = check_history(ops)["read-your-writes"]
    assert [(e["file"], e["line"]) for e in ryw.violations[0].evidence] == [
        (str(two), 1),
        (str(two), 3),
    ]


def test_session_ids_are_global_across_files(tmp_path: Path) -> None:
    # one session's write in one file, its read in another: still read-your-writes
    write_jsonl([w("s", 0, 1, 7)], tmp_path / "a.jsonl")
    write_jsonl([r("s", 2, 3, 6)], tmp_path / "b.jsonl")
    ops = read_histories([tmp_path])
    assert check_history(ops)["read-your-writes"].status == "fail"


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl([w("s", 0, 1, 3)], path)
    assert len(read_histories([path, tmp_path, tmp_path / "." / "h.jsonl"])) == 1


def test_an_empty_worker_file_is_noted_but_the_rest_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl([w("s", 0, 1, 3)], tmp_path / "history-1.jsonl")
    (tmp_path / "history-2.jsonl").write_text("")
    code, out, err = check([str(tmp_path)], capsys)
    assert code == 0 and "PASS" in out
    assert f"{tmp_path / 'history-2.jsonl'} holds no operation" in err


def test_empty_files_only_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "history-1.jsonl").write_text("")
    (tmp_path / "history-2.jsonl").write_text("\n")
    code, out, err = check([str(tmp_path)], capsys)
    assert (code, out) == (2, "")
    assert "no operation in the history" in err
    with pytest.raises(HistoryError, match="no operation"):
        read_histories([tmp_path])
    assert read_histories([tmp_path], allow_empty=True) == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.mkdir(), "folder holds no history file (*.jsonl)"),
        (lambda p: None, "no such history file or folder"),
        (
            lambda p: p.write_bytes(line(w("s", 0, 1, 3)).encode() + b"\n\xff\xfe\n"),
            "line 2: not UTF-8 text (byte 0xff",
        ),
    ],
    ids=["folder-without-history", "missing", "not-utf8"],
)
def test_unreadable_paths_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: object, message: str
) -> None:
    path = tmp_path / "h"
    setup(path)  # type: ignore[operator]
    code, out, err = check([str(path)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"cqrs-lab check: {path}") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_path_among_good_ones_is_still_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "h.jsonl"
    write_jsonl([w("s", 0, 1, 3)], good)
    code, _, err = check([str(good), str(tmp_path / "nope")], capsys)
    assert code == 2 and "nope: no such history file or folder" in err


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"session": "café"}\n'.encode("latin-1"))
    for path in (folder, latin1):
        done = subprocess.run(
            [sys.executable, "-m", "cqrs_lab.cli", "check", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_a_line_longer_than_the_limit_is_refused_not_read_into_memory(tmp_path: Path) -> None:
    from cqrs_lab.checks.history import MAX_LINE_BYTES

    endless = tmp_path / "h.jsonl"
    endless.write_bytes(b"x" * (MAX_LINE_BYTES + 10))
    with pytest.raises(HistoryError, match=r"h\.jsonl line 1: longer than 16 MiB"):
        read_histories([endless])
