"""Check results as data: per check pass / fail / info, each violation with its evidence.

``info`` means the property does not hold but was not promised (at-most-once may lose
events); it is shown, and does not fail the report.

>>> r = CheckReport("demo", [CheckResult("no loss", "pass", "all 3 events applied")])
>>> r.ok, r.failed
(True, [])
>>> print(r.to_text())
demo: PASS (1 checks)
  [pass] no loss: all 3 events applied
>>> r.add(CheckResult("convergence", "info", "1 row differs (not promised)", [Violation("a")]))
>>> r.headline
'PASS (2 checks; 1 not promised by this design did not hold: see [info])'
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CheckReport", "CheckResult", "Status", "Violation"]

Status = Literal["pass", "fail", "info"]


@dataclass(frozen=True)
class Violation:
    """One counterexample: what is wrong, and the records (events, operations) that show it."""

    message: str
    evidence: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "evidence": [dict(e) for e in self.evidence]}


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check."""

    name: str
    status: Status
    summary: str
    violations: tuple[Violation, ...] = ()
    measures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "measures": dict(self.measures),
            "violations": [v.to_dict() for v in self.violations],
        }


def verdict(
    name: str,
    violations: Iterable[Violation],
    *,
    promised: bool = True,
    ok: str,
    bad: str,
    measures: dict[str, Any] | None = None,
) -> CheckResult:
    """A pass when there is no violation; else a fail (``promised``) or info."""
    found = tuple(violations)
    if not found:
        return CheckResult(name, "pass", ok, (), measures or {})
    status: Status = "fail" if promised else "info"
    suffix = "" if promised else " (not promised by this design)"
    return CheckResult(name, status, bad.format(n=len(found)) + suffix, found, measures or {})


class CheckReport:
    """A titled list of :class:`CheckResult`; ``ok`` when none failed.

    Renders as plain text (:meth:`to_text`), JSON-ready data (:meth:`to_dict`) and HTML in
    notebooks (``_repr_html_``, failures highlighted).
    """

    def __init__(self, title: str, results: Iterable[CheckResult] = ()) -> None:
        self.title = title
        self.results: list[CheckResult] = list(results)

    def add(self, result: CheckResult) -> None:
        self.results.append(result)

    def extend(self, other: CheckReport) -> CheckReport:
        self.results.extend(other.results)
        return self

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def __getitem__(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no check named {name!r}; have {[r.name for r in self.results]}")

    def violations(self, name: str | None = None) -> list[Violation]:
        return [v for r in self.results if name in (None, r.name) for v in r.violations]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "ok": self.ok, "checks": [r.to_dict() for r in self.results]}

    def to_json(self) -> str:
        """Strict JSON: a NaN or infinite number (a record's value may be one) is null, as
        strict parsers reject the bare ``NaN`` token."""
        return json.dumps(_strict(self.to_dict()), indent=2, sort_keys=True, default=str)

    @property
    def headline(self) -> str:
        """PASS or FAIL and how many checks; with the checks outside the design's promises
        that found something (a PASS with a view that diverged must not read as all well)."""
        head = f"{'PASS' if self.ok else 'FAIL'} ({len(self.results)} checks"
        seen = sum(1 for r in self.results if r.status == "info" and r.violations)
        if seen:
            head += f"; {seen} not promised by this design did not hold: see [info]"
        return head + ")"

    def to_text(self, max_violations: int = 5) -> str:
        lines = [f"{self.title}: {self.headline}"]
        for r in self.results:
            lines.append(f"  [{r.status}] {r.name}: {r.summary}")
            for v in r.violations[:max_violations]:
                lines.append(f"      - {v.message}")
                for e in v.evidence:
                    lines.append(f"          {_compact(e)}")
            if len(r.violations) > max_violations:
                lines.append(f"      ... and {len(r.violations) - max_violations} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"CheckReport({self.title!r}, ok={self.ok}, checks={len(self.results)})"

    def _repr_html_(self) -> str:
        colour = {"pass": "#e6f4ea", "fail": "#fde2e1", "info": "#fff4d6"}
        head = html.escape(self.headline)
        rows = []
        for r in self.results:
            details = "".join(
                f"<li><b>{html.escape(v.message)}</b><br><code>"
                + "<br>".join(html.escape(_compact(e)) for e in v.evidence)
                + "</code></li>"
                for v in r.violations[:20]
            )
            rows.append(
                f'<tr style="background:{colour[r.status]}"><td>{r.status.upper()}</td>'
                f"<td>{html.escape(r.name)}</td><td>{html.escape(r.summary)}"
                f"{'<ul>' + details + '</ul>' if details else ''}</td></tr>"
            )
        return (
            f"<div><h4>{html.escape(self.title)}: {head}</h4><table>"
            "<tr><th>status</th><th>check</th><th>result</th></tr>"
            + "".join(rows)
            + "</table></div>"
        )


def _compact(record: dict[str, Any], width: int = 160) -> str:
    text = ", ".join(f"{k}={v}" for k, v in record.items())
    return text if len(text) <= width else text[: width - 3] + "..."


def _strict(v: Any) -> Any:
    """``v`` with every non-finite float replaced by None (JSON's null)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _strict(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_strict(x) for x in v]
    return v
