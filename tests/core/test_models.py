"""EventResult.kind: the one reason a report gives for a failed event, from its verdicts.

The end-to-end cases (one event per kind through real judging, and how Allure files
them) are in tests/reporting/test_allure.py; these are the precedence rules between
kinds when an event shows several problems at once.
"""

from __future__ import annotations

import pytest

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyResult
from pytest_agentsim.core.models import Severity
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.core.models import Verdict


def result(*policies: tuple[Outcome, bool], stop: StopReason = StopReason.goal_met) -> EventResult:
    """An event whose policy p<n> ended with the n-th outcome; the flag adds an error
    verdict of the judging itself (a judge that raised) to that policy's verdicts."""
    ids = [f"p{n}" for n in range(len(policies))]
    return EventResult(
        event=Event(id="ev-1", policies=ids, user=UserProfile()),
        conversation=Conversation(event_id="ev-1", stop_reason=stop),
        policies=[
            PolicyResult(
                policy_id=policy_id,
                risk_category="Privacy",
                severity=Severity.high,
                outcome=outcome,
                listed=True,
                verdicts=[Verdict(policy_id=policy_id, outcome=outcome, judge="rules")]
                + (
                    [
                        Verdict(
                            policy_id=policy_id,
                            outcome=Outcome.error,
                            judge="llm",
                            judge_error=True,
                        )
                    ]
                    if judging
                    else []
                ),
            )
            for policy_id, (outcome, judging) in zip(ids, policies, strict=True)
        ],
    )


OK = (Outcome.compliant, False)
NA = (Outcome.not_applicable, False)
VIOLATED = (Outcome.violated, False)
ERROR = (Outcome.error, False)
JUDGE_ERROR = (Outcome.error, True)
INCONCLUSIVE = (Outcome.inconclusive, False)


@pytest.mark.parametrize(
    ("policies", "kind"),
    [
        ((OK, NA), None),
        ((VIOLATED, OK), FailureKind.violation),
        ((INCONCLUSIVE, OK), FailureKind.inconclusive),
        ((JUDGE_ERROR, OK), FailureKind.judge_error),
        ((ERROR, OK), FailureKind.infrastructure),
        # Worse problems name the event: an inconclusive verdict hides a violation...
        ((VIOLATED, INCONCLUSIVE), FailureKind.inconclusive),
        # ...and an event that could not be judged to the end is an error, not a violation.
        ((VIOLATED, ERROR), FailureKind.infrastructure),
        ((VIOLATED, JUDGE_ERROR), FailureKind.judge_error),
        ((INCONCLUSIVE, JUDGE_ERROR), FailureKind.judge_error),
        ((INCONCLUSIVE, ERROR), FailureKind.inconclusive),
        # A judging error on a policy that was violated anyway is not what failed it.
        (((Outcome.violated, True), OK), FailureKind.violation),
    ],
)
def test_kind_of_an_event_that_ran_to_the_end(
    policies: tuple[tuple[Outcome, bool], ...], kind: FailureKind | None
) -> None:
    assert result(*policies).kind is kind


@pytest.mark.parametrize("stop", [StopReason.agent_error, StopReason.user_error])
def test_a_crash_is_an_agent_crash_even_after_a_violation(stop: StopReason) -> None:
    assert result(VIOLATED, ERROR, stop=stop).kind is FailureKind.agent_crash
