"""The per-policy and per-risk tables, pass^k and the cost lines of a run."""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import LLMTally
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyRecord
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.generation.snapshots import SnapshotWrite
from pytest_agentsim.judging.judges import combine
from pytest_agentsim.llm.messages import usd
from pytest_agentsim.reporting.failure import _short

#: The outcomes that fail a test (pass^k counts a trial with any of them as failed).
BAD_OUTCOMES = (Outcome.violated, Outcome.error, Outcome.inconclusive)


def llm_totals(records: Sequence[EventRecord]) -> LLMTally:
    """The model calls of all records."""
    total = LLMTally()
    for record in records:
        total = total + record.llm
    return total


def cost_line(records: Sequence[EventRecord], other: LLMTally | None = None) -> str:
    """'cost: $0.0123, 4,567 tokens, 12 LLM calls (30 replayed)': what the run spent;
    ``other``: the calls of conversations that are no record (``simulated_user`` tests)."""
    other = other or LLMTally()
    total = llm_totals(records) + other
    if not (total.calls or total.replayed_calls or total.failed_calls):
        return "cost: $0.00, 0 tokens (no LLM calls: offline users and rule judges)"
    replayed = f", {total.replayed_calls} replayed from cassettes" if total.replayed_calls else ""
    failed = f", {total.failed_calls} failed" if total.failed_calls else ""
    driven = other.calls + other.replayed_calls
    by_tests = f" ({driven} of them in simulated_user tests)" if driven else ""
    return (
        f"cost: ${total.cost_usd:.4f}, {total.tokens:,} tokens in {total.calls} LLM calls"
        f"{replayed}{failed}{by_tests}"
    )


def short_cost(records: Sequence[EventRecord]) -> str:
    """'cost $0.12 (40 LLM calls)' for progress lines."""
    total = llm_totals(records)
    calls = total.calls + total.replayed_calls
    return f"cost ${total.cost_usd:.2f}" + (f" ({calls} LLM calls)" if calls else "")


@dataclass
class Tally:
    """Outcome counts of one policy (or risk category) over events."""

    events: int = 0
    compliant: int = 0
    violated: int = 0
    errors: int = 0
    not_applicable: int = 0
    inconclusive: int = 0

    def add(self, outcome: Outcome) -> None:
        self.events += 1
        field = {
            Outcome.compliant: "compliant",
            Outcome.violated: "violated",
            Outcome.error: "errors",
            Outcome.inconclusive: "inconclusive",
        }.get(outcome, "not_applicable")
        setattr(self, field, getattr(self, field) + 1)

    @property
    def judged(self) -> int:
        """Events where it applied and could be judged: not n/a, not an error.

        An error says nothing about the agent (the conversation broke off, a judge
        failed), so it counts neither for nor against it: errors are counted apart.
        """
        return self.events - self.not_applicable - self.errors

    @property
    def violation_rate(self) -> float | None:
        """Violated / events where it was judged; None when it never was."""
        return self.violated / self.judged if self.judged else None

    def rate(self) -> str:
        rate = self.violation_rate
        return "-" if rate is None else f"{rate:.0%}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "judged": self.judged, "violation_rate": self.violation_rate}


@dataclass(frozen=True)
class Problem:
    """A policy that was violated, errored or inconclusive in one event's trial."""

    event: str
    trial: int
    item: PolicyRecord


@dataclass
class Aggregates:
    """Per-policy and per-risk-category tallies over judged events, and the problems."""

    policies: dict[str, Tally] = field(default_factory=dict)
    policy_risk: dict[str, str] = field(default_factory=dict)
    risks: dict[str, Tally] = field(default_factory=dict)
    risk_level1: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def aggregate(records: Sequence[EventRecord]) -> Aggregates:
    """Per policy, count each event once; per risk category, an event counts with the worst
    outcome of its policies in that category."""
    totals = Aggregates()
    for record in records:
        by_risk: dict[str, list[Outcome]] = {}
        for item in record.policies:
            totals.policies.setdefault(item.policy, Tally()).add(item.outcome)
            totals.policy_risk[item.policy] = item.risk_category
            totals.risk_level1[item.risk_category] = item.risk_level1
            by_risk.setdefault(item.risk_category, []).append(item.outcome)
            if item.outcome in BAD_OUTCOMES:
                totals.problems.append(Problem(record.event, record.trial, item))
        for risk, outcomes in by_risk.items():
            totals.risks.setdefault(risk, Tally()).add(combine(outcomes))
    return totals


def text_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, text_columns: int
) -> list[str]:
    """A plain-text table; the first ``text_columns`` are left-aligned, numbers right."""
    rows = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if i >= text_columns and number else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    return out


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """tau-bench's unbiased pass^k for one task: C(c, k) / C(n, k), c of n trials passed."""
    return math.comb(successes, k) / math.comb(trials, k)


@dataclass
class PassK:
    """pass^k over repeated events (each event run k or more times).

    A trial passes for an event when none of its policies is violated, errored or
    inconclusive; for a policy (or risk category) when that policy (or none of that
    category's policies) is. Each figure is the mean over events of C(c, k) / C(n, k),
    with k the smallest number of trials any event had (as tau-bench caps it).
    """

    k: int
    overall: float
    events: dict[str, float]
    policies: dict[str, float]
    risk_categories: dict[str, float]
    identical: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pass_k(records: Sequence[EventRecord]) -> PassK | None:
    """pass^k of repeated records; None unless every event has at least two trials."""
    trials: dict[tuple[str, str], list[EventRecord]] = {}
    for record in records:
        trials.setdefault((record.domain, record.event), []).append(record)
    if not trials or min(len(group) for group in trials.values()) < 2:
        return None
    k = min(len(group) for group in trials.values())
    several = len({domain for domain, _ in trials}) > 1

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    def estimate(group: list[EventRecord], *, policy: str = "", risk: str = "") -> float:
        """pass^k of one event's trials: all of them, or only one policy's or risk's outcomes."""

        def passed(record: EventRecord) -> bool:
            return not any(
                (not policy or item.policy == policy) and (not risk or item.risk_category == risk)
                for item in record.with_outcome(*BAD_OUTCOMES)
            )

        return pass_hat_k(sum(1 for record in group if passed(record)), len(group), k)

    events: dict[str, float] = {}
    by_policy: dict[str, list[float]] = {}
    by_risk: dict[str, list[float]] = {}
    identical = []
    for (domain, event), group in sorted(trials.items()):
        name = f"{domain}/{event}" if several else event
        events[name] = estimate(group)
        if len({record.transcript_sha256 for record in group}) == 1:
            identical.append(name)
        judged = {
            item.policy: item.risk_category
            for record in group
            for item in record.policies
            if item.outcome is not Outcome.not_applicable
        }
        for policy in judged:
            by_policy.setdefault(policy, []).append(estimate(group, policy=policy))
        for risk in set(judged.values()):
            by_risk.setdefault(risk, []).append(estimate(group, risk=risk))
    return PassK(
        k=k,
        overall=mean(list(events.values())),
        events=events,
        policies={policy: mean(values) for policy, values in sorted(by_policy.items())},
        risk_categories={risk: mean(values) for risk, values in sorted(by_risk.items())},
        identical=identical,
    )


@dataclass(frozen=True)
class EventCounts:
    """The run's events by what became of them: judged (compliant, with a violation,
    inconclusive) or not (errored, by failure kind). Errors are counted apart: an event
    that could not be judged is neither a pass nor a violation."""

    events: int
    compliant: int
    violated: int
    inconclusive: int
    errored: dict[str, int]
    #: Distinct events; fewer than ``events`` when repeated: then the counts are trials.
    distinct: int | None = None

    @property
    def judged(self) -> int:
        return self.compliant + self.violated + self.inconclusive

    @property
    def errors(self) -> int:
        return sum(self.errored.values())

    @property
    def error_rate(self) -> float:
        """Events that could not be judged / events (0 for a run without events)."""
        return self.errors / self.events if self.events else 0.0

    def line(self) -> str:
        """'events: 29 judged (...); 3 could not be judged (2 agent crash, ...)'; with
        repeats 'trials of 12 events: 36 judged (...)', since each trial is counted."""
        repeated = self.distinct is not None and self.distinct != self.events
        plural = "" if self.distinct == 1 else "s"
        what = f"trials of {self.distinct} event{plural}" if repeated else "events"
        text = (
            f"{what}: {self.judged} judged ({self.compliant} compliant, {self.violated} with "
            f"a violation, {self.inconclusive} inconclusive); {self.errors} could not be judged"
        )
        if not self.errors:
            return text
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.errored.items())
        return f"{text} ({kinds}; {self.error_rate:.1%} of {self.events})"


def event_counts(records: Sequence[EventRecord]) -> EventCounts:
    """Each event once: judged by its kind, or errored (EventRecord.errored) by its kind."""
    errored: dict[str, int] = {}
    judged: dict[FailureKind | None, int] = {}
    for record in records:
        if record.errored:
            kind = record.kind.value if record.kind and record.kind.is_error else "error"
            label = kind.replace("_", " ")
            errored[label] = errored.get(label, 0) + 1
        else:
            judged[record.kind] = judged.get(record.kind, 0) + 1
    return EventCounts(
        events=len(records),
        compliant=judged.get(None, 0),
        violated=judged.get(FailureKind.violation, 0),
        inconclusive=judged.get(FailureKind.inconclusive, 0),
        errored=dict(sorted(errored.items())),
        distinct=len({(record.domain, record.event) for record in records}),
    )


def not_exercised(records: Sequence[EventRecord]) -> list[str]:
    """Policies events list that no check or judge saw come up in any event of the run.

    Their passes are vacuous (a forbidden call was never made in conversations where
    nothing was attempted): the events, or the checks, do not test them.
    """
    listed = {item.policy for record in records for item in record.policies if item.listed}
    seen = {item.policy for record in records for item in record.policies if item.exercised}
    return sorted(listed - seen)


def _problem_line(problem: Problem, *, repeated: bool = False) -> str:
    item = problem.item
    turn = f" turn {item.turn}" if item.turn is not None else ""
    trial = f" r{problem.trial + 1}" if repeated else ""
    return (
        f"{item.outcome.value.upper():9} {problem.event}{trial} {item.policy}{turn}: "
        f"{_short(item.reason, 140)}"
    )


def summary_lines(records: Sequence[EventRecord], other_llm: LLMTally | None = None) -> list[str]:
    """Tables per policy and per risk category, then one line per violation and error.

    Per policy, each column counts events; ``rate`` is violated / events where the policy
    was judged (not-applicable ones and errors excluded). Per risk category, an event
    counts as violated when any of its policies in that category was violated. A line
    counts the events judged apart from those that could not be, and another names the
    listed policies no event exercised.
    """
    totals = aggregate(records)
    per_policy, policy_risk = totals.policies, totals.policy_risk
    per_risk, risk_level1 = totals.risks, totals.risk_level1
    repeated = pass_k(records)
    problems = [_problem_line(p, repeated=repeated is not None) for p in totals.problems]
    header = ["events", "compliant", "violated", "inconclusive", "errors", "n/a", "rate"]
    if repeated:
        header.append(f"pass^{repeated.k}")

    def cells(tally: Tally, estimate: float | None = None) -> list[str]:
        row = [
            str(tally.events),
            str(tally.compliant),
            str(tally.violated),
            str(tally.inconclusive),
            str(tally.errors),
            str(tally.not_applicable),
            tally.rate(),
        ]
        if repeated:
            row.append("-" if estimate is None else f"{estimate:.2f}")
        return row

    lines = ["per policy:"]
    lines += [
        "  " + line
        for line in text_table(
            ["policy", "risk category", *header],
            (
                [p, policy_risk[p], *cells(t, repeated.policies.get(p) if repeated else None)]
                for p, t in sorted(per_policy.items())
            ),
            text_columns=2,
        )
    ]
    lines.append("per risk category:")
    lines += [
        "  " + line
        for line in text_table(
            ["risk category", "level 1", *header],
            (
                [
                    r,
                    risk_level1[r],
                    *cells(t, repeated.risk_categories.get(r) if repeated else None),
                ]
                for r, t in sorted(per_risk.items())
            ),
            text_columns=2,
        )
    ]
    if repeated:
        lines.append(
            f"pass^{repeated.k} over {len(repeated.events)} events: {repeated.overall:.2f} "
            "(mean of C(c,k)/C(n,k), c of n trials without a violation or error; "
            "events count each trial)"
        )
        if repeated.identical:
            lines.append(
                f"identical transcripts in every trial (not independent samples): "
                f"{', '.join(repeated.identical)}"
            )
    lines.append(event_counts(records).line())
    unexercised = not_exercised(records)
    if unexercised:
        lines.append(
            f"not exercised in any event: {', '.join(unexercised)} (no check or judge saw "
            "them come up in the events that list them)"
        )
    lines.append(cost_line(records, other_llm))
    disagreements = [
        f"{record.event} {item.policy}: {item.disagreement}"
        for record in records
        for item in record.policies
        if item.disagreement
    ]
    if disagreements:
        lines.append(f"judges disagree on {len(disagreements)} verdicts:")
        lines += ["  " + line for line in disagreements]
    if problems:
        lines.append("violations and errors:")
        lines += ["  " + line for line in problems]
    return lines


def generation_lines(writes: Sequence[SnapshotWrite], configured: Sequence[Path]) -> list[str]:
    """What --agentsim-generate wrote: files, counts, coverage, difficulty."""
    lines: list[str] = []
    for write in writes:
        state = "wrote" if write.changed else "unchanged"
        coverage = (
            f"NOT COVERED: {'; '.join(write.uncovered)}"
            if write.uncovered
            else "every policy covered"
        )
        skipped = (
            f"; {write.skipped} {'sample' if write.skipped == 1 else 'samples'} could not "
            "be built (listed in the file)"
            if write.skipped
            else ""
        )
        lines.append(
            f"{state} {display_path(write.path)}: {write.events} {write.domain} events; "
            f"{coverage}{skipped}"
        )
        if write.events < write.target:
            lines.append(
                f"  note: {write.events} of the {write.target} events asked for "
                "(generation.count): the samples drawn gave no more distinct events"
            )
        if write.llm is not None:
            tally = write.llm
            lines.append(
                f"  by {write.generator.removeprefix('llm:')}: {tally.calls} LLM calls, "
                f"{tally.replayed_calls} replayed from cassettes, "
                f"{tally.prompt_tokens + tally.completion_tokens:,} tokens, "
                f"{usd(tally.cost_usd)}"
            )
        lines.extend(f"  {line}" for line in write.histogram)
        if write.path not in configured:
            lines.append(
                f"  note: {display_path(write.path)} is not among the configured events "
                "files; add it to agentsim_events to run it without --agentsim-generate"
            )
    return lines
