"""``cqrs-lab serve`` arguments and the server's configuration checks."""

from __future__ import annotations

import argparse

import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.http import ADMIN_TOKEN_ENV, ServerConfig
from cqrs_lab.http.cli import register


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_defaults_are_local_memory_effectively_once() -> None:
    args = _parse()
    assert (args.host, args.port, args.store, args.delivery) == (
        "127.0.0.1", 8000, "memory", "effectively-once",
    )  # fmt: skip
    assert args.admin_token is None
    args = _parse("--store", "sqlite:/tmp/x.db", "--delivery", "at-least-once", "--port", "0")
    assert ServerConfig(store=args.store, delivery=args.delivery).store_path == "/tmp/x.db"
    with pytest.raises(SystemExit):
        _parse("--delivery", "twice")


def test_admin_token_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    assert ServerConfig.admin_token_from_env(None) is None
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "from-the-env")
    assert ServerConfig.admin_token_from_env(None) == "from-the-env"
    assert ServerConfig.admin_token_from_env("from-the-flag") == "from-the-flag"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("delivery", "twice"),
        ("store", "mysql://x"),
        ("store", "sqlite:"),
        ("queue_size", 0),
        ("max_body_bytes", 0),
        ("ready_max_lag", -1),
        ("max_wait", 301),
        ("restart_after", -1),
        ("admin_token", "short"),
        ("domain", "no_such_module_x"),
        ("domain", "cqrs_lab.domains.bank:nothing"),
    ],
)
def test_bad_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        ServerConfig(**{field: value})  # type: ignore[arg-type]


def test_serve_that_cannot_listen_exits_3_naming_host_and_port() -> None:
    """A port in use (or a host that does not resolve) ended with uvicorn's bare OSError
    line; the last line now names the flags to change."""
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "cqrs_lab.cli", "serve", "--port", str(port)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 3, done.stderr
    assert last == f"cqrs-lab serve: could not listen on --host 127.0.0.1 --port {port} (see above)"


@pytest.mark.parametrize(
    "line",
    [
        ["serve", "--workers", "2", "--port", "0"],
        ["serve", "--workers=2", "--port", "0"],
        ["serve", "--worker", "2", "--port", "0"],  # an abbreviation argparse takes
        ["serve", "--work=3", "--port", "0", "--saga", "internal"],
    ],
)
def test_a_worker_is_one_worker_whatever_the_parents_line_held(line: list[str]) -> None:
    """``--worker 2`` was passed on to each worker, which became a parent of its own and
    started two more, without end (13 processes in 6 s with --port 0)."""
    from cqrs_lab.http.workers import child_argv

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    child = parser.parse_args(child_argv(line, 7))
    assert (child.workers, child.listen_fd, child.sagas) == (1, 7, "external")
