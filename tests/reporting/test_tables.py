"""pass^k (tau-bench's estimator) over repeated events; the summary's counts of events."""

from __future__ import annotations

import pytest
from record_factory import event_record

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.reporting.tables import event_counts
from pytest_agentsim.reporting.tables import not_exercised
from pytest_agentsim.reporting.tables import pass_hat_k
from pytest_agentsim.reporting.tables import pass_k
from pytest_agentsim.reporting.tables import summary_lines


@pytest.mark.parametrize(
    ("successes", "trials", "k", "expected"),
    [
        (3, 3, 3, 1.0),
        (2, 3, 2, 1 / 3),
        (2, 4, 2, 1 / 6),
        (3, 4, 1, 3 / 4),
        (0, 4, 1, 0.0),
        (1, 2, 2, 0.0),
    ],
)
def test_pass_hat_k_against_hand_computed_cases(
    successes: int, trials: int, k: int, expected: float
) -> None:
    assert pass_hat_k(successes, trials, k) == pytest.approx(expected)


def trial(event: str, number: int, outcomes: dict[str, str], sha: str = "") -> EventRecord:
    """One trial of an event over policies a, b (Privacy) and c (Deception)."""
    return event_record(
        event,
        outcomes,
        risks={"a": "Privacy", "b": "Privacy", "c": "Deception"},
        trial=number,
        sha=sha,
    )


def test_pass_k_per_event_policy_and_risk_category() -> None:
    records = [
        # ev-1: policy a fails in one of three trials.
        trial("ev-1", 0, {"a": "compliant", "c": "compliant"}),
        trial("ev-1", 1, {"a": "violated", "c": "compliant"}),
        trial("ev-1", 2, {"a": "compliant", "c": "compliant"}),
        # ev-2: always the same conversation, b always compliant, c always n/a.
        *(
            trial("ev-2", n, {"b": "compliant", "c": "not_applicable"}, sha="same")
            for n in range(3)
        ),
    ]
    result = pass_k(records)
    assert result is not None
    assert result.k == 3
    assert result.events == {"ev-1": 0.0, "ev-2": 1.0}
    assert result.overall == 0.5
    assert result.policies == {"a": 0.0, "b": 1.0, "c": 1.0}  # c judged only in ev-1
    assert result.risk_categories == {"Privacy": 0.5, "Deception": 1.0}
    assert result.identical == ["ev-2"]


def test_k_is_capped_at_the_fewest_trials() -> None:
    records = [trial("ev-1", n, {"a": "compliant"}) for n in range(3)]
    records += [trial("ev-2", 0, {"a": "compliant"}), trial("ev-2", 1, {"a": "error"})]
    result = pass_k(records)
    assert result is not None and result.k == 2
    assert result.events == {"ev-1": 1.0, "ev-2": 0.0}


def test_no_pass_k_without_repeats() -> None:
    assert pass_k([trial("ev-1", 0, {"a": "compliant"})]) is None


# --------------------------------------------------------------------------- errors apart


def test_summary_counts_errors_apart_and_rates_over_judged_events() -> None:
    records = [
        trial("ev-1", 0, {"a": "violated", "c": "compliant"}),
        trial("ev-2", 0, {"a": "compliant", "c": "inconclusive"}).model_copy(
            update={"kind": FailureKind.inconclusive}
        ),
        trial("ev-3", 0, {"a": "compliant", "b": "not_applicable"}),
        trial("ev-4", 0, {"a": "error", "b": "compliant"}).model_copy(
            update={"stop_reason": StopReason.agent_error, "kind": FailureKind.agent_crash}
        ),
        trial("ev-5", 0, {"a": "error"}).model_copy(update={"kind": FailureKind.judge_error}),
    ]
    lines = summary_lines(records)
    rows = {line.split()[0]: line.split()[2:] for line in lines if line.startswith("  a ")}
    # events, compliant, violated, inconclusive, errors, n/a, rate: 1 of the 3 judged.
    assert rows == {"a": ["5", "2", "1", "0", "2", "0", "33%"]}
    assert (
        "events: 3 judged (1 compliant, 1 with a violation, 1 inconclusive); 2 could not be "
        "judged (1 agent crash, 1 judge error; 40.0% of 5)"
    ) in lines
    counts = event_counts(records)
    assert (counts.judged, counts.errors, counts.error_rate) == (3, 2, 0.4)


def test_listed_policies_no_event_exercised_are_named() -> None:
    vacuous = trial("ev-1", 0, {"a": "compliant", "b": "compliant"})
    vacuous.policies[1].exercised = False
    records = [vacuous, trial("ev-2", 0, {"b": "not_applicable", "c": "compliant"})]
    assert not_exercised(records) == ["b"]
    assert (
        "not exercised in any event: b (no check or judge saw them come up in the events "
        "that list them)"
    ) in summary_lines(records)
    # Exercised anywhere in the run is enough.
    assert not_exercised([*records, trial("ev-3", 0, {"b": "compliant"})]) == []


def test_with_repeats_the_event_counts_say_they_count_trials() -> None:
    records = [
        event_record("ev-1", {"a": "compliant"}, risks={}, trial=trial) for trial in range(3)
    ]
    assert event_counts(records).line() == (
        "trials of 1 event: 3 judged (3 compliant, 0 with a violation, 0 inconclusive); "
        "0 could not be judged"
    )
