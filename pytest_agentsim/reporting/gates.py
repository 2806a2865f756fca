"""Quality gates: fail a run on violation rates or pass^k, not on every single violation.

Without a gate every violated policy fails its test and the run exits 1. A team gating
prompt changes on an LLM agent usually accepts some rate of violations; with a gate
configured, the gate decides the exit status *for violations only*: if every failed test
failed because of policy violations and every threshold holds, the run exits 0 (the
failures stay visible in the report); if a threshold is crossed the run exits 1. Any
other failure or error (an agent crash, a broken judge, a failing assertion of the
test's own) still fails the run: nothing that could not be judged turns into a pass.

Errors are counted apart from violations: the violation gates, pass^k and the baseline
comparison judge the agent by the events that could be judged, and leave out those that
errored (:attr:`EventRecord.errored`; a conversation that broke off says nothing about
the agent's rate). How many errored is a gate of its own, ``--agentsim-max-error-rate``:
with it, errored events are tolerated up to that share of the run (a provider that
fails now and then), and the run fails above it; without it, any error fails the run.

The baseline comparison lives in :mod:`~pytest_agentsim.reporting.comparison`.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.reporting.comparison import BaselineSettings
from pytest_agentsim.reporting.comparison import Comparison
from pytest_agentsim.reporting.comparison import Verdict
from pytest_agentsim.reporting.comparison import compare_to_baseline
from pytest_agentsim.reporting.tables import BAD_OUTCOMES
from pytest_agentsim.reporting.tables import aggregate
from pytest_agentsim.reporting.tables import pass_k


@dataclass(frozen=True)
class GateSettings:
    max_violation_rate: float | None = None
    per_risk: Mapping[str, float] = field(default_factory=dict)
    per_policy: Mapping[str, float] = field(default_factory=dict)
    min_pass_k: float | None = None
    baseline: Mapping[str, Any] | None = None
    baseline_name: str = ""
    comparison: BaselineSettings = field(default_factory=BaselineSettings)
    max_error_rate: float | None = None

    @property
    def gates_violations(self) -> bool:
        """A violation gate is set: it, not each violation, decides about violations."""
        return bool(
            self.max_violation_rate is not None
            or self.per_risk
            or self.per_policy
            or self.min_pass_k is not None
            or self.baseline is not None
        )

    @property
    def gates_errors(self) -> bool:
        """The error-rate gate is set: it, not each error, decides about errored events."""
        return self.max_error_rate is not None

    @property
    def configured(self) -> bool:
        return self.gates_violations or self.gates_errors


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision: one line per check (failures first), the baseline comparison's
    per-policy rows, and the policies whose violations fail the gate (what to annotate)."""

    passed: bool
    lines: list[str]
    comparison: Comparison | None = None
    blamed: frozenset[str] = frozenset()

    @property
    def headline(self) -> str:
        return f"agentsim gate: {'PASS' if self.passed else 'FAIL'}"


def _fmt(rate: float) -> str:
    return f"{rate:.1%}"


def evaluate(records: Sequence[EventRecord], settings: GateSettings) -> GateVerdict:
    """Check every configured threshold; each check is one line, failures first.

    The rate gates and pass^k count each trial (a point estimate weighs every event by
    its repeats alike, deterministic or not); only the baseline comparison, a test whose
    evidence grows with its samples, counts identical trials once.
    """
    failures: list[str] = []
    passes: list[str] = []
    blamed: set[str] = set()

    def check(ok: bool, line: str, culprits: set[str] | None = None) -> None:
        (passes if ok else failures).append(line)
        if not ok and culprits:
            blamed.update(culprits)

    if settings.max_error_rate is not None:
        errored = sum(record.errored for record in records)
        rate = errored / len(records) if records else 0.0
        limit = settings.max_error_rate
        check(
            rate <= limit,
            f"events that could not be judged: {errored}/{len(records)} = {_fmt(rate)} "
            f"({'<=' if rate <= limit else '>'} {_fmt(limit)})",
        )
    # The agent is judged by the events that could be judged: errors are counted apart.
    all_records, records = records, [record for record in records if not record.errored]
    left_out = len(all_records) - len(records)
    violated_items = [item for record in records for item in record.with_outcome(Outcome.violated)]
    every_violated = {item.policy for item in violated_items}
    if settings.max_violation_rate is not None:
        violated = sum(bool(record.with_outcome(Outcome.violated)) for record in records)
        rate = violated / len(records) if records else 0.0
        limit = settings.max_violation_rate
        check(
            rate <= limit,
            f"events with a violation: {violated}/{len(records)} = {_fmt(rate)} "
            f"({'<=' if rate <= limit else '>'} {_fmt(limit)})"
            + (f"; {left_out} that could not be judged left out" if left_out else ""),
            every_violated,
        )
    totals = aggregate(records)
    for name, limit, tallies, kind in (
        *((n, lim, totals.risks, "risk category") for n, lim in settings.per_risk.items()),
        *((n, lim, totals.policies, "policy") for n, lim in settings.per_policy.items()),
    ):
        tally = tallies.get(name)
        observed = tally.violation_rate if tally else None
        if observed is None:
            check(True, f"{kind} {name}: never applied, nothing to gate")
            continue
        culprits = (
            {name}
            if kind == "policy"
            else {item.policy for item in violated_items if item.risk_category == name}
        )
        check(
            observed <= limit,
            f"{kind} {name}: violation rate {_fmt(observed)} "
            f"({'<=' if observed <= limit else '>'} {_fmt(limit)})",
            culprits,
        )
    if settings.min_pass_k is not None:
        repeated = pass_k(records)
        if repeated is not None:
            value, label = repeated.overall, f"pass^{repeated.k}"
        else:
            passed = [not r.with_outcome(*BAD_OUTCOMES) for r in records]
            value = sum(passed) / len(passed) if passed else 0.0
            label = "pass^1 (no --agentsim-repeat)"
        limit = settings.min_pass_k
        check(
            value >= limit,
            f"{label}: {value:.2f} ({'>=' if value >= limit else '<'} {limit:.2f})",
            every_violated,
        )
    comparison = None
    if settings.baseline is not None:
        comparison = compare_to_baseline(
            records, settings.baseline, settings.comparison, name=settings.baseline_name
        )
        check(
            comparison.passed,
            comparison.line(),
            {row.policy for row in comparison.with_verdict(Verdict.regressed)},
        )
    return GateVerdict(
        passed=not failures,
        lines=failures + passes,
        comparison=comparison,
        blamed=frozenset(blamed),
    )


def parse_thresholds(lines: Sequence[str], *, where: str) -> dict[str, float]:
    """``name = rate`` lines (rate 0-1, or a percentage like ``5%``) from an ini option."""
    thresholds: dict[str, float] = {}
    for line in lines:
        name, sep, value = line.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"{where}: expected 'name = rate', got {line!r}")
        thresholds[name.strip()] = parse_rate(value, where=f"{where}: {name.strip()}")
    return thresholds


def parse_rate(value: str, *, where: str) -> float:
    text = value.strip()
    try:
        rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(
            f"{where}: expected a rate between 0 and 1 (or 0%-100%), got {value.strip()!r}"
        ) from None
    if not 0 <= rate <= 1:
        raise ValueError(
            f"{where}: expected a rate between 0 and 1 (or 0%-100%), got {value.strip()!r}"
        )
    return rate
