"""Run a process under a CPU limit, as a container's ``--cpus`` (Kubernetes ``limits.cpu``)
does: a Linux control group whose CFS bandwidth quota is ``cores`` times its period.

:class:`CpuLimit` creates a group of its own (its name carries this process's id) in the
``cpu`` controller of the cgroup v2 hierarchy when it has one, else of cgroup v1, next to
the group this process is in; :meth:`CpuLimit.add` moves a process in (the children it
starts afterwards stay in); :meth:`CpuLimit.close` reads the group's throttling counters,
moves any process still inside back to the parent and removes the group. Creating groups
needs Linux, a ``cpu`` controller and write access to it (root, or a container given its
cgroups): anything missing is a :class:`~cqrs_lab.errors.ConfigError` saying which.

>>> check_cpu_limit(0.5, 0.01)
>>> check_cpu_limit(0.05, 0.01)
Traceback (most recent call last):
...
cqrs_lab.errors.ConfigError: --server-cpus 0.05 with --server-cpu-period 0.01: a quota of 0.5 ms ...
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from cqrs_lab.errors import ConfigError

__all__ = ["CpuLimit", "available_cpus", "check_cpu_limit"]

#: the kernel's bounds on a CFS period (1 ms to 1 s) and its least quota (1 ms)
PERIOD_MIN_S, PERIOD_MAX_S, QUOTA_MIN_S = 0.001, 1.0, 0.001
_DROP = "drop --server-cpus"
_HOW = (
    "run as root, or in a container given write access to its cgroups (docker --privileged "
    f"or --cgroupns=private with a writable /sys/fs/cgroup), or {_DROP}"
)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_cpu_limit(cores: float, period_s: float) -> None:
    """Raise :class:`ConfigError` unless ``cores`` (> 0, at most the CPUs available) and
    ``period_s`` (1 ms to 1 s, a quota ``cores * period_s`` of 1 ms or more) make a limit."""
    if not (isinstance(cores, int | float) and 0 < cores <= available_cpus()):
        raise ConfigError(
            f"--server-cpus {cores!r}: CPU cores the server may use, > 0 and at most the "
            f"{available_cpus()} CPU(s) available (e.g. 0.5)"
        )
    if not (isinstance(period_s, int | float) and PERIOD_MIN_S <= period_s <= PERIOD_MAX_S):
        raise ConfigError(
            f"--server-cpu-period {period_s!r}: seconds per CFS period, from "
            f"{PERIOD_MIN_S:g} to {PERIOD_MAX_S:g} (default 0.01)"
        )
    if cores * period_s < QUOTA_MIN_S - 1e-12:
        raise ConfigError(
            f"--server-cpus {cores:g} with --server-cpu-period {period_s:g}: a quota of "
            f"{cores * period_s * 1e3:g} ms a period; the kernel's least is "
            f"{QUOTA_MIN_S * 1e3:g} ms: raise --server-cpus or --server-cpu-period"
        )


def _mounts(text: str) -> tuple[list[Path], list[Path]]:
    """(cgroup2 mount points, cgroup v1 mount points with the cpu controller) of a
    ``/proc/self/mounts`` text."""
    v2, v1 = [], []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        point = Path(parts[1].replace("\\040", " "))
        if parts[2] == "cgroup2":
            v2.append(point)
        elif parts[2] == "cgroup" and "cpu" in parts[3].split(","):
            v1.append(point)
    return v2, v1


def _own_group(version: int, proc_cgroup: str) -> str:
    """This process's group path in the hierarchy (``/proc/self/cgroup``): v2's ``0::``
    line, or v1's line naming the cpu controller; "/" when none."""
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if version == 2 and hid == "0" and controllers == "":
            return path or "/"
        if version == 1 and "cpu" in controllers.split(","):
            return path or "/"
    return "/"


def _parent(mount: Path, group: str) -> Path:
    """The folder to create the new group in: this process's group when it is visible
    under the mount (a container's cgroup namespace shows its own group as the root)."""
    inside = mount / group.lstrip("/")
    return inside if group != "/" and inside.is_dir() else mount


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _enable_cpu(parent: Path) -> str:
    """Make cgroup v2's cpu controller available to the children of ``parent`` (its
    ``cgroup.subtree_control``): "" when it is, else why it cannot be."""
    control = parent / "cgroup.subtree_control"
    if "cpu" in _read(control).split():
        return ""
    try:
        control.write_text("+cpu\n")
    except OSError as exc:
        return (
            f"cannot enable the cpu controller under {parent} ({exc.strerror}; cgroup v2 "
            "allows it only in a group with no process of its own, and to root)"
        )
    return ""


def _find_parent() -> tuple[int, Path]:
    """(cgroup version, the folder the new group goes in), or a ConfigError saying why
    there is none."""
    if not sys.platform.startswith("linux"):
        raise ConfigError(
            f"--server-cpus: CPU limits are Linux control groups; this is {sys.platform}: "
            f"run the load test on Linux (e.g. in a container), or {_DROP}"
        )
    v2, v1 = _mounts(_read(Path("/proc/self/mounts")))
    own = _read(Path("/proc/self/cgroup"))
    seen = []
    for mount in v2:
        # this process's group, else the hierarchy's root (v2 lets a group with processes
        # of its own give its children no controller; the root is exempt)
        for parent in dict.fromkeys([_parent(mount, _own_group(2, own)), mount]):
            if "cpu" not in _read(parent / "cgroup.controllers").split():
                seen.append(f"{parent} (cgroup v2) has no cpu controller")
                continue
            why = _enable_cpu(parent)
            if not why:
                return 2, parent
            seen.append(why)
    for mount in v1:
        return 1, _parent(mount, _own_group(1, own))
    if not v2 and not v1:
        seen.append("no cgroup filesystem is mounted")
    raise ConfigError(
        f"--server-cpus: no cgroup cpu controller to limit the server with "
        f"({'; '.join(seen)}): {_HOW}"
    )


class CpuLimit:
    """A control group of ``cores`` CPUs' bandwidth (quota ``cores * period_s`` each
    period), created at once; a context manager that removes it on exit. ``stats()`` are
    its throttling counters: ``periods`` (CFS periods the group had work in),
    ``throttled_periods`` (of those, ones it used its quota up in) and ``throttled_s``
    (the time its processes were held back)."""

    def __init__(self, cores: float, period_s: float = 0.01) -> None:
        check_cpu_limit(cores, period_s)
        self.cores, self.period_s = float(cores), float(period_s)
        self.version, self.parent = _find_parent()
        self.path = self.parent / f"cqrs-lab-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        self._last: dict[str, Any] | None = None
        self._base: dict[str, Any] = {}
        try:
            self.path.mkdir()
        except OSError as exc:
            raise ConfigError(
                f"--server-cpus: cannot create the control group {self.path} ({exc.strerror}):"
                f" {_HOW}"
            ) from exc
        period_us = round(self.period_s * 1e6)
        quota_us = max(round(self.cores * self.period_s * 1e6), 1000)
        try:
            if self.version == 2:
                (self.path / "cpu.max").write_text(f"{quota_us} {period_us}\n")
            else:
                (self.path / "cpu.cfs_period_us").write_text(f"{period_us}\n")
                (self.path / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
        except OSError as exc:
            self._remove()
            raise ConfigError(
                f"--server-cpus: cannot set the CPU quota of {self.path} ({exc.strerror}; "
                f"in v1 a child's quota may not exceed its parent's): {_HOW}"
            ) from exc

    def add(self, pid: int) -> None:
        """Move process ``pid`` (its threads too) into the group; processes it starts from
        now on are born inside."""
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            if exc.errno == errno.ESRCH:  # it has already ended: nothing to limit
                return
            raise ConfigError(
                f"--server-cpus: cannot move process {pid} into {self.path} ({exc.strerror}):"
                f" {_HOW}"
            ) from exc

    def pids(self) -> list[int]:
        """The processes in the group now."""
        return [int(x) for x in _read(self.path / "cgroup.procs").split()]

    def mark(self) -> None:
        """Count from now on: :meth:`stats` leaves out what came before (e.g. the server's
        start-up, before the load)."""
        self._base = {}
        self._base = self.stats()

    def stats(self) -> dict[str, Any]:
        """The limit and the group's throttling counters since :meth:`mark` (else since
        the group was created; the last ones read once it is closed)."""
        if self._last is not None:
            return dict(self._last)
        fields = {}
        for line in _read(self.path / "cpu.stat").splitlines():
            name, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                fields[name] = int(value)
        throttled = (
            fields.get("throttled_usec", 0) / 1e6
            if self.version == 2
            else fields.get("throttled_time", 0) / 1e9
        )
        base = self._base
        return {
            "cores": self.cores,
            "period_s": self.period_s,
            "throttled_periods": fields.get("nr_throttled", 0) - base.get("throttled_periods", 0),
            "periods": fields.get("nr_periods", 0) - base.get("periods", 0),
            "throttled_s": throttled - base.get("throttled_s", 0.0),
        }

    def close(self) -> dict[str, Any]:
        """Read the counters, move what still runs inside back to the parent, remove the
        group; returns :meth:`stats`. Safe to call twice."""
        if self._last is not None:
            return dict(self._last)
        self._last = self.stats()
        self._remove()
        return dict(self._last)

    def _remove(self) -> None:
        deadline = time.monotonic() + 2.0
        while True:
            for pid in self.pids():  # still running: back to the group it came from
                with contextlib.suppress(OSError):  # it ended meanwhile
                    (self.parent / "cgroup.procs").write_text(f"{pid}\n")
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise ConfigError(
                        f"--server-cpus: cannot remove the control group {self.path} "
                        f"({exc.strerror}); remove it by hand with rmdir"
                    ) from exc
                time.sleep(0.02)  # an exiting process leaves the group a moment later

    def __enter__(self) -> CpuLimit:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CpuLimit(cores={self.cores:g}, period_s={self.period_s:g}, path={self.path})"
