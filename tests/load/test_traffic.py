"""What the Locust users send, built from a domain's workload (no Locust, no server)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from cqrs_lab.domains import bank, inventory
from cqrs_lab.errors import ConfigError
from cqrs_lab.load import Traffic


def test_the_same_seed_and_user_send_the_same_commands() -> None:
    t = Traffic.build("cqrs_lab.domains.bank", keys=20)

    def run(seed: int, user: int) -> list[tuple[str, str, dict[str, object]]]:
        g = t.generator(seed, user, itertools.count(1))
        return [(w.kind, w.path, w.body) for w in (g.write() for _ in range(50))]

    assert run(3, 1) == run(3, 1)
    assert run(3, 1) != run(3, 2) and run(3, 1) != run(4, 1)


def test_commands_follow_the_domains_classes_and_the_mix() -> None:
    t = Traffic.build(inventory.domain, keys=5, mix="reserve=1,restock=1")
    g = t.generator(0, 1, itertools.count(1))
    writes = [g.write() for _ in range(200)]
    assert {w.kind for w in writes} == {"reserve", "restock"}
    for w in writes:
        cls = inventory.domain.command(w.path.removeprefix("/commands/"))
        assert cls(**w.body).sku == w.key  # the body is exactly the command's fields
        assert w.key == f"sku-{w.index}" and 0 <= w.index < 5


def test_ids_stay_unique_across_users_sharing_one_sequence() -> None:
    # one sequence per Locust process, shared by its users: transfer ids never collide
    t = Traffic.build(bank.domain, keys=10, mix="transfer=1")
    seqs = itertools.count(1)
    users = [t.generator(0, u, seqs) for u in range(1, 4)]
    ids = [g.write().body["transfer_id"] for _ in range(30) for g in users]
    assert len(set(ids)) == len(ids) == 90


def test_reads_and_the_audit_use_the_workloads_queries() -> None:
    t = Traffic.build(bank.domain, keys=10)
    g = t.generator(0, 1, itertools.count(1))
    views = {r.view for r in (g.read(4) for _ in range(60)) if r is not None}
    assert views == {"balances", "statements"}
    r = g.read(4, "statements")
    assert r is not None
    assert (r.path, r.params) == ("/queries/GetStatement", {"account_id": "acct-4", "limit": "20"})
    audit = t.audit_reads("acct-4", 4)
    assert [(a.path, a.params) for a in audit] == [
        ("/queries/GetBalance", {"account_id": "acct-4"}),
        ("/queries/GetStatement", {"account_id": "acct-4"}),  # no limit: every line
    ]


def test_setup_creates_every_key_with_the_workloads_parameters() -> None:
    t = Traffic.build(bank.domain, keys=3, params="opening_balance=500")
    setup = list(t.setup_writes())
    assert [w.path for w in setup] == ["/commands/OpenAccount"] * 3
    assert [w.body["account_id"] for w in setup] == ["acct-0", "acct-1", "acct-2"]
    assert {w.body["opening_balance"] for w in setup} == {500}


def test_a_domain_without_a_workload_cannot_be_load_tested() -> None:
    bare = replace(inventory.domain, workload=None)
    with pytest.raises(ConfigError, match="declares no workload"):
        Traffic.build(bare)
    with pytest.raises(ConfigError, match="--params 'max_amount'"):
        Traffic.build(bank.domain, params="max_amount")
