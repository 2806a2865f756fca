"""The baseline gate: distinct samples, Fisher + Holm, new violations, not enough samples."""

from __future__ import annotations

import math
from typing import Any

import pytest
from record_factory import event_record

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.reporting.comparison import BaselineSettings
from pytest_agentsim.reporting.comparison import Comparison
from pytest_agentsim.reporting.comparison import Counts
from pytest_agentsim.reporting.comparison import Verdict
from pytest_agentsim.reporting.comparison import baseline_counts
from pytest_agentsim.reporting.comparison import compare_to_baseline
from pytest_agentsim.reporting.comparison import detectable_rise
from pytest_agentsim.reporting.comparison import fisher_tail
from pytest_agentsim.reporting.gates import GateSettings
from pytest_agentsim.reporting.gates import evaluate
from pytest_agentsim.reporting.results import results_document

TEST_ONLY = BaselineSettings(new_violation="test")


def record(event: str, outcomes: dict[str, str], trial: int = 0, sha: str = "") -> EventRecord:
    return event_record(event, outcomes, risks={}, trial=trial, sha=sha)


def counts(policy: str, violated: int, judged: int, *, repeat: int = 1) -> list[EventRecord]:
    """``judged`` events of one policy, the first ``violated`` violating it; each repeated
    ``repeat`` times with the same transcript, as a deterministic agent's are."""
    return [
        record(
            f"{policy}-{n}",
            {policy: "violated" if n < violated else "compliant"},
            trial,
            sha=f"{policy}-{n}",
        )
        for n in range(judged)
        for trial in range(repeat)
    ]


def baseline_of(*groups: list[EventRecord]) -> dict[str, Any]:
    return results_document([r for group in groups for r in group], run={})


def verdicts(comparison: Comparison) -> dict[str, str]:
    return {row.policy: row.verdict.value for row in comparison.rows}


def test_fisher_tail_against_a_hand_computed_case() -> None:
    # 3 of 3 violated now, 0 of 3 before: C(3,3)·C(3,0) / C(6,3) = 1/20.
    assert fisher_tail(3, 3, 0, 3) == pytest.approx(0.05)
    assert fisher_tail(0, 3, 0, 3) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("violated", "judged", "base_violated", "base_judged"),
    [(0, 1, 0, 1), (5, 12, 2, 12), (1, 40, 30, 40), (12, 12, 0, 3), (0, 7, 7, 7), (9, 50, 1, 10)],
)
def test_fisher_tail_in_logs_is_the_exact_one(
    violated: int, judged: int, base_violated: int, base_judged: int
) -> None:
    total, bad = judged + base_judged, violated + base_violated
    exact = sum(
        math.comb(bad, x) * math.comb(total - bad, judged - x)
        for x in range(violated, min(bad, judged) + 1)
    ) / math.comb(total, judged)
    assert fisher_tail(violated, judged, base_violated, base_judged) == pytest.approx(exact)


def test_significant_regression_fails_improvements_are_reported() -> None:
    baseline = baseline_of(
        counts("worse", 2, 40), counts("steady", 2, 80), counts("better", 12, 40)
    )
    current = counts("worse", 14, 40) + counts("steady", 2, 80) + counts("better", 0, 40)
    comparison = compare_to_baseline(current, baseline, BaselineSettings(), name="b.json")
    assert verdicts(comparison) == {
        "better": "improved",
        "steady": "unchanged",
        "worse": "regressed",
    }
    worse = comparison.with_verdict(Verdict.regressed)[0]
    assert (str(worse.before), str(worse.after), worse.new_violation) == ("2/40", "14/40", False)
    assert worse.p_value is not None and worse.p_value < 0.001
    verdict = evaluate(current, GateSettings(baseline=baseline, baseline_name="b.json"))
    assert not verdict.passed and verdict.blamed == {"worse"}
    assert verdict.lines == [
        "baseline b.json: 1 regressed (worse), 1 improved (better), 1 unchanged"
    ]


def test_the_baseline_run_itself_passes() -> None:
    records = counts("a", 5, 20) + counts("b", 0, 20)
    assert evaluate(records, GateSettings(baseline=baseline_of(records))).passed


def test_holm_correction_keeps_many_borderline_policies_from_failing() -> None:
    # Each alone is p ~ 0.03; among twenty policies that is what noise looks like.
    names = [f"p{n}" for n in range(20)]
    baseline = baseline_of(*(counts(name, 1, 30) for name in names))
    current = [r for name in names for r in counts(name, 7 if name == "p0" else 1, 30)]
    assert fisher_tail(7, 30, 1, 30) < 0.05
    comparison = compare_to_baseline(current, baseline, BaselineSettings())
    assert comparison.with_verdict(Verdict.regressed) == []


def test_a_new_violation_of_a_clean_policy_regresses_without_a_p_value() -> None:
    baseline = baseline_of(counts("clean", 0, 12))
    current = counts("clean", 1, 12)
    comparison = compare_to_baseline(current, baseline, BaselineSettings())
    [row] = comparison.rows
    assert row.verdict is Verdict.regressed and row.new_violation
    assert row.p_value == pytest.approx(0.5)  # far from significant: the rule decides
    assert comparison.table()[1] == [
        ["clean", "regressed (new violation)", "0/12", "1/12", "0.5", "+13%"]
    ]
    # Left to the test, one violation in twelve says nothing: not "unchanged" either.
    tested = compare_to_baseline(current, baseline, TEST_ONLY)
    assert verdicts(tested) == {"clean": "not enough samples"}


def test_a_policy_the_baseline_never_judged() -> None:
    baseline = baseline_of(counts("old", 0, 12))
    current = counts("old", 0, 12) + counts("fresh", 1, 12) + counts("quiet", 0, 12)
    comparison = compare_to_baseline(current, baseline, BaselineSettings())
    assert verdicts(comparison) == {
        "fresh": "regressed",
        "old": "unchanged",
        "quiet": "no baseline",
    }
    assert verdicts(compare_to_baseline(current, baseline, TEST_ONLY))["fresh"] == "no baseline"


# --------------------------------------------------------------------------- samples


def test_identical_trials_count_once_on_both_sides() -> None:
    """The issue's case: repeats of a deterministic agent must not manufacture evidence."""
    baseline = baseline_of(counts("a", 2, 12, repeat=5))
    current = counts("a", 5, 12, repeat=5)
    assert fisher_tail(25, 60, 10, 60) < 0.01  # what counting trials would have claimed
    comparison = compare_to_baseline(current, baseline, BaselineSettings())
    [row] = comparison.rows
    assert row.before == Counts(2, 12, 10, 60) and row.after == Counts(5, 12, 25, 60)
    assert row.verdict is Verdict.too_few
    once = compare_to_baseline(
        counts("a", 5, 12), baseline_of(counts("a", 2, 12)), BaselineSettings()
    )
    assert once.table() == comparison.table()
    assert comparison.method().endswith(
        "60 trials = 12 distinct samples (identical transcripts count once)"
    )


def test_distinct_transcripts_of_one_event_are_separate_samples() -> None:
    trials = [record("ev", {"a": "compliant"}, trial, sha=f"t{trial}") for trial in range(3)]
    trials.append(record("ev", {"a": "violated"}, 3, sha="t0"))  # a sampling judge, same transcript
    comparison = compare_to_baseline(trials, baseline_of(trials), BaselineSettings())
    # t0 was judged violated once: the sample counts as violated (a violation wins).
    assert str(comparison.rows[0].after) == "1/3"


def test_the_results_file_carries_the_distinct_samples() -> None:
    document = baseline_of(counts("a", 1, 4, repeat=3))
    assert document["policies"]["a"]["samples"] == {"violated": 1, "judged": 4}
    assert document["policies"]["a"]["violated"] == 3


def test_a_baseline_without_event_records_reads_its_samples_or_totals() -> None:
    baseline = baseline_of(counts("a", 2, 10, repeat=2), [crashed("x", {"a": "error"})])
    del baseline["events"]
    assert baseline_counts(baseline) == {"a": Counts(2, 10, 4, 20)}
    del baseline["policies"]["a"]["samples"]  # a file from before samples: trials count
    assert baseline_counts(baseline) == {"a": Counts(4, 20, 4, 20)}


# --------------------------------------------------------------------------- power


def test_detectable_rise_of_a_clean_policy_is_that_of_one_violation() -> None:
    # Any violation regresses: P(at least one in 8) >= 80% from a rate of 19% (1 - 0.2^(1/8)).
    assert detectable_rise(Counts(0, 8, 0, 8), 8, level=0.05, new_rule=True) == 0.19
    # Left to the test, 0/26 against 0/26 needs five violations now: a rise of 25%.
    assert detectable_rise(Counts(0, 26, 0, 26), 26, level=0.05, new_rule=False) == 0.25
    # No count of violations among two samples is significant against 1/2.
    assert detectable_rise(Counts(1, 2, 1, 2), 2, level=0.05, new_rule=True) is None
    assert detectable_rise(Counts(3, 3, 3, 3), 3, level=0.05, new_rule=True) == 0.0


def test_too_few_samples_warn_by_default_and_can_fail_the_gate() -> None:
    baseline = baseline_of(counts("a", 1, 3), counts("b", 0, 3))
    current = counts("a", 1, 3) + counts("b", 0, 3)
    warned = evaluate(current, GateSettings(baseline=baseline, baseline_name="b.json"))
    assert warned.passed
    assert warned.lines == [
        "baseline b.json: 0 regressed, 0 improved, 0 unchanged, 2 not enough samples (a, b); "
        "not enough samples to see a rise of 20% only warns"
    ]
    settings = BaselineSettings(too_few="fail")
    failed = evaluate(current, GateSettings(baseline=baseline, comparison=settings))
    assert not failed.passed and failed.blamed == frozenset()
    # A demanding rise is detectable with the same samples: unchanged.
    lenient = BaselineSettings(detect=0.5)
    assert verdicts(compare_to_baseline(current, baseline, lenient))["b"] == "unchanged"


# --------------------------------------------------------------------------- errors apart


def crashed(event: str, outcomes: dict[str, str]) -> EventRecord:
    """An event whose conversation broke off (a crash): it could not be judged."""
    return record(event, outcomes).model_copy(
        update={"stop_reason": StopReason.agent_error, "kind": FailureKind.agent_crash}
    )


def test_the_baseline_comparison_leaves_out_events_that_errored_on_both_sides() -> None:
    # A baseline run whose conversations broke off: before errors were counted apart,
    # such events could read as violated ("X was never called" on a truncated transcript).
    broken = [crashed(f"x-{n}", {"a": "violated"}) for n in range(6)]
    baseline = baseline_of(counts("a", 0, 12), broken)
    assert baseline_counts(baseline) == {"a": Counts(0, 12, 0, 12)}
    current = counts("a", 0, 12) + [crashed(f"y-{n}", {"a": "error"}) for n in range(6)]
    comparison = compare_to_baseline(current, baseline, BaselineSettings())
    assert [(r.policy, str(r.before), str(r.after), r.verdict) for r in comparison.rows] == [
        ("a", "0/12", "0/12", Verdict.unchanged)
    ]


def test_an_old_baseline_without_kind_tells_errors_by_stop_reason() -> None:
    baseline = baseline_of(counts("a", 0, 4), [crashed("x", {"a": "violated"})])
    for event in baseline["events"]:
        del event["kind"]
    assert baseline_counts(baseline) == {"a": Counts(0, 4, 0, 4)}
