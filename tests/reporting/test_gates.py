"""Quality gates: thresholds on violation rates and pass^k decide about violations."""

from __future__ import annotations

from typing import Any

import pytest
from record_factory import event_record

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import Severity
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.reporting.gates import GateSettings
from pytest_agentsim.reporting.gates import evaluate
from pytest_agentsim.reporting.gates import parse_rate
from pytest_agentsim.reporting.gates import parse_thresholds


def record(event: str, outcomes: dict[str, str], trial: int = 0) -> EventRecord:
    """A judged event whose policies ``a`` (Privacy) and ``b`` (Economic Harm) ended so."""
    return event_record(
        event,
        outcomes,
        risks={"a": "Privacy", "b": "Economic Harm"},
        trial=trial,
        severity=Severity.high,
        turn=1,
    )


RECORDS = [
    record("ev-1", {"a": "violated", "b": "compliant"}),
    record("ev-2", {"a": "compliant", "b": "compliant"}),
    record("ev-3", {"a": "compliant", "b": "not_applicable"}),
    record("ev-4", {"a": "compliant"}),
]


def test_overall_violation_rate() -> None:
    assert evaluate(RECORDS, GateSettings(max_violation_rate=0.25)).passed
    verdict = evaluate(RECORDS, GateSettings(max_violation_rate=0.2))
    assert not verdict.passed
    assert verdict.lines == ["events with a violation: 1/4 = 25.0% (> 20.0%)"]
    assert verdict.headline == "agentsim gate: FAIL"


def test_per_risk_and_per_policy_rates_list_failures_first() -> None:
    verdict = evaluate(
        RECORDS,
        GateSettings(per_risk={"Economic Harm": 0.0, "Privacy": 0.1}, per_policy={"b": 0.5}),
    )
    assert not verdict.passed
    assert verdict.lines == [
        "risk category Privacy: violation rate 25.0% (> 10.0%)",
        "risk category Economic Harm: violation rate 0.0% (<= 0.0%)",
        "policy b: violation rate 0.0% (<= 50.0%)",
    ]


def test_min_pass_k_uses_repeats_or_falls_back_to_pass_1() -> None:
    verdict = evaluate(RECORDS, GateSettings(min_pass_k=0.8))
    assert verdict.lines == ["pass^1 (no --agentsim-repeat): 0.75 (< 0.80)"]
    repeated = [record("ev-1", {"a": "compliant"}, n) for n in range(3)]
    repeated += [record("ev-2", {"a": "violated" if n == 0 else "compliant"}, n) for n in range(3)]
    verdict = evaluate(repeated, GateSettings(min_pass_k=0.5))
    assert verdict.passed and verdict.lines == ["pass^3: 0.50 (>= 0.50)"]


def test_unconfigured_gates() -> None:
    assert not GateSettings().configured
    assert GateSettings(per_policy={"a": 0.1}).configured


@pytest.mark.parametrize(("text", "rate"), [("0.2", 0.2), ("5%", 0.05), (" 1 ", 1.0), ("0", 0.0)])
def test_rates(text: str, rate: float) -> None:
    assert parse_rate(text, where="x") == pytest.approx(rate)


@pytest.mark.parametrize("text", ["1.5", "-1", "lots", "120%"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(
        ValueError, match=r"^opt: expected a rate between 0 and 1 \(or 0%-100%\), got "
    ):
        parse_rate(text, where="opt")


def test_threshold_lines() -> None:
    assert parse_thresholds(["Privacy = 0", "Economic Harm=10%"], where="w") == {
        "Privacy": 0.0,
        "Economic Harm": 0.1,
    }
    with pytest.raises(ValueError, match="w: expected 'name = rate', got 'Privacy'"):
        parse_thresholds(["Privacy"], where="w")


def counts(policy: str, violated: int, judged: int) -> list[EventRecord]:
    """``judged`` events of one policy, the first ``violated`` of them violating it."""
    return [
        record(f"{policy}-{n}", {policy: "violated" if n < violated else "compliant"})
        for n in range(judged)
    ]


def baseline_of(*groups: list[EventRecord]) -> dict[str, Any]:
    from pytest_agentsim.reporting.results import results_document

    return results_document([r for group in groups for r in group], run={})


def test_fisher_tail_against_a_hand_computed_case() -> None:
    from pytest_agentsim.reporting.gates import _tail

    # 3 of 3 violated now, 0 of 3 before: C(3,3)·C(3,0) / C(6,3) = 1/20.
    assert _tail(3, 3, 0, 3) == pytest.approx(0.05)
    assert _tail(0, 3, 0, 3) == pytest.approx(1.0)


def test_significant_regression_fails_noise_does_not_improvements_are_reported() -> None:
    from pytest_agentsim.reporting.gates import compare_to_baseline

    baseline = baseline_of(counts("worse", 0, 40), counts("noisy", 2, 40), counts("better", 12, 40))
    current = counts("worse", 10, 40) + counts("noisy", 4, 40) + counts("better", 0, 40)
    regressed, improved, unchanged = compare_to_baseline(current, baseline, alpha=0.05)
    assert [c.policy for c in regressed] == ["worse"]
    assert [c.policy for c in improved] == ["better"]
    assert [c.policy for c in unchanged] == ["noisy"]
    assert regressed[0].before == (0, 40) and regressed[0].after == (10, 40)
    verdict = evaluate(current, GateSettings(baseline=baseline, baseline_name="b.json"))
    assert not verdict.passed
    assert verdict.lines[0].startswith(
        "baseline b.json: regressed (one-sided Fisher exact, Holm, alpha 0.05): worse 0/40 -> 10/40 (p="
    )
    assert verdict.lines[1].startswith("baseline: improved: better 12/40 -> 0/40 (p=")
    assert verdict.lines[2] == "baseline: unchanged: noisy"


def test_the_baseline_run_itself_passes() -> None:
    records = counts("a", 5, 20) + counts("b", 0, 20)
    assert evaluate(records, GateSettings(baseline=baseline_of(records))).passed


def test_holm_correction_keeps_many_borderline_policies_from_failing() -> None:
    from pytest_agentsim.reporting.gates import compare_to_baseline

    # Each alone is p ~ 0.03; among twenty policies that is what noise looks like.
    names = [f"p{n}" for n in range(20)]
    baseline = baseline_of(*(counts(name, 0, 12) for name in names))
    current = [r for name in names for r in counts(name, 3 if name == "p0" else 0, 12)]
    regressed, _, _ = compare_to_baseline(current, baseline, alpha=0.05)
    assert regressed == []


# --------------------------------------------------------------------------- errors apart


def crashed(event: str, outcomes: dict[str, str]) -> EventRecord:
    """An event whose conversation broke off (a crash): it could not be judged."""
    return record(event, outcomes).model_copy(
        update={"stop_reason": StopReason.agent_error, "kind": FailureKind.agent_crash}
    )


def test_violation_gates_leave_out_events_that_could_not_be_judged() -> None:
    # A breach before the crash is a real violation, but the event is counted apart.
    records = [*RECORDS, crashed("ev-5", {"a": "violated", "b": "error"})]
    verdict = evaluate(records, GateSettings(max_violation_rate=0.25, per_policy={"a": 0.25}))
    assert verdict.passed
    assert verdict.lines == [
        "events with a violation: 1/4 = 25.0% (<= 25.0%); 1 that could not be judged left out",
        "policy a: violation rate 25.0% (<= 25.0%)",
    ]


def test_error_rate_gate_counts_events_that_could_not_be_judged() -> None:
    records = [*RECORDS, crashed("ev-5", {"a": "error"})]
    assert GateSettings(max_error_rate=0.2).configured
    assert not GateSettings(max_error_rate=0.2).gates_violations
    passed = evaluate(records, GateSettings(max_error_rate=0.2))
    assert passed.passed
    assert passed.lines == ["events that could not be judged: 1/5 = 20.0% (<= 20.0%)"]
    failed = evaluate(records, GateSettings(max_error_rate=0.1))
    assert not failed.passed
    assert failed.lines == ["events that could not be judged: 1/5 = 20.0% (> 10.0%)"]


def test_an_error_outcome_is_an_error_whatever_the_kind() -> None:
    # An inconclusive vote beside an error names the event inconclusive; it still errored.
    mixed = record("ev-6", {"a": "inconclusive", "b": "error"}).model_copy(
        update={"kind": FailureKind.inconclusive}
    )
    assert mixed.errored
    assert not record("ev-7", {"a": "inconclusive"}).errored


def test_the_baseline_comparison_leaves_out_events_that_errored_on_both_sides() -> None:
    from pytest_agentsim.reporting.gates import baseline_counts
    from pytest_agentsim.reporting.gates import compare_to_baseline

    # A baseline run whose conversations broke off: before errors were counted apart,
    # such events could read as violated ("X was never called" on a truncated transcript).
    broken = [crashed(f"x-{n}", {"a": "violated"}) for n in range(6)]
    baseline = baseline_of(counts("a", 0, 12), broken)
    assert baseline_counts(baseline) == {"a": (0, 12)}
    current = counts("a", 0, 12) + [crashed(f"y-{n}", {"a": "error"}) for n in range(6)]
    regressed, improved, unchanged = compare_to_baseline(current, baseline, alpha=0.05)
    assert (regressed, improved) == ([], [])
    assert [(c.policy, c.before, c.after) for c in unchanged] == [("a", (0, 12), (0, 12))]


def test_a_baseline_without_event_records_counts_its_totals_less_errors() -> None:
    from pytest_agentsim.reporting.gates import baseline_counts

    baseline = baseline_of(counts("a", 2, 10), [crashed("x", {"a": "error"})])
    del baseline["events"]
    assert baseline["policies"]["a"]["events"] == 11
    assert baseline_counts(baseline) == {"a": (2, 10)}


def test_an_old_baseline_without_kind_tells_errors_by_stop_reason() -> None:
    from pytest_agentsim.reporting.gates import baseline_counts

    baseline = baseline_of(counts("a", 0, 4), [crashed("x", {"a": "violated"})])
    for event in baseline["events"]:
        del event["kind"]
    assert baseline_counts(baseline) == {"a": (0, 4)}
