"""The HTML a QA reviewer reads in Allure: the conversation as a chat, and the verdicts as a table.

Everything shown comes from an :class:`EventResult`, which the run redacts before any
report sees it; every string is HTML-escaped here, so a transcript that contains markup
(an agent quoting HTML, a tool returning ``<script>``) shows as text, never runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyResult
from pytest_agentsim.core.models import Verdict

#: Outcomes a reviewer has to look at, worst first: the order of the verdict table.
BAD_FIRST = [
    Outcome.violated,
    Outcome.error,
    Outcome.inconclusive,
    Outcome.compliant,
    Outcome.not_applicable,
]

# Inline styles, not a stylesheet: Allure shows the same HTML as a test's description,
# where it keeps ``style`` attributes but drops ``<style>`` and classes' meaning.
_MSG = "display:flex;gap:12px;margin:6px 0;align-items:flex-start"
_BUBBLE = "max-width:62%;padding:8px 12px;border-radius:10px;white-space:pre-wrap;"
_COLORS = {"user": "#e3f0ff", "assistant": "#f1f7ec", "system": "#f6f6f6", "tool": "#eef1f6"}
_FLAGGED = "outline:3px solid #d33;background:#fff1f1"
_TURN = "color:#667;font-size:12px;min-width:64px"
_NOTE = (
    "max-width:34%;padding:8px 10px;border-left:4px solid #d33;background:#fff7f7;font-size:13px"
)
_DETAILS = "margin:4px 0;font-family:ui-monospace,monospace;font-size:12px;white-space:normal"
_CELL = "border:1px solid #ccd;padding:4px 8px;text-align:left;vertical-align:top"
_ROW = {"violated": "#fff1f1", "error": "#fff6e5", "inconclusive": "#fffbe0"}
_BODY = "font:14px/1.45 system-ui,sans-serif;margin:12px;color:#1d2330"


@dataclass(frozen=True)
class Flag:
    """A turn to highlight, and the verdict's words to show beside it."""

    turn: int | None
    policy: str
    outcome: Outcome
    reason: str
    judge: str


def shown_verdicts(policy: PolicyResult) -> list[Verdict]:
    """The verdicts that decided a policy's outcome (those with the same outcome)."""
    return [v for v in policy.verdicts if v.outcome is policy.outcome] or policy.verdicts


def flags(policies: Iterable[PolicyResult]) -> list[Flag]:
    """The turns a reviewer must see: each verdict behind a violation, error or inconclusive."""
    return [
        Flag(verdict.turn, policy.policy_id, policy.outcome, verdict.reason, verdict.judge)
        for policy in policies
        if policy.outcome in (Outcome.violated, Outcome.error, Outcome.inconclusive)
        for verdict in shown_verdicts(policy)
    ]


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'</head><body style="{_BODY}">{body}</body></html>'
    )


def _tool_call_html(
    name: str, arguments: str, reply: Message | None, *, reply_turn: int | None, open_: bool
) -> str:
    shown = ""
    if reply is not None:
        shown = (
            f'<pre style="white-space:pre-wrap;margin:4px 0 0">[{reply_turn}] '
            f"{escape(reply.content or '')}</pre>"
        )
    return (
        f'<details style="{_DETAILS}"{" open" if open_ else ""}><summary>calls {escape(name)}'
        f"({escape(arguments)})</summary>{shown}</details>"
    )


def _note(found: Sequence[Flag]) -> str:
    return "".join(
        f'<div class="note" style="{_NOTE}"><b style="display:block">'
        f"{escape(flag.outcome.value.upper())} {escape(flag.policy)}</b>{escape(flag.reason)}<br><small>judge: {escape(flag.judge)}</small></div>"
        for flag in found
    )


def transcript_html(result: EventResult, highlight: Sequence[Flag]) -> str:
    """The conversation as a chat: tool calls folded under the message that made them.

    A tool's reply is shown inside its call's fold; a highlighted turn gets a red outline
    and the verdict's outcome, policy and reason beside it (its fold opened if it is a
    tool reply). Verdicts without a turn are listed above the chat.
    """
    conversation: Conversation = result.conversation
    by_turn: dict[int, list[Flag]] = {}
    for flag in highlight:
        if flag.turn is not None:
            by_turn.setdefault(flag.turn, []).append(flag)
    replies = {
        message.tool_call_id: (index, message)
        for index, message in enumerate(conversation.messages)
        if message.role == "tool" and message.tool_call_id
    }
    called = {call.id for message in conversation.messages for call in message.tool_calls or []}
    folded = {index for call_id, (index, _) in replies.items() if call_id in called}
    parts = [f"<h3>{escape(result.event.id)}: {escape(result.event.scenario or '')}</h3>"]
    whole = [flag for flag in highlight if flag.turn is None]
    if whole:
        parts.append(
            f'<div class="msg flagged" style="{_MSG}"><div style="{_TURN}">whole conversation'
            f"</div>{_note(whole)}</div>"
        )
    for index, message in enumerate(conversation.messages):
        if index in folded:  # shown in its call's fold, flagged there
            continue
        found = list(by_turn.get(index, []))
        calls = []
        for call in message.tool_calls or []:
            reply_turn, reply = replies.get(call.id, (None, None))
            if reply_turn is not None:
                found += by_turn.get(reply_turn, [])
            calls.append(
                _tool_call_html(
                    call.function.name,
                    call.function.arguments,
                    reply,
                    reply_turn=reply_turn,
                    open_=index in by_turn or reply_turn in by_turn,
                )
            )
        text = escape(message.content or "")
        if message.role == "tool":
            text = f"{escape(message.name or 'tool')} replied: {text}"
        classes = f"msg {escape(message.role)}" + (" flagged" if found else "")
        row = _MSG + (";flex-direction:row-reverse" if message.role == "assistant" else "")
        bubble = _BUBBLE + (_FLAGGED if found else f"background:{_COLORS[message.role]}")
        parts.append(
            f'<div class="{classes}" id="turn-{index}" style="{row}">'
            f'<div style="{_TURN}">[{index}] {escape(message.role)}</div>'
            f'<div style="{bubble}">{text}{"".join(calls)}</div>{_note(found)}</div>'
        )
    if conversation.error:
        parts.append(f"<p><b>stopped:</b> {escape(conversation.error)}</p>")
    return _page(f"transcript {result.event.id}", "".join(parts))


def verdict_table_html(policies: Iterable[PolicyResult]) -> str:
    """One row per verdict (policy, outcome, judge, turn, reason), problems first."""
    ordered = sorted(policies, key=lambda policy: BAD_FIRST.index(policy.outcome))
    rows: list[tuple[PolicyResult, Outcome, str, int | None, str]] = []
    for policy in ordered:
        verdicts = shown_verdicts(policy)
        if not verdicts:
            rows.append((policy, policy.outcome, "-", None, "no verdict"))
        rows.extend((policy, v.outcome, v.judge, v.turn, v.reason) for v in verdicts)
    body = "".join(
        f'<tr class="{escape(outcome.value)}" style="background:{_ROW.get(outcome.value, "#fff")}">'
        + "".join(
            f'<td style="{_CELL}">{escape(cell)}</td>'
            for cell in (
                policy.policy_id,
                outcome.value,
                judge,
                "-" if turn is None else str(turn),
                reason,
            )
        )
        + "</tr>"
        for policy, outcome, judge, turn, reason in rows
    )
    header = "".join(
        f'<th style="{_CELL};background:#eef1f6">{name}</th>'
        for name in ("policy", "outcome", "judge", "turn", "reason")
    )
    return _page(
        "verdicts",
        f'<table style="border-collapse:collapse;width:100%"><tr>{header}</tr>{body}</table>',
    )


def tool_calls_json(conversation: Conversation) -> str:
    """The executed tool calls, as JSON (arguments and results as structures, not strings)."""
    return json.dumps([call.model_dump(mode="json") for call in conversation.tool_calls], indent=2)
