"""The loop twin's calibration in words and as a scenario file: the ``[server]`` table and
the rest that :class:`~cqrs_lab.load.loop_twin.LoopCalibration` writes
(:func:`twin_toml`), and its one-paragraph summary (:func:`describe_calibration`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cqrs_lab.load.calibration_inputs import scenario_head
from cqrs_lab.load.loop_speed_fit import TIME_BOUNDS

if TYPE_CHECKING:
    from cqrs_lab.load.loop_twin import LoopCalibration

__all__ = ["client_cold", "describe_calibration", "twin_toml"]


def twin_toml(cal: LoopCalibration, rate: float, duration: float, seed: int = 1) -> str:
    """A scenario file of the twin at ``rate`` commands/s for ``duration`` seconds."""

    def empirical(values: Sequence[float]) -> str:
        return '{ dist = "empirical", samples = [' + ", ".join(f"{v:.7g}" for v in values) + "] }"

    projections = "".join(
        f'[projections.{n}]\ndelivery = "effectively-once"\npartitions = 1\nconsumers = 1\n'
        f"batch_size = 256\nper_event = {cal.per_event[n]:.7g}\n"
        f"per_batch = {cal.per_batch.get(n, 0.0):.7g}\n\n"
        for n in sorted(cal.per_event)
    )
    other = ""  # the rest of the machine, on the cores the loops share
    if cal.shares_cores and cal.other_cpu_s > 0:  # the generator's, warming up as it sends faster
        other = f"other_cpu = {cal.other_cpu_s * client_cold(cal, rate):.7g}\n"
    if cal.shares_cores and cal.database_cpu_s > 0:
        other += f"database_cpu = {cal.database_cpu_s:.7g}\n"
    reads = ""
    if cal.reads_per_command > 0:
        reads = (
            f"[reads]\nrate = {float(rate * cal.reads_per_command)!r}\nreaders = 1024\n"
            f"service = {empirical(cal.query_s)}\nprojection = {json.dumps(cal.view)}\n\n"
        )
    return (
        f"# The served process(es) as event loops, calibrated by cqrs-lab twin from\n"
        f"# {cal.source or 'a load test'}.\n\n"
        + scenario_head(cal.domain, cal.params, cal.keys, cal.zipf_s, cal.mix, rate, duration, seed)
        + f"[commands]\nhandlers = 1\nprocesses = {cal.processes}\n"
        f"queue_limit = {cal.queue_limit}\n"
        f'admission = "reject"\nservice = {empirical(cal.command_s)}\n\n'
        f"[server]\nrequest = {cal.request_s:.7g}\n"
        + (f"transport = {empirical(cal.transport_s)}\n" if any(cal.transport_s) else "")
        + f"batch_limit = {cal.batch_limit}\n"
        f"batch = {cal.batch_s:.7g}\ncold = {cal.cold:.6g}\n"
        f"cold_time = {cal.cold_time:.6g}\n"
        + (
            f"transport_cold = {cal.transport_cold:.6g}\n"
            f"transport_cold_time = {cal.transport_cold_time:.6g}\n"
            if cal.transport_cold is not None and any(cal.transport_s)
            else ""
        )
        + (
            f"speed_sd = {cal.speed_sd:.6g}\nspeed_time = {cal.speed_time:.6g}\n"
            if cal.speed_sd > 0
            else ""
        )
        + "".join(f"{k}_repeat = {v:.6g}\n" for k, v in sorted(cal.repeats.items()) if v != 1.0)
        + f"cpus = {min(1.0, cal.cpus):.6g}\nperiod = {cal.period:.6g}\n"
        + (f"commit = {empirical(cal.commit_s)}\n" if any(cal.commit_s) else "")
        + (
            f"commit_per_command = {cal.commit_per_command_s:.7g}\n"
            if any(cal.commit_s) and cal.commit_per_command_s > 0
            else ""
        )
        + (f"pump_wait = {cal.pump_wait_s:.7g}\n" if cal.pump_wait_s > 0 else "")
        + (
            f"pump_wait_per_event = {cal.pump_wait_per_event_s:.7g}\n"
            if cal.pump_wait_per_event_s > 0
            else ""
        )
        + (f"poll = {cal.poll:.6g}\n" if cal.poll > 0 else "")
        + (f"cores = {cal.cores}\n" if cal.shares_cores else "")
        + (f"clients = {clients}\n" if (clients := cal.clients_at(rate)) > 0 else "")
        + other
        + "\n"
        + reads
        + projections
    )


def describe_calibration(cal: LoopCalibration) -> str:
    """One paragraph: what was calibrated, in ms and commands/s."""
    pe = ", ".join(f"{n} {cal.per_batch[n] * 1e3:.3f} + {v * 1e3:.4f}/event"
                   for n, v in sorted(cal.per_event.items()))  # fmt: skip
    return (
        f"calibrated the event loop from {cal.source} at {cal.anchor_rate:.0f} commands/s:"
        f" request {cal.request_s * 1e3:.3f} ms outside the engine (solved from the"
        f" server's CPU)"
        + (
            f" after the transport's read of it, {float(np.mean(cal.transport_s)) * 1e3:.3f}"
            " ms in a turn of the loop of its own"
            if cal.transport_s
            else ""
        )
        + f", command {float(np.mean(cal.command_s)) * 1e3:.4f} ms, query"
        f" {float(np.mean(cal.query_s)) * 1e3:.4f} ms, {cal.reads_per_command:.2f} reads"
        f" per command, projections (ms per pump step + per event) {pe}; writer"
        f" {cal.batch_s * 1e3:.3f} ms per batch; after idling work runs up to"
        f" {1 + cal.cold:.2f} times slower (time constant {cal.cold_time * 1e3:.2f} ms)"
        + (
            f" (the {1 + cal.notes['cold_rejected']:.2f} times fitted left the requests no"
            " CPU: the measured CPU rules it out)"
            if "cold_rejected" in cal.notes
            else ""
        )
        + (
            f", the transport's reads up to {1 + cal.transport_cold:.2f} times"
            f" ({cal.transport_cold_time * 1e3:.2f} ms)"
            if cal.transport_cold is not None and cal.transport_s
            else ""
        )
        + (
            f"; the machine's speed wanders by {cal.speed_sd * 100:.0f}% (sd of its log) over"
            f" stretches of {cal.speed_time * 1e3:.0f} ms (time constant)"
            + (
                " (at the fit's bound: a wander slower than the level's runs resolve, which"
                " the twin simulates at every level; judge its tails near the knee with care)"
                if cal.speed_time >= 0.95 * TIME_BOUNDS[1]
                else ""
            )
            if cal.speed_sd > 0
            else ""
        )
        + f"; CPU limit {cal.cpus:g} cores"
        + (
            f"; {cal.processes} server processes, each batch waiting"
            f" {float(np.mean(cal.commit_s or (0.0,))) * 1e3:.3f} ms for its commit"
            f" (+{cal.commit_per_command_s * 1e3:.3f} ms per command beyond the first) and"
            f" each pump step {cal.pump_wait_s * 1e3:.3f} ms for its read"
            f" (+{cal.pump_wait_per_event_s * 1e3:.4f} ms per event), loop blocked"
            if cal.processes > 1 or any(cal.commit_s)
            else ""
        )
        + (
            f"; the load generator {cal.other_cpu_s * 1e3:.3f} ms of CPU per command on the"
            f" machine's {cal.cores} cores"
            if cal.shares_cores and cal.other_cpu_s > 0
            else ""
        )
        + (
            f"; the local database {cal.database_cpu_s * 1e3:.3f} ms of CPU per transaction"
            f" (writer batch or pump step) on the machine's {cal.cores} cores"
            if cal.shares_cores and cal.database_cpu_s > 0
            else ""
        )
    )


def client_cold(cal: LoopCalibration, rate: float) -> float:
    """The load generator's slow-down factor at ``rate`` commands/s relative to the
    calibration level, for its CPU per command when it shares the server's cores
    (``other_cpu``; the client's latency offsets are not scaled): the generator's own work
    per request is assumed to run cold as the server's
    does (the same machine and kind of process; Locust's is not timed), idle gaps being
    those of its sends, a Poisson stream: ``E[1 - exp(-g / cold_time)] = 1 / (1 + r *
    cold_time)`` for gaps ``g ~ Exp(r)``."""
    per = 1.0 + cal.reads_per_command

    def factor(commands_per_s: float) -> float:
        return 1.0 + cal.cold / (1.0 + commands_per_s * per * cal.cold_time)

    return factor(rate) / factor(cal.anchor_rate) if cal.anchor_rate > 0 else 1.0
