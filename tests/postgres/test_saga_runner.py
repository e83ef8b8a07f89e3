"""A store's sagas run in one place at a time: one server (``--sagas internal``) or
``cqrs-lab project`` workers, never both and never two servers (each would send every step)."""

from __future__ import annotations

import itertools

import pytest

from cqrs_lab.domains import bank
from cqrs_lab.errors import ConfigError
from cqrs_lab.http.config import ServerConfig, build_engine
from cqrs_lab.stores.postgres_project import open_worker

_names = itertools.count(1)


def test_the_sagas_run_in_one_place_at_a_time(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = db_url
    import cqrs_lab.stores.postgres_sagas as sagas

    real_claim = sagas.claim_sagas
    monkeypatch.setattr(sagas, "claim_sagas", lambda store: real_claim(store, wait=0.3))
    internal = build_engine(ServerConfig(store=url, sagas="internal"))
    try:
        with pytest.raises(ConfigError, match="another cqrs-lab serve process runs the sagas"):
            build_engine(ServerConfig(store=url, sagas="internal"))
        external = build_engine(ServerConfig(store=url, sagas="external"))  # a replica: fine
        external.store.close()
        with pytest.raises(ConfigError, match="runs the sagas on this store itself"):
            open_worker(url, bank.domain, None, partitions=4)
    finally:
        internal.store.close()  # its lock goes with its session
    worker = open_worker(url, bank.domain, None, partitions=4)
    try:
        with pytest.raises(ConfigError, match="1 cqrs-lab project worker"):
            build_engine(ServerConfig(store=url, sagas="internal"))
    finally:
        worker.close()
    build_engine(ServerConfig(store=url, sagas="internal")).store.close()  # free again
