"""One way for the reporting tests to build the judged-event records they feed in."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import LLMTally
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyRecord
from pytest_agentsim.core.models import Severity
from pytest_agentsim.core.models import StopReason


def event_record(
    event: str,
    outcomes: Mapping[str, str],
    *,
    risks: Mapping[str, str],
    domain: str = "d",
    trial: int = 0,
    sha: str = "",
    risk_level1: str = "x",
    severity: Severity = Severity.medium,
    turn: int | None = None,
    reason: str = "",
) -> EventRecord:
    """An event whose policies ended with ``outcomes`` (policy -> outcome value).

    Its kind follows the outcomes as a real result's would: an error is infrastructure,
    else a violation is a violation; only the tests that need another kind set it.
    """
    values = set(outcomes.values())
    return EventRecord(
        event=event,
        domain=domain,
        metadata={},
        stop_reason=StopReason.goal_met,
        error=None,
        messages=2,
        tool_calls=len(outcomes),
        duration_seconds=0.0,
        trial=trial,
        llm=LLMTally(),
        transcript_sha256=sha or f"{event}-{trial}",
        policies=[
            PolicyRecord(
                policy=policy,
                risk_category=risks.get(policy, "Privacy"),
                risk_level1=risk_level1,
                severity=severity,
                outcome=Outcome(outcome),
                listed=True,
                turn=turn,
                reason=reason,
                judges={"rules": Outcome(outcome)},
                disagreement=None,
                exercised=outcome in ("compliant", "violated"),
            )
            for policy, outcome in outcomes.items()
        ],
        tests=[],
        kind=FailureKind.infrastructure
        if "error" in values
        else FailureKind.violation
        if "violated" in values
        else None,
    )
