"""Quality gates: thresholds on violation rates and pass^k decide about violations."""

from __future__ import annotations

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
