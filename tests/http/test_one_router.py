"""One route table, one 500 path, stage timings as hooks, and no process-wide side effects
from building or serving an app in-process."""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from cqrs_lab.errors import ConfigError
from cqrs_lab.http import Route, StageTimings
from cqrs_lab.http.cli import register
from cqrs_lab.http.router import check_table
from cqrs_lab.http.stages import REF_CHARS, STAGE_COLUMNS
from tests.http.conftest import Live, MakeLive, Server

PROBLEM = "application/problem+json"


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("secret internal detail")


@pytest.mark.parametrize(
    ("url", "broken"),
    [
        ("/accounts/a1", "ask"),  # served by the route table
        ("/queries/GetTotals", "ask"),  # the table's generic route
        ("/projections", "stats"),  # served by FastAPI (an operations route)
    ],
)
def test_one_500_path_for_both_entries(
    live: Live, caplog: pytest.LogCaptureFixture, url: str, broken: str
) -> None:
    live.post("/accounts", json={"account_id": "a1"})
    live.settle()
    setattr(live.engine, broken, _boom)  # the instance attribute hides the method
    with caplog.at_level(logging.ERROR, logger="cqrs_lab.http.errors"):
        r = live.get(url)
    assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["title"] == "internal error" and body["status"] == 500
    assert "secret" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert len(logged) == 1 and "secret internal detail" in str(logged[0].exc_info[1])
    delattr(live.engine, broken)
    metrics = live.get("/metrics").text
    route = url if url == "/projections" else ("/accounts/{account_id}" if "accounts" in url
                                               else "/queries/{name}")  # fmt: skip
    assert f'method="GET",route="{route}",status="500"}} 1.0' in metrics


def test_the_table_answers_405_and_body_limits_with_problems(live: Live) -> None:
    wrong = live.request("DELETE", "/accounts/a1")
    assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM
    assert wrong.headers["allow"] == "GET, HEAD"
    big = live.post(
        "/commands/Deposit", content=b"x" * 70_000, headers={"content-type": "application/json"}
    )
    assert big.status_code == 413 and big.headers["content-type"] == PROBLEM
    assert "65536 bytes" in big.json()["detail"]
    assert live.get("/faults").status_code == 200  # FastAPI still serves its own routes


def test_paths_compile_as_starlette_does_literal_text_escaped() -> None:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hi")

    route = Route("GET", "/v1.0/items+/{item_id}", hello)
    assert route.compiled.match("/v1.0/items+/x") is not None
    assert route.compiled.match("/v1X0/items+/x") is None  # the dot is literal
    assert route.compiled.match("/v1.0/itemss/x") is None  # and so is the plus
    assert route.params == ["item_id"]
    with pytest.raises(ConfigError, match="declared twice"):
        check_table([route, route], [])
    shadow = Route("GET", "/{anything}", hello)
    with pytest.raises(ConfigError, match="would hide the operations route GET /metrics"):
        check_table([shadow], [("GET", "/metrics")])


def test_serving_in_process_leaves_the_collector_alone(make_live: MakeLive) -> None:
    freezes, thresholds = gc.get_freeze_count(), gc.get_threshold()
    live = make_live(domain="cqrs_lab.domains.inventory")
    for i in range(50):
        body = {"sku": f"sku-{i}", "name": "pen", "initial_stock": 1}
        assert live.post("/commands/AddProduct", json=body).status_code == 200
    live.settle()
    assert live.get("/queries/GetStock", params={"sku": "sku-3"}).status_code == 200
    live.close()
    assert (gc.get_freeze_count(), gc.get_threshold()) == (freezes, thresholds)


def test_stage_timings_are_hooks_exported_on_metrics(make_live: MakeLive, tmp_path: Path) -> None:
    stages = StageTimings()
    live = make_live(stages=stages)
    engine = live.engine
    methods = (engine.dispatch, engine.ask, *[s.step for s in engine.subscriptions.values()])
    r = live.post("/accounts", json={"account_id": "a1", "opening_balance": 5},
                  headers={"X-Request-Id": "77-1"})  # fmt: skip
    live.get("/accounts/a1", params={"min_position": r.json()["position"], "wait": 5})
    live.settle()
    text = live.get("/metrics").text
    for stage in ("command", "query", "projection", "request", "writer", "pump"):
        assert f'cqrs_lab_stage_items_total{{stage="{stage}"}}' in text, stage
    assert stages.totals["command"][1] == 1 and stages.totals["query"][1] == 1
    assert stages.totals["projection"][1] >= 3  # the account's event, once per projection
    kinds = {s[0] for s in stages.samples}
    assert kinds == {"command", "query", "projection", "request", "lag", "writer", "pump",
                     "commit", "pump-wait"}  # fmt: skip
    assert stages.totals["writer"][1] == 1  # one batch of one command
    assert (engine.dispatch, engine.ask) == methods[:2]  # nothing replaced at run time
    assert [s.step for s in engine.subscriptions.values()] == list(methods[2:])
    out = stages.write_csv(tmp_path / "stages.csv")
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == (*STAGE_COLUMNS, "ref") and len(rows) == len(stages.samples)
    # the request the client named is timed under its id; the one it did not name, under ""
    served = [(row["name"], row["ref"]) for row in rows if row["stage"] == "request"]
    assert sorted(served) == [
        ("GET /accounts/{account_id} 200", ""),
        ("GET /metrics 200", ""),
        ("POST /accounts 201", "77-1"),
    ]


def test_a_clients_request_id_is_kept_cut_to_its_limit() -> None:
    stages = StageTimings()
    stages.add("request", "GET /x 200", 0.001, ref="r" * 500)  # a hostile header, long
    stages.add("request", "GET /x 200", 0.001)
    assert [s[5] for s in stages.samples] == ["r" * REF_CHARS, ""]


def test_without_the_option_nothing_is_timed(live: Live) -> None:
    assert live.app.state.stages is None
    live.post("/accounts", json={"account_id": "a1"})
    assert "cqrs_lab_stage" not in live.get("/metrics").text


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_serve_takes_every_flag_the_load_runner_passes() -> None:
    args = _parse("--port", "9", "--delivery", "at-least-once", "--admin-token", "t" * 8,
                  "--stages", "s.csv", "--queue-size", "7", "--restart-after", "-1",
                  "--domain", "cqrs_lab.domains.inventory", "--stage-timings")  # fmt: skip
    assert (args.port, args.delivery, args.admin_token, args.stages_csv) == (
        9, "at-least-once", "t" * 8, "s.csv",
    )  # fmt: skip
    assert (args.queue_size, args.restart_after, args.stage_timings) == (7, -1.0, True)
    assert args.domain == "cqrs_lab.domains.inventory" and args.gc_freeze_every == 5000


def test_serve_help_shows_the_default_domain(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--help")
    assert "(default: cqrs_lab.domains.bank)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow  # a real uvicorn subprocess
def test_served_with_stage_timings_writes_the_samples_on_exit(tmp_path: Path) -> None:
    out = tmp_path / "server" / "stages.csv"
    server = Server("--domain", "cqrs_lab.domains.inventory", "--stage-timings",
                    "--stages-csv", str(out), "--restart-after", "-1")  # fmt: skip
    try:
        body = {"sku": "sku-1", "name": "pen", "initial_stock": 2}
        token = httpx.post(server.url + "/commands/AddProduct", json=body).json()["position"]
        params = {"sku": "sku-1", "min_position": token, "wait": 5}
        stock = httpx.get(server.url + "/queries/GetStock", params=params)
        assert stock.json()["available"] == 2
        time.sleep(0.1)
        text = httpx.get(server.url + "/metrics").text
        assert 'cqrs_lab_stage_items_total{stage="command"} 1.0' in text
        # the protocol timed each request's read (the command's, the query's, this one's)
        reads = re.search(r'cqrs_lab_stage_items_total\{stage="transport"\} (\S+)', text)
        assert reads is not None and float(reads.group(1)) >= 3.0, text
    finally:
        code, log = server.terminate()
    assert code in (0, -15), log  # uvicorn hands SIGTERM back once it has shut down
    with out.open() as fh:
        stages = {row["stage"] for row in csv.DictReader(fh)}
    # the collector's pauses too: the server collects once it has started, then freezes
    assert {"command", "query", "projection", "request", "lag", "gc", "transport"} <= stages


def test_the_collectors_pauses_are_a_stage() -> None:
    stages = StageTimings()
    observe = stages.collector_callback()
    gc.callbacks.append(observe)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(observe)
    pauses = [s for s in stages.samples if s[0] == "gc"]
    assert [s[1] for s in pauses] == ["gen2"] and pauses[0][3] >= 0.0
    assert stages.totals["gc"][1] == 1


def test_the_collector_freezer_leaves_a_failed_store_to_the_driver() -> None:
    """The database lost while the server started: the freezer's read of the head raised
    StoreUnavailable inside uvicorn's start-up (a traceback, exit 3); the driver stops the
    server on the same failure with exit 75."""
    from types import SimpleNamespace

    from cqrs_lab.errors import StoreUnavailable
    from cqrs_lab.http.cli import CollectorFreezer

    class Gone:
        @property
        def head_position(self) -> int:
            raise StoreUnavailable("PostgreSQL at '...' cannot be reached")

    freezer = CollectorFreezer(SimpleNamespace(store=Gone()), 10)  # type: ignore[arg-type]
    try:
        freezer.start()
        freezer.tick()
    finally:
        gc.unfreeze()


def test_serve_freezes_the_collector_in_its_own_process_only(live: Live) -> None:
    from cqrs_lab.http.cli import CollectorFreezer, ServeLifespan

    written: list[bool] = []
    freezer = CollectorFreezer(live.engine, 1000)
    served = ServeLifespan(live.app, freezer.start, freezer.tick, lambda: written.append(True))
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:  # a lifespan that only reports
        for _ in range(2):
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    served.app = app
    before = gc.get_freeze_count()
    try:
        live.run(served({"type": "lifespan"}, receive, send))
        assert gc.get_freeze_count() > before  # frozen once the app had started
    finally:
        gc.unfreeze()
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    live.run(asyncio.sleep(0.01))  # let the cancelled watcher finish
    assert written == [True] and served.task is not None and served.task.cancelled()


def test_typed_path_parameters_are_converted_as_starlette_does() -> None:
    from fastapi import FastAPI

    from cqrs_lab.core import Engine
    from cqrs_lab.http.metrics import HttpMetrics
    from cqrs_lab.http.problems import install_handlers
    from cqrs_lab.http.router import LabApp

    async def item(request: Request) -> Response:
        n = request.path_params["n"]
        return PlainTextResponse(f"{type(n).__name__} {n}")

    api = FastAPI()
    install_handlers(api)
    app = LabApp(api, [Route("GET", "/items/{n:int}", item)], HttpMetrics(Engine(), lambda: 0), 99)

    async def get(url: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lab") as client:
            return await client.get(url)

    assert asyncio.run(get("/items/7")).text == "int 7"
    unmatched = asyncio.run(get("/items/x"))  # not an int: no route, FastAPI's 404
    assert unmatched.status_code == 404 and unmatched.headers["content-type"] == PROBLEM
