"""The parts of a scenario, as frozen dataclasses: arrivals, workload, command side,
projections (with crashes, autoscaling, retries, transport faults), reads, incidents, SLOs.

:class:`~cqrs_lab.sim.scenario.Scenario` puts them together; the scenario file's keys and
their defaults are in :mod:`cqrs_lab.sim.scenario_keys`.

>>> WorkloadSpec(population=10).accounts
10
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cqrs_lab.sim.distributions import Dist
from cqrs_lab.sim.loop_speed import CONSTANT_TIME

#: the CPU seconds of a period's quota that a limited process left unused and may still run
#: in the next period: Linux keeps up to 1 ms (``min_cfs_rq_runtime``) of its runtime on the
#: CPU when the process goes idle, and that runtime no longer expires at the period's end
QUOTA_CARRY = 0.001

_SERVICE = Dist("exponential", 0.002)
_TTF, _TTR = Dist("exponential", 600.0), Dist("deterministic", 5.0)
_PER_EVENT, _PER_BATCH = Dist("deterministic", 0.0002), Dist("deterministic", 0.001)
_READ = Dist("exponential", 0.001)
_NO_DELAY = Dist("deterministic", 0.0)

__all__ = [
    "SLIS",
    "AlertRule",
    "ArrivalSpec",
    "AutoscaleSpec",
    "CommandSpec",
    "CrashSpec",
    "DriftSpec",
    "ProjectionSpec",
    "ReadSpec",
    "RebuildSpec",
    "RetrySpec",
    "ServerSpec",
    "SloSpec",
    "TransportSpec",
    "WorkloadSpec",
]

#: service level indicators an SLO can be declared on
SLIS = (
    "command_latency",
    "query_latency",
    "projection_lag",
    "read_staleness",
    "backlog",
    "error_rate",
)


@dataclass(frozen=True)
class ArrivalSpec:
    """How commands arrive: ``process`` and its parameters (rates per second).

    poisson (``rate``), constant (``rate``), onoff (``rate`` while on, ``off_rate``,
    ``on`` and ``off`` seconds), diurnal (mean ``rate``, ``amplitude``, ``period``), step
    (``rate``, then ``to_rate`` from ``at``), spike (``rate``, ``to_rate`` from ``at`` for
    ``length`` seconds), trace (rows of a CSV: time and command kind, replayed at ``speed``).
    """

    process: str = "poisson"
    rate: float = 100.0
    off_rate: float = 0.0
    on: float = 1.0
    off: float = 1.0
    amplitude: float = 0.5
    period: float = 60.0
    at: float = 0.0
    length: float = 0.0
    to_rate: float = 0.0
    speed: float = 1.0
    trace: tuple[tuple[float, str], ...] = ()

    @property
    def peak_rate(self) -> float:
        """The highest rate the profile reaches (commands per second)."""
        if self.process == "diurnal":
            return self.rate * (1 + self.amplitude)
        if self.process in ("step", "spike"):
            return max(self.rate, self.to_rate)
        return self.rate


@dataclass(frozen=True)
class WorkloadSpec:
    """Arrivals, the command mix (kind -> weight), the key population and how keys are drawn.

    ``mix`` names the domain workload's command kinds (empty: the kinds the domain declares,
    at their declared weights, leaving out any that needs a saga the scenario does not run);
    ``population`` is the number of keys (the bank's accounts, the inventory's products);
    ``params`` are the domain workload's parameters given by the scenario (the rest keep
    their declared defaults).
    """

    arrivals: ArrivalSpec = field(default_factory=ArrivalSpec)
    mix: tuple[tuple[str, float], ...] = ()
    population: int = 1000
    params: tuple[tuple[str, int | float], ...] = ()
    keys: str = "uniform"
    zipf_s: float = 1.1

    @property
    def accounts(self) -> int:
        """The population under the bank's name for it (kept for existing callers)."""
        return self.population


@dataclass(frozen=True)
class CommandSpec:
    """The command side: handler pool, service time, admission and backpressure."""

    handlers: int = 4
    service: Dist = _SERVICE
    queue_limit: int | None = None
    admission: str = "reject"  # reject | block | shed-oldest
    rate_limit: float | None = None  # token bucket: tokens per second
    burst: int = 1
    max_retries: int = 5  # optimistic-concurrency retries before giving up
    # server processes, each with its own queue, admission and pool of ``handlers`` handlers
    # (``cqrs-lab serve --workers N``); arrivals are spread over them at random
    processes: int = 1
    # from an event's commit until projections can read it (a gap-safe reader holding it
    # back while older transactions may still commit); events become readable in order
    commit_visibility: Dist = _NO_DELAY


@dataclass(frozen=True)
class ServerSpec:
    """The served processes' event loops (``[server]``; see :mod:`cqrs_lab.sim.event_loop`, one per
    ``[commands] processes``): CPU seconds per HTTP request of the transport's read callback, a
    turn of the loop of its own before the request's task (``transport``; 0: no turn of its
    own), and outside the engine and the transport (``request``, the share ``answer_share`` of
    it spent answering), per writer batch (``batch``, at most ``batch_limit`` commands), the
    seconds a batch then blocks its loop waiting for the database's commit (``commit``, plus
    ``commit_per_command`` for each command beyond the batch's first) and a projection's pump
    step its read (``pump_wait``, plus ``pump_wait_per_event`` for each event it carries), the
    slow-down after idling (``cold``, ``cold_time``; the
    transport's reads their own, ``transport_cold`` and ``transport_cold_time``, when given),
    the cost factor of a piece of work right after one of its kind on the loop
    (``transport_repeat``: a transport's read after a read; ``request_repeat``: a request's
    parsing or answer after another's; ``command_repeat``: a command's service after the
    previous one's in a writer batch), the machine's wandering speed (``speed_sd`` of the log of
    a cost factor, ``speed_time`` its time constant: :mod:`cqrs_lab.sim.loop_speed`; 0:
    constant), a CPU limit per process (``cpus`` per ``period``, up to ``quota_carry`` seconds
    of a period's unused quota still to run in the next: :data:`QUOTA_CARRY`), the pumps' idle
    poll for the other processes' appends (``poll``; 0: at once), the machine's cores that the
    loops share (``cores``; None: one each) and the CPU seconds the rest of the machine (load
    generator, local database) spends on those cores per command (``other_cpu``; only with
    ``cores``) and a local database's CPU on them per transaction it serves, each writer batch
    and each projection pump step (``database_cpu``; only with ``cores``); the load generator's
    users, at most ``clients`` requests in flight (:mod:`cqrs_lab.sim.clients`; 0: no limit)."""

    request: Dist = _NO_DELAY
    transport: Dist = _NO_DELAY
    answer_share: float = 0.5
    batch: Dist = _NO_DELAY
    batch_limit: int = 256
    cold: float = 0.0
    cold_time: float = 0.001
    transport_cold: float | None = None
    transport_cold_time: float | None = None
    transport_repeat: float = 1.0
    request_repeat: float = 1.0
    command_repeat: float = 1.0
    speed_sd: float = 0.0
    speed_time: float = CONSTANT_TIME
    cpus: float = 1.0
    period: float = 0.01
    quota_carry: float = QUOTA_CARRY
    commit: Dist = _NO_DELAY
    commit_per_command: float = 0.0
    pump_wait: Dist = _NO_DELAY
    pump_wait_per_event: float = 0.0
    poll: float = 0.0
    cores: int | None = None
    other_cpu: float = 0.0
    database_cpu: float = 0.0
    clients: int = 0

    @property
    def transport_chill(self) -> tuple[float, float] | None:
        """The transport's own ``(cold, cold_time)`` (either absent: the loop's), or None
        when neither is given."""
        if self.transport_cold is None and self.transport_cold_time is None:
            return None
        cold = self.cold if self.transport_cold is None else self.transport_cold
        return cold, self.transport_cold_time or self.cold_time

    @property
    def repeats(self) -> dict[str, float]:
        """The loop's cost factor per kind of work right after one of its kind."""
        return {"transport": self.transport_repeat, "request": self.request_repeat}


@dataclass(frozen=True)
class CrashSpec:
    """Consumer crashes: time to failure and time to repair (per consumer)."""

    ttf: Dist = _TTF
    ttr: Dist = _TTR


@dataclass(frozen=True)
class AutoscaleSpec:
    """Scale the consumers on ``metric`` (backlog in events or lag in seconds)."""

    metric: str = "backlog"
    scale_out_above: float = 1000.0
    scale_in_below: float = 100.0
    min: int = 1
    max: int = 8
    cooldown: float = 30.0
    interval: float = 5.0
    startup_delay: float = 10.0


@dataclass(frozen=True)
class RetrySpec:
    """Handler retries with backoff (the engine's ``RetryPolicy``)."""

    max_attempts: int = 5
    base: float = 0.1
    factor: float = 2.0
    max_delay: float = 10.0
    jitter: str = "full"


@dataclass(frozen=True)
class TransportSpec:
    """Transport faults between the log and a consumer (the engine's ``FaultPlan``)."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    delay_seconds: tuple[float, float] = (0.01, 0.1)
    redelivery_timeout: float = 1.0


@dataclass(frozen=True)
class ProjectionSpec:
    """One projection's consumer group: partitions, consumers, costs, semantics, faults."""

    name: str = "balances"
    delivery: str = "effectively-once"
    partitions: int = 4
    consumers: int = 2
    batch_size: int = 64
    per_event: Dist = _PER_EVENT
    per_batch: Dist = _PER_BATCH
    checkpoint_interval: float | None = None  # at-least-once: seconds between commits
    linger: float = 0.0
    session_timeout: float | None = None  # partitions of a dead consumer move after this
    crash: CrashSpec | None = None
    autoscale: AutoscaleSpec | None = None
    transient_errors: float = 0.0  # probability one handler call fails
    retry: RetrySpec = field(default_factory=RetrySpec)
    transport: TransportSpec | None = None


@dataclass(frozen=True)
class ReadSpec:
    """Queries against a read model at ``rate`` per second, served by ``readers``.

    ``follow_writes``: probability an accepted command's client reads its account back
    ``think`` seconds later (this is what read-your-writes is measured on).
    """

    rate: float = 100.0
    readers: int = 4
    service: Dist = _READ
    projection: str = "balances"
    follow_writes: float = 0.0
    think: float = 0.05


@dataclass(frozen=True)
class DriftSpec:
    """A newer producer writes ``event`` at schema version 2 (``rate``/s from ``start``);
    the readers learn version 2 at ``fix_at``. ``event`` None: the domain's first event
    type that the scenario's views handle and the workload's first kind produces."""

    event: str | None = None
    start: float = 10.0
    rate: float = 5.0
    stop: float | None = None
    fix_at: float | None = None


@dataclass(frozen=True)
class RebuildSpec:
    """Rebuild ``projection`` from position 0 at time ``at`` (``in-place`` or ``shadow``)."""

    at: float = 10.0
    projection: str = "balances"
    mode: str = "in-place"


@dataclass(frozen=True)
class AlertRule:
    """A multi-window burn-rate alert: fires when both windows burn at >= ``burn_rate``."""

    severity: str
    long_window: float
    short_window: float
    burn_rate: float


@dataclass(frozen=True)
class SloSpec:
    """An objective: the fraction ``objective`` of events with ``sli`` <= ``threshold``.

    ``period`` is the error budget's period (seconds; default the run's duration).
    """

    name: str
    sli: str
    threshold: float
    objective: float = 0.99
    projection: str | None = None
    period: float | None = None
