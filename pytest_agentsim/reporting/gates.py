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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.reporting.tables import BAD_OUTCOMES
from pytest_agentsim.reporting.tables import Tally
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
    alpha: float = 0.05
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
    passed: bool
    lines: list[str]

    @property
    def headline(self) -> str:
        return f"agentsim gate: {'PASS' if self.passed else 'FAIL'}"


def _fmt(rate: float) -> str:
    return f"{rate:.1%}"


def evaluate(records: Sequence[EventRecord], settings: GateSettings) -> GateVerdict:
    """Check every configured threshold; each check is one line, failures first."""
    failures: list[str] = []
    passes: list[str] = []

    def check(ok: bool, line: str) -> None:
        (passes if ok else failures).append(line)

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
    if settings.max_violation_rate is not None:
        violated = sum(bool(record.with_outcome(Outcome.violated)) for record in records)
        rate = violated / len(records) if records else 0.0
        limit = settings.max_violation_rate
        check(
            rate <= limit,
            f"events with a violation: {violated}/{len(records)} = {_fmt(rate)} "
            f"({'<=' if rate <= limit else '>'} {_fmt(limit)})"
            + (f"; {left_out} that could not be judged left out" if left_out else ""),
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
        check(
            observed <= limit,
            f"{kind} {name}: violation rate {_fmt(observed)} "
            f"({'<=' if observed <= limit else '>'} {_fmt(limit)})",
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
        )
    if settings.baseline is not None:
        regressed, improved, unchanged = compare_to_baseline(
            records, settings.baseline, alpha=settings.alpha
        )

        def describe(change: PolicyChange, p: float) -> str:
            (v0, n0), (v1, n1) = change.before, change.after
            return f"{change.policy} {v0}/{n0} -> {v1}/{n1} (p={p:.3g})"

        check(
            not regressed,
            f"baseline {settings.baseline_name}: regressed (one-sided Fisher exact, Holm, "
            f"alpha {settings.alpha:g}): "
            + (", ".join(describe(c, c.p_worse) for c in regressed) or "none"),
        )
        passes.append(
            "baseline: improved: "
            + (", ".join(describe(c, c.p_better) for c in improved) or "none")
        )
        passes.append("baseline: unchanged: " + (", ".join(c.policy for c in unchanged) or "none"))
    return GateVerdict(passed=not failures, lines=failures + passes)


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


@dataclass(frozen=True)
class PolicyChange:
    policy: str
    before: tuple[int, int]  # (violated, judged) in the baseline
    after: tuple[int, int]
    p_worse: float
    p_better: float


def _tail(violated: int, judged: int, base_violated: int, base_judged: int) -> float:
    """One-sided Fisher exact test: P(at least ``violated`` of ``judged``) under no change.

    Given all violations of both runs, the current run's count is hypergeometric when the
    true rate is the same in both.
    """
    total = judged + base_judged
    bad = violated + base_violated
    denominator = math.comb(total, judged)
    return (
        sum(
            math.comb(bad, x) * math.comb(total - bad, judged - x)
            for x in range(violated, min(bad, judged) + 1)
        )
        / denominator
    )


_ERROR_STOPS = {stop.value for stop in StopReason if stop.is_error}
_ERROR_KINDS = {kind.value for kind in FailureKind if kind.is_error}


def _errored(event: Mapping[str, Any]) -> bool:
    """EventRecord.errored of a baseline's event, read from its JSON: files written before
    ``kind`` existed lack it, so a broken-off conversation or an error outcome tells."""
    kind = event.get("kind")
    outcomes = [item.get("outcome") for item in event.get("policies", [])]
    return (
        kind in _ERROR_KINDS
        or event.get("stop_reason") in _ERROR_STOPS
        or Outcome.error.value in outcomes
    )


def baseline_counts(baseline: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(violated, judged) per policy in a baseline results file, over the events it could judge.

    Counted from its event records, so that a baseline written by a run whose
    conversations broke off (or before errors were counted apart, when a broken-off
    conversation could still read as violated) holds none of their verdicts; a file
    without event records falls back to its per-policy totals, less their errors.
    """
    events = baseline.get("events")
    if not isinstance(events, list):
        return {
            policy: (
                int(entry["violated"]),
                int(entry["events"]) - int(entry["not_applicable"]) - int(entry.get("errors", 0)),
            )
            for policy, entry in baseline.get("policies", {}).items()
        }
    tallies: dict[str, Tally] = {}
    for event in events:
        if _errored(event):
            continue
        for item in event.get("policies", []):
            tallies.setdefault(item["policy"], Tally()).add(Outcome(item["outcome"]))
    return {policy: (tally.violated, tally.judged) for policy, tally in tallies.items()}


def compare_to_baseline(
    records: Sequence[EventRecord], baseline: Mapping[str, Any], *, alpha: float
) -> tuple[list[PolicyChange], list[PolicyChange], list[PolicyChange]]:
    """(regressed, improved, unchanged) policies against a baseline results file.

    Each policy's violation count (of the events where it was judged; on both sides,
    events that errored are left out) is tested one-sided with Fisher's exact test in
    both directions; regressions use Holm's correction over all compared policies, so
    that noise across many policies does not fail a run.
    """
    current = aggregate([record for record in records if not record.errored]).policies
    before_counts = baseline_counts(baseline)
    changes = []
    for policy, tally in sorted(current.items()):
        before = before_counts.get(policy)
        if before is None or tally.judged == 0:
            continue
        base_violated, base_judged = before
        if base_judged == 0:
            continue
        changes.append(
            PolicyChange(
                policy=policy,
                before=(base_violated, base_judged),
                after=(tally.violated, tally.judged),
                p_worse=_tail(tally.violated, tally.judged, base_violated, base_judged),
                p_better=_tail(
                    tally.judged - tally.violated,
                    tally.judged,
                    base_judged - base_violated,
                    base_judged,
                ),
            )
        )
    regressed_names: set[str] = set()
    ordered = sorted(changes, key=lambda change: change.p_worse)
    for rank, change in enumerate(ordered):
        if change.p_worse > alpha / (len(ordered) - rank):
            break  # Holm: stop at the first hypothesis that is not rejected
        regressed_names.add(change.policy)
    regressed = [c for c in changes if c.policy in regressed_names]
    improved = [c for c in changes if c.policy not in regressed_names and c.p_better <= alpha]
    unchanged = [c for c in changes if c not in regressed and c not in improved]
    return regressed, improved, unchanged
