"""The text of a failing test: what went wrong, where, why, and the transcript."""

from __future__ import annotations

import json

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyResult


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_transcript(conversation: Conversation, *, limit: int = 300) -> list[str]:
    """The conversation as numbered lines; the numbers are the turns verdicts refer to."""
    lines = []
    for index, message in enumerate(conversation.messages):
        if message.role == "tool":
            lines.append(f"[{index}] tool {message.name}: {_short(message.content or '', limit)}")
            continue
        if message.content:
            lines.append(f"[{index}] {message.role}: {_short(message.content, limit)}")
        for call in message.tool_calls or []:
            lines.append(
                f"[{index}] {message.role} calls {call.function.name}({call.function.arguments})"
            )
    return lines


def _policy_lines(result: PolicyResult, event_policies: list[str]) -> list[str]:
    # A policy the event does not list is judged all the same (every policy is judged on
    # every event); say so, or a reader looks for it in the test id and does not find it.
    unlisted = (
        f" (not one of this event's policies, {', '.join(event_policies)}: every policy is "
        "judged on every event)"
        if not result.listed
        else ""
    )
    lines = [
        f"{result.outcome.value.upper()} {result.policy_id} "
        f"[{result.risk_level1} > {result.risk_category}, severity {result.severity.value}]"
        + unlisted
    ]
    for verdict in result.verdicts:
        if verdict.outcome is not result.outcome:
            continue
        where = f"turn {verdict.turn}" if verdict.turn is not None else "conversation"
        lines.append(f"    {where}: {verdict.reason}")
        if verdict.quote:
            lines.append(f"      quote: {_short(verdict.quote, 160)!r}")
        lines.append(
            f"      ({verdict.judge}: {verdict.check})"
            if verdict.check
            else f"      ({verdict.judge})"
        )
    if result.disagreement:
        lines.append(f"    judges disagree: {result.disagreement}")
    return lines


def failure_report(result: EventResult, *, traceback: bool = False) -> str:
    """The text of a failing or erroring test: what went wrong, where, why, and the transcript.

    A conversation that broke leads with the one line that says why (``agent error:
    ValueError: ...``): that line, not a traceback through litellm's internals, is what
    a reader needs first; one that stalled, with the turn the simulated user could not
    follow. The traceback follows the transcript only with ``traceback``
    (pytest's ``-v`` or ``--tb=long``); otherwise a line says how to get it.
    """
    event = result.event
    conversation = result.conversation
    lines = [line for line in (conversation.error, conversation.stop_detail) if line]
    lines.append(result.headline)
    if event.scenario:
        lines.append(f"scenario: {_short(event.scenario)}")
    if event.metadata:
        lines.append(f"metadata: {_short(json.dumps(event.metadata, default=str))}")
    for policy_result in result.policies:
        if policy_result.outcome in (Outcome.violated, Outcome.error, Outcome.inconclusive):
            lines.extend(_policy_lines(policy_result, event.policies))
    stop = conversation.stop_reason.value
    lines.append(
        f"stop reason: {stop} ({conversation.stop_detail})"
        if conversation.stop_detail
        else f"stop reason: {stop}"
    )
    lines.append("transcript:")
    lines.extend("    " + line for line in render_transcript(conversation))
    db_diff = conversation.db_diff_text()
    if db_diff:
        lines.append("database changes:")
        lines.extend("    " + line for line in db_diff.splitlines())
    if conversation.traceback and traceback:
        lines.append("traceback:")
        lines.extend("    " + line for line in conversation.traceback.splitlines())
    elif conversation.traceback:
        lines.append("(the traceback is shown with -v or --tb=long)")
    return "\n".join(lines)


def wants_traceback(verbosity: int, tbstyle: str, fulltrace: bool = False) -> bool:
    """Whether a failure report includes the error's traceback: asked for with pytest's
    ``-v`` (or more), ``--tb=long``, ``--tb=native`` or ``--full-trace``."""
    return verbosity > 0 or tbstyle in ("long", "native") or fulltrace


def junit_properties(result: EventResult) -> list[tuple[str, str]]:
    """Properties a JUnit XML consumer sees on the test: the event, policies, outcomes."""
    listed = [r for r in result.policies if r.listed]
    return [
        ("agentsim_event", result.event.id),
        ("agentsim_policies", ",".join(result.event.policies)),
        ("agentsim_risk_categories", ",".join(sorted({r.risk_category for r in listed}))),
        ("agentsim_stop_reason", result.conversation.stop_reason.value),
        *((f"agentsim_outcome:{r.policy_id}", r.outcome.value) for r in result.policies),
    ]
