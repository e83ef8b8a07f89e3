"""``cqrs-lab serve`` says what it serves once it listens, documents every flag with its
default, and counts its documentation pages under their own route in ``/metrics``."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys

import httpx

from cqrs_lab.http.cli import register
from tests.http.conftest import ROOT, Live


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    register(sub)
    serve = sub.choices["serve"]
    assert isinstance(serve, argparse.ArgumentParser)
    return serve


def test_every_serve_flag_has_help_and_shows_its_default() -> None:
    parser = _serve_parser()
    # hidden flags (help=SUPPRESS) are the pre-forking parent's plumbing, not a user's
    flags = [
        a
        for a in parser._actions
        if a.option_strings and a.dest != "help" and a.help != argparse.SUPPRESS
    ]
    assert len(flags) >= 20
    for action in flags:
        name = action.option_strings[0]
        assert action.help, f"{name} has no help"
        text = action.help % {"default": action.default}
        assert "default" in text, f"{name}: its help does not show the default: {text!r}"
    port = next(a for a in flags if "--port" in a.option_strings)
    assert (port.help or "") % {
        "default": port.default
    } == "TCP port; 0: any free one (default: 8000)"


def test_serve_prints_one_start_line_once_it_listens() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cqrs_lab.cli", "serve", "--port", "0", "--domain",
         "cqrs_lab.domains.inventory"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the line (or the process ends)
        m = re.fullmatch(
            r"cqrs-lab serve: cqrs_lab\.domains\.inventory \(effectively-once delivery\) on "
            r"(http://127\.0\.0\.1:(\d+)), store memory; API docs \1/docs\n",
            line,
        )
        assert m, line
        url, port = m.group(1), int(m.group(2))
        assert port > 0  # the port actually bound, not the 0 asked for
        # printed once uvicorn listens: the URL answers straight away
        assert httpx.get(url + "/livez", timeout=5).status_code == 200
        assert httpx.get(url + "/docs", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate(timeout=5)
    assert "cqrs-lab serve:" not in rest  # one start line only


def test_docs_pages_have_their_own_route_label(live: Live) -> None:
    assert live.get("/docs").status_code == 200
    assert live.get("/openapi.json").status_code == 200
    assert live.get("/no/such/page").status_code == 404
    text = live.get("/metrics").text
    assert 'method="GET",route="/docs",status="200"} 1.0' in text
    assert 'method="GET",route="/openapi.json",status="200"} 1.0' in text
    # an unknown path still counts as unmatched (not under its own, unbounded, label)
    assert 'route="<unmatched>",status="404"} 1.0' in text
    assert "/no/such/page" not in text
