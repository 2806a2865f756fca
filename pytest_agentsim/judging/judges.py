"""Judging a finished conversation: verdicts per policy, combined into one outcome each.

A judge (:class:`Judge`) is any object with a ``name`` and a ``judge(event, conversation,
pack)`` method returning :class:`~pytest_agentsim.core.models.Verdict` objects (or an
awaitable of them).
The built-in :class:`RuleJudge` runs the pack's declarative checks and the event's
expectations. Outcomes combine worst-first (violated > error > inconclusive > compliant >
not applicable), and nothing is ever dropped: a policy the event was built to exercise
that no judge could judge, or a conversation cut short by a failing agent, is an error.

A verdict must never lie about a conversation that stopped early, so each is weighed by
what it rests on (:class:`~pytest_agentsim.core.models.Evidence`) before they combine
(:func:`qualify`). A conversation that broke off (``agent_error``, ``user_error``) is
evidence only up to the break: only ``final`` verdicts stand (a forbidden call that was
made is still a violation), every other decision becomes an ``error`` naming why. One
that ran out before the user's goal (``max_turns``, ``stalled``) was not cut, but may
never have come to what a policy is about: a violation resting on something missing is
``inconclusive``, and a listed policy that no verdict saw come up (it complied only
vacuously, or nothing touched it) is ``inconclusive`` too, "not exercised", never a pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from collections.abc import Sequence
from typing import Protocol

from pytest_agentsim.core.checks import RuleCheck
from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.models import OUTCOME_PRECEDENCE
from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import Evidence
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import PolicyResult
from pytest_agentsim.core.models import Verdict
from pytest_agentsim.core.models import saw_compliance
from pytest_agentsim.core.taxonomy import RiskTaxonomy
from pytest_agentsim.judging.state import ExpectedStateCheck
from pytest_agentsim.packs.loading import pack_taxonomy


class Judge(Protocol):
    """What ``pytest_agentsim_make_judges`` returns: a named source of verdicts.

    ``judge`` may be plain or ``async`` (a model-backed judge is), so it returns the
    verdicts or an awaitable of them; :func:`judge_event` awaits what needs awaiting. A
    judge that raises makes the event's policies ``error``, never a pass.
    """

    #: Shown beside each of its verdicts, and in disagreements between judges.
    name: str

    def judge(
        self, event: Event, conversation: Conversation, pack: PolicyPack, /
    ) -> Sequence[Verdict] | Awaitable[Sequence[Verdict]]:
        """Verdicts for the pack's policies: a sequence, or an awaitable of one.

        Called positionally (hence ``/``), so an implementation may name its parameters
        as it likes.
        """
        ...


class RuleJudge:
    """Runs the declarative rule checks of the pack and of the event's expectations."""

    name = "rules"

    def __init__(self, registry: RuleRegistry) -> None:
        self.registry = registry

    def checks(self, event: Event, pack: PolicyPack) -> list[tuple[str, RuleCheck]]:
        """The pack's checks, the event's expectations, then its ``expected_state``."""
        found = [
            (policy.id, self.registry.parse(check))
            for policy in pack.policies
            for check in policy.checks
        ]
        found += [(exp.policy, self.registry.parse(exp.check)) for exp in event.expected]
        state = event.expected_state
        if state is not None:
            policy_id = state_policy(event)
            check = ExpectedStateCheck.model_validate(state.model_dump(exclude={"policy"}))
            found += [(policy_id, check)] if policy_id else []
        return found

    def judge(self, event: Event, conversation: Conversation, pack: PolicyPack) -> list[Verdict]:
        verdicts = []
        if event.expected_state is not None and not state_policy(event):
            # Events read from a file name it (checked at load); one built in code may not.
            verdicts += [
                Verdict(
                    policy_id=policy_id,
                    outcome=Outcome.error,
                    reason="expected_state names no policy and the event lists several: "
                    "give it policy: <one of them>",
                    judge=self.name,
                    check="expected_state",
                    judge_error=True,
                )
                for policy_id in event.policies
            ]
        for policy_id, check in self.checks(event, pack):
            try:
                result = check.evaluate(conversation)
            except Exception as exc:  # a broken check is an error, never a pass
                verdicts.append(
                    Verdict(
                        policy_id=policy_id,
                        outcome=Outcome.error,
                        reason=f"check {check.label()} raised {type(exc).__name__}: {exc}",
                        judge=self.name,
                        check=check.label(),
                        judge_error=True,
                    )
                )
                continue
            verdicts.append(
                Verdict(
                    policy_id=policy_id,
                    outcome=result.outcome,
                    turn=result.turn,
                    reason=result.reason,
                    judge=self.name,
                    check=check.label(),
                    evidence=result.evidence,
                )
            )
        return verdicts


def state_policy(event: Event) -> str | None:
    """The policy an event's ``expected_state`` is charged to: the one it names, else the
    event's only listed policy (None when it lists several and names none)."""
    state = event.expected_state
    if state is None:
        return None
    if state.policy:
        return state.policy
    return event.policies[0] if len(event.policies) == 1 else None


def combine(outcomes: Sequence[Outcome]) -> Outcome:
    for outcome in OUTCOME_PRECEDENCE:
        if outcome in outcomes:
            return outcome
    return Outcome.not_applicable


DECISIONS = (Outcome.compliant, Outcome.violated)


def disagreement(verdicts: Sequence[Verdict]) -> str | None:
    """'rules: violated; llm: compliant' when two judges decided a policy differently.

    Each judge's own verdicts are combined first (a rule judge has one per check); only
    decisions count: a judge that found the policy not applicable, or could not judge
    it, does not disagree.
    """
    by_judge: dict[str, list[Outcome]] = {}
    for verdict in verdicts:
        by_judge.setdefault(verdict.judge, []).append(verdict.outcome)
    decided = {
        judge: outcome
        for judge, outcomes in by_judge.items()
        if (outcome := combine(outcomes)) in DECISIONS
    }
    if len(set(decided.values())) < 2:
        return None
    return "; ".join(f"{judge}: {outcome.value}" for judge, outcome in sorted(decided.items()))


def qualify(verdict: Verdict, conversation: Conversation) -> Verdict:
    """The verdict as the conversation's end lets it stand (see the module's docstring).

    A decision (compliant, violated, inconclusive) on a conversation that broke off
    stands only if it is ``final``; otherwise it becomes an error that says what the
    judge had found so far. On a conversation that ran out, a violation resting on
    something missing (``whole``) becomes inconclusive: "X was never called" proves
    nothing when the user never got to ask for X. Anything else is returned as it is.
    """
    stop = conversation.stop_reason
    if verdict.evidence is Evidence.final or verdict.outcome in (
        Outcome.error,
        Outcome.not_applicable,
    ):
        return verdict
    if stop.is_error:
        if verdict.check:
            cut = f"{conversation.ending} before {verdict.check} could be judged"
        else:
            cut = f"{conversation.ending} before judge {verdict.judge!r} could judge it to the end"
        return verdict.model_copy(
            update={
                "outcome": Outcome.error,
                "reason": f"{cut} (so far {verdict.outcome.value}: {verdict.reason})",
            }
        )
    if (
        stop.goal_unmet
        and verdict.outcome is Outcome.violated
        and verdict.evidence is Evidence.whole
    ):
        return verdict.model_copy(
            update={
                "outcome": Outcome.inconclusive,
                "reason": f"not exercised: {conversation.ending} ({verdict.reason})",
            }
        )
    return verdict


def not_exercised(
    policy_id: str, outcome: Outcome, verdicts: list[Verdict], conversation: Conversation
) -> Verdict | None:
    """The runner's inconclusive verdict on a listed policy a conversation that ran out
    never exercised (None when it did, or when the conversation reached its end).

    The event was built to exercise the policy; if the user's goal was not reached and
    no verdict saw the policy come up, "compliant" (or "not applicable") would be a pass
    without evidence.
    """
    stop = conversation.stop_reason
    if not stop.goal_unmet or outcome not in (Outcome.compliant, Outcome.not_applicable):
        return None
    if saw_compliance(verdicts):
        return None
    vacuous = next((v for v in verdicts if v.outcome is Outcome.compliant), None)
    detail = (
        f"it complied only vacuously ({vacuous.reason})"
        if vacuous is not None
        else "nothing in it touched this policy"
    )
    return Verdict(
        policy_id=policy_id,
        outcome=Outcome.inconclusive,
        reason=f"not exercised: {conversation.ending}; {detail}",
        judge="runner",
    )


def untouched(policy_id: str, verdicts: list[Verdict]) -> Verdict:
    """The runner's not_applicable verdict on a policy the event was not built for whose
    checks all complied only vacuously: nothing in the conversation touched it.

    Every policy's checks run on every event, so a check that looks for something that
    must not happen (a forbidden call, a forbidden phrase) "complies" in every event where
    the situation never came up; counted compliant, it would fill every rate's
    denominator with events that say nothing about the policy. Its verdicts are kept, and
    the summary counts such events under n/a.
    """
    vacuous = next((v for v in verdicts if v.outcome is Outcome.compliant), None)
    detail = f" ({vacuous.check or vacuous.judge}: {vacuous.reason})" if vacuous else ""
    return Verdict(
        policy_id=policy_id,
        outcome=Outcome.not_applicable,
        reason="not exercised: the event does not list this policy and no check saw it come "
        f"up; it complied only vacuously{detail}",
        judge="runner",
    )


async def judge_event(
    event: Event,
    conversation: Conversation,
    pack: PolicyPack,
    judges: Sequence[Judge],
    taxonomy: RiskTaxonomy | None = None,
) -> EventResult:
    verdicts: list[Verdict] = []
    for judge in judges:
        try:
            produced = judge.judge(event, conversation, pack)
            if inspect.isawaitable(produced):
                produced = await produced
            verdicts.extend(produced)
        except Exception as exc:
            verdicts.extend(
                Verdict(
                    policy_id=policy_id,
                    outcome=Outcome.error,
                    reason=f"judge {judge.name!r} failed: {type(exc).__name__}: {exc}",
                    judge=judge.name,
                    judge_error=True,
                )
                for policy_id in event.policies
            )
    verdicts = [qualify(verdict, conversation) for verdict in verdicts]
    if conversation.stop_reason.is_error:
        # The conversation was cut short: whatever was not already violated is unjudgeable.
        verdicts.extend(
            Verdict(
                policy_id=policy_id,
                outcome=Outcome.error,
                reason=f"the conversation ended with {conversation.stop_reason.value}",
                judge="runner",
            )
            for policy_id in event.policies
        )
    taxonomy = pack_taxonomy(pack, taxonomy)
    results = []
    for policy in pack.policies:
        mine = [verdict for verdict in verdicts if verdict.policy_id == policy.id]
        listed = policy.id in event.policies
        if not mine and listed:
            mine = [
                Verdict(
                    policy_id=policy.id,
                    outcome=Outcome.error,
                    reason="no judge could judge this policy: give it rule checks or an "
                    "event expectation, or configure an LLM judge",
                    judge="runner",
                    judge_error=True,
                )
            ]
        outcome = combine([verdict.outcome for verdict in mine])
        if listed and (unexercised := not_exercised(policy.id, outcome, mine, conversation)):
            mine = [*mine, unexercised]
            outcome = unexercised.outcome
        if not listed and outcome is Outcome.compliant and not saw_compliance(mine):
            mine = [*mine, untouched(policy.id, mine)]
            outcome = Outcome.not_applicable
        elif not listed and outcome is Outcome.not_applicable:
            continue
        results.append(
            PolicyResult(
                policy_id=policy.id,
                risk_category=policy.risk_category,
                risk_level1=taxonomy.level1(policy.risk_category),
                severity=policy.severity,
                outcome=outcome,
                listed=listed,
                verdicts=mine,
                disagreement=disagreement(mine),
            )
        )
    return EventResult(event=event, conversation=conversation, policies=results)
