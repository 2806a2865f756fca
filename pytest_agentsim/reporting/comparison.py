"""The baseline gate: each policy's violations now against a results file from main.

Samples. A policy's evidence is the number of *distinct* conversations it was judged
in: trials of one event that produced the same transcript (a deterministic agent, a
replayed cassette) are one sample, not ``--agentsim-repeat`` of them, on both sides
(the baseline's event records carry each trial's transcript hash). Counting them apart
would make any change look significant with enough repeats, and the repeat count, not
the agent, would decide the gate. Events that errored are left out on both sides.

Verdicts, per policy judged in this run:

- *regressed*: the policy had no violation in the baseline and has one now (a new
  failure needs no p-value; ``--agentsim-baseline-new-violation=test`` leaves it to the
  test), or the one-sided Fisher exact test finds more violations than the baseline's
  rate explains, at ``alpha`` with Holm's correction over the policies compared;
- *improved*: significantly fewer violations (one-sided, at ``alpha``);
- *unchanged*: neither, and the samples were enough to see a rise of ``detect`` (a rate
  ``detect`` higher than the baseline's) with 80% power at the level a lone regression
  must reach (``alpha / policies compared``, Holm's first step);
- *not enough samples*: neither, and they were not: "unchanged" would be a claim the
  run cannot back. It fails the gate with ``too_few = "fail"``; it warns by default,
  since with the handful of events a suite usually has, most policies with known
  violations on main would fail every pull request, changed or not (the new-violation
  rule still catches a clean policy breaking, at any sample size);
- *no baseline*: judged now but never in the baseline (a new policy or event); with the
  new-violation rule, a violation of it is a regression, as of a clean policy.

Nothing here knows about pytest: it reads records and a results document.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any
from typing import Literal

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.judging.judges import combine
from pytest_agentsim.reporting.tables import Tally
from pytest_agentsim.reporting.tables import text_table

NewViolation = Literal["fail", "test"]
TooFew = Literal["warn", "fail"]

#: The power an "unchanged" verdict needs: the chance of seeing a rise of ``detect``.
POWER = 0.8


@dataclass(frozen=True)
class Counts:
    """A policy's violations among the samples it was judged in, and among the trials."""

    violated: int
    judged: int
    trials_violated: int
    trials_judged: int

    def __str__(self) -> str:
        return f"{self.violated}/{self.judged}"

    @property
    def rate(self) -> float:
        return self.violated / self.judged if self.judged else 0.0


#: One trial as the comparison sees it: (domain, event, transcript hash), whether it
#: errored, and each policy's outcome.
Trial = tuple[tuple[str, str, str], bool, Sequence[tuple[str, Outcome]]]


def sample_counts(trials: Iterable[Trial]) -> dict[str, Counts]:
    """Per policy, (violated, judged) over distinct transcripts of each event.

    A policy judged differently in trials with the same transcript (a judge that samples)
    counts once with the outcomes combined as a judge's are: a violation wins.
    """
    samples: dict[tuple[str, str, str], dict[str, list[Outcome]]] = {}
    by_trial: dict[str, Tally] = {}
    for key, errored, outcomes in trials:
        if errored:
            continue
        group = samples.setdefault(key, {})
        for policy, outcome in outcomes:
            group.setdefault(policy, []).append(outcome)
            by_trial.setdefault(policy, Tally()).add(outcome)
    by_sample: dict[str, Tally] = {}
    for group in samples.values():
        for policy, found in group.items():
            by_sample.setdefault(policy, Tally()).add(combine(found))
    return {
        policy: Counts(
            tally.violated, tally.judged, by_trial[policy].violated, by_trial[policy].judged
        )
        for policy, tally in sorted(by_sample.items())
    }


def record_trials(records: Iterable[EventRecord]) -> list[Trial]:
    return [
        (
            (record.domain, record.event, record.transcript_sha256 or f"trial {record.trial}"),
            record.errored,
            [(item.policy, item.outcome) for item in record.policies],
        )
        for record in records
    ]


def distinct_samples(records: Sequence[EventRecord]) -> dict[str, tuple[int, int]]:
    """(violated, judged) per policy over distinct samples: the results file's ``samples``."""
    return {p: (c.violated, c.judged) for p, c in sample_counts(record_trials(records)).items()}


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


def baseline_counts(baseline: Mapping[str, Any]) -> dict[str, Counts]:
    """Each policy's counts in a baseline results file, over the events it could judge.

    Counted from its event records, deduplicated as this run's are, so that a baseline
    written by a run whose conversations broke off (or before errors were counted apart,
    when a broken-off conversation could still read as violated) holds none of their
    verdicts. A file without event records falls back to its per-policy ``samples``
    (deduplicated), else to its per-policy totals less their errors (files from before
    ``samples`` existed count each trial: their repeats were not deduplicated).
    """
    events = baseline.get("events")
    if isinstance(events, list):
        return sample_counts(
            (
                (
                    str(event.get("domain", "")),
                    str(event.get("event", "")),
                    str(event.get("transcript_sha256") or f"trial {event.get('trial', 0)}"),
                ),
                _errored(event),
                [(item["policy"], Outcome(item["outcome"])) for item in event.get("policies", [])],
            )
            for event in events
        )
    counts = {}
    for policy, entry in baseline.get("policies", {}).items():
        violated = int(entry["violated"])
        judged = int(entry["events"]) - int(entry["not_applicable"]) - int(entry.get("errors", 0))
        samples = entry.get("samples") or {"violated": violated, "judged": judged}
        counts[policy] = Counts(int(samples["violated"]), int(samples["judged"]), violated, judged)
    return counts


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_tail(violated: int, judged: int, base_violated: int, base_judged: int) -> float:
    """One-sided Fisher exact test: P(at least ``violated`` of ``judged``) under no change.

    Given all violations of both runs, the current run's count is hypergeometric when the
    true rate is the same in both. Summed in logs: exact binomials of thousands of
    samples are slow, and the p-value needs no more than a float's precision.
    """
    total = judged + base_judged
    bad = violated + base_violated
    first = max(violated, judged - (total - bad))
    last = min(bad, judged)
    denominator = _log_comb(total, judged)
    return min(
        1.0,
        sum(
            math.exp(_log_comb(bad, x) + _log_comb(total - bad, judged - x) - denominator)
            for x in range(first, last + 1)
        ),
    )


def _at_least(count: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= count), in logs so that large n do not overflow."""
    if count <= 0 or p >= 1:
        return 1.0 if count <= n else 0.0
    if p <= 0:
        return 0.0

    def pmf(k: int) -> float:
        log = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        return math.exp(log + k * math.log(p) + (n - k) * math.log1p(-p))

    return max(0.0, 1.0 - sum(pmf(k) for k in range(min(count, n + 1))))


def _smallest_regression(before: Counts, judged: int, level: float, new_rule: bool) -> int | None:
    """The fewest violations among ``judged`` samples that the gate calls a regression
    (None: no count could be one). The Fisher tail falls as the count grows."""
    if new_rule and before.violated == 0:
        return 1
    if fisher_tail(judged, judged, before.violated, before.judged) > level:
        return None
    low, high = 0, judged
    while low < high:
        middle = (low + high) // 2
        if fisher_tail(middle, judged, before.violated, before.judged) <= level:
            high = middle
        else:
            low = middle + 1
    return low


def detectable_rise(before: Counts, judged: int, *, level: float, new_rule: bool) -> float | None:
    """The smallest rise of the baseline's violation rate that ``judged`` samples would
    show as a regression with :data:`POWER`, in whole percentage points (None: none would).

    The baseline is taken as it is (its observed rate), and the current samples as
    independent draws at the raised rate: the power of the test the gate runs, given
    the baseline it has.
    """
    base_rate = before.rate
    if base_rate >= 1:
        return 0.0  # always violated: it cannot get worse
    threshold = _smallest_regression(before, judged, level, new_rule)
    if threshold is None or judged == 0:
        return None
    for points in range(1, 101):
        rate = min(1.0, base_rate + points / 100)
        if _at_least(threshold, judged, rate) >= POWER:
            return points / 100
        if rate >= 1:
            break
    return None


class Verdict(str, Enum):
    regressed = "regressed"
    improved = "improved"
    unchanged = "unchanged"
    too_few = "not enough samples"
    no_baseline = "no baseline"


@dataclass(frozen=True)
class PolicyComparison:
    """One policy against the baseline; ``before`` is None when the baseline never judged it."""

    policy: str
    verdict: Verdict
    before: Counts | None
    after: Counts
    p_worse: float | None = None
    p_better: float | None = None
    new_violation: bool = False
    detectable: float | None = None

    @property
    def p_value(self) -> float | None:
        """The p-value of the direction the verdict is about (worse, unless improved)."""
        return self.p_better if self.verdict is Verdict.improved else self.p_worse


@dataclass(frozen=True)
class BaselineSettings:
    """How the baseline gate decides (see the module's docstring)."""

    alpha: float = 0.05
    new_violation: NewViolation = "fail"
    detect: float = 0.2
    too_few: TooFew = "warn"


@dataclass(frozen=True)
class Comparison:
    """Every policy's verdict against one baseline file, and how they were reached."""

    name: str
    settings: BaselineSettings
    rows: list[PolicyComparison]
    trials: int  # this run's judged trials
    samples: int  # ... of them distinct (event, transcript)

    def with_verdict(self, verdict: Verdict) -> list[PolicyComparison]:
        return [row for row in self.rows if row.verdict is verdict]

    @property
    def failing(self) -> list[PolicyComparison]:
        """The policies that fail the gate: regressed, and too few samples if that fails."""
        fails = {Verdict.regressed} | (
            {Verdict.too_few} if self.settings.too_few == "fail" else set()
        )
        return [row for row in self.rows if row.verdict in fails]

    @property
    def passed(self) -> bool:
        return not self.failing

    def line(self) -> str:
        """'baseline main.json: 1 regressed (a), 0 improved, 2 unchanged, ...'."""
        parts = []
        for verdict in Verdict:
            rows = self.with_verdict(verdict)
            if not rows and verdict in (Verdict.too_few, Verdict.no_baseline):
                continue
            names = (
                f" ({', '.join(row.policy for row in rows)})"
                if rows and verdict is not Verdict.unchanged
                else ""
            )
            parts.append(f"{len(rows)} {verdict.value}{names}")
        too_few = self.with_verdict(Verdict.too_few)
        warning = (
            f"; not enough samples to see a rise of {self.settings.detect:.0%} "
            + ("fails the gate" if self.settings.too_few == "fail" else "only warns")
            if too_few
            else ""
        )
        named = f"baseline {self.name}" if self.name else "baseline"
        return f"{named}: {', '.join(parts)}{warning}"

    def method(self) -> str:
        new = (
            "a violation of a policy clean in the baseline is a regression; "
            if self.settings.new_violation == "fail"
            else ""
        )
        dedup = (
            f"; {self.trials} trials = {self.samples} distinct samples (identical transcripts "
            "count once)"
            if self.trials != self.samples
            else ""
        )
        return (
            f"{new}one-sided Fisher exact test, Holm, alpha {self.settings.alpha:g}; "
            f"unchanged = a rise of {self.settings.detect:.0%} would have been seen "
            f"(power {POWER:.0%}){dedup}"
        )

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the per-policy table (terminal and step summary)."""
        header = ["policy", "verdict", "before", "after", "p", "detectable rise"]
        rows = []
        for row in self.rows:
            verdict = row.verdict.value + (" (new violation)" if row.new_violation else "")
            p = row.p_value
            rows.append(
                [
                    row.policy,
                    verdict,
                    "-" if row.before is None else str(row.before),
                    str(row.after),
                    "-" if p is None else f"{p:.3g}",
                    "-"
                    if row.before is None or row.before.rate >= 1
                    else "none"
                    if row.detectable is None
                    else f"+{row.detectable:.0%}",
                ]
            )
        return header, rows

    def text_lines(self) -> list[str]:
        """The per-policy table as plain text, then how it was decided."""
        header, rows = self.table()
        return [*text_table(header, rows, text_columns=2), self.method()]


def compare_to_baseline(
    records: Sequence[EventRecord],
    baseline: Mapping[str, Any],
    settings: BaselineSettings,
    *,
    name: str = "",
) -> Comparison:
    """Each policy judged in this run against a baseline results file (module docstring)."""
    trials = record_trials(records)
    current = sample_counts(trials)
    before_counts = baseline_counts(baseline)
    new_rule = settings.new_violation == "fail"
    compared = {
        policy: (before, after)
        for policy, after in current.items()
        if after.judged and (before := before_counts.get(policy)) is not None and before.judged
    }
    p_worse = {
        policy: fisher_tail(after.violated, after.judged, before.violated, before.judged)
        for policy, (before, after) in compared.items()
    }
    significant: set[str] = set()
    for rank, policy in enumerate(sorted(p_worse, key=lambda policy: p_worse[policy])):
        if p_worse[policy] > settings.alpha / (len(p_worse) - rank):
            break  # Holm: stop at the first hypothesis that is not rejected
        significant.add(policy)
    level = settings.alpha / max(1, len(compared))
    rows = []
    for policy, after in current.items():
        if not after.judged:
            continue
        if policy not in compared:
            new = new_rule and after.violated > 0
            verdict = Verdict.regressed if new else Verdict.no_baseline
            rows.append(PolicyComparison(policy, verdict, None, after, new_violation=new))
            continue
        before = compared[policy][0]
        p_better = fisher_tail(
            after.judged - after.violated,
            after.judged,
            before.judged - before.violated,
            before.judged,
        )
        new = new_rule and before.violated == 0 and after.violated > 0
        detectable = detectable_rise(before, after.judged, level=level, new_rule=new_rule)
        if new or policy in significant:
            verdict = Verdict.regressed
        elif p_better <= settings.alpha:
            verdict = Verdict.improved
        elif detectable is None or detectable > settings.detect + 1e-9:
            verdict = Verdict.too_few
        else:
            verdict = Verdict.unchanged
        rows.append(
            PolicyComparison(
                policy,
                verdict,
                before,
                after,
                p_worse=p_worse[policy],
                p_better=p_better,
                new_violation=new,
                detectable=detectable,
            )
        )
    judged = [trial for trial in trials if not trial[1]]
    return Comparison(
        name=name,
        settings=settings,
        rows=rows,
        trials=len(judged),
        samples=len({key for key, _, _ in judged}),
    )
