"""``loadtest --workers N`` pins each server process to a CPU of its own, or nothing at all."""

from __future__ import annotations

from cqrs_lab.load.launch import worker_split


def test_one_server_process_keeps_the_split_for_one() -> None:
    assert worker_split(({0}, {1}), 1) == (({0}, {1}), None)
    assert worker_split(None, 4) == (None, None)  # --no-pin, a remote server, one CPU


def test_several_server_processes_get_a_cpu_each_and_the_generator_the_rest() -> None:
    assert worker_split(({0}, {1, 2, 3, 4}), 3) == (({0, 1, 2}, {3, 4}), None)
    assert worker_split(({2}, {5, 7}), 2) == (({2, 5}, {7}), None)


def test_too_few_cpus_pins_nothing_and_says_why() -> None:
    split, why = worker_split(({0}, {1}), 2)  # would put both workers on one core
    assert split is None
    assert why is not None and "need 3 CPUs" in why and "2 usable" in why
