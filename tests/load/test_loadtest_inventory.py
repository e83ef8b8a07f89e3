"""The inventory load-tested for real: `cqrs-lab loadtest --domain cqrs_lab.domains.inventory`
starts the shipped server for the inventory and the packaged Locust users built from its
workload (127.0.0.1 only; about 6 s of load), with its stock view crashed midway.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cqrs_lab.load.cli import register

pytestmark = pytest.mark.slow


def test_the_inventory_is_load_tested_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from cqrs_lab.load import load_results

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    out = tmp_path / "run"
    argv = ["loadtest", "--domain", "cqrs_lab.domains.inventory", "--rate", "60",
            "--duration", "6", "--keys", "20", "--faults", "3:crash=stock",
            "--out", str(out)]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.run(args) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    assert "PASS" in printed
    result = load_results(out)
    r = result.requests
    # an open model at 60 tasks/s for 6 s: far more than a handful of requests
    assert len(r) > 150
    ok_commands = r[(r["method"] == "POST") & r["ok"]]
    kinds = set(ok_commands["name"])
    assert len(kinds) >= 2 and kinds <= {"reserve", "ship", "release", "restock"}
    assert len(ok_commands) > 50
    # the generic routes carried the load
    assert {"read", "read-token"} <= set(r["name"])
    assert result.summary.iloc[0]["status_5xx"] == 0
    # the session guarantees held, judged on real reads of the written products
    ryw = result.check["read-your-writes"]
    assert ryw.status == "pass" and ryw.measures["judged"] > 10
    assert result.check.ok, result.check.to_text()
    keys = {o.key for o in result.history}
    assert keys and all(str(k).startswith("sku-") for k in keys)
    # the crash of the stock view was accepted, and every written product's final read
    # answered at the newest acknowledged position (the view caught up after the restart)
    faults = [json.loads(x) for x in (out / "faults.jsonl").read_text().splitlines()]
    assert [(f["body"], f["status"]) for f in faults] == [({"crash": ["stock"]}, 200)]
    lost = result.lost
    assert lost["acknowledged"] > 50 and lost["unverified"] == 0
    assert json.loads((out / "run.json").read_text())["options"]["domain"] == (
        "cqrs_lab.domains.inventory"
    )
