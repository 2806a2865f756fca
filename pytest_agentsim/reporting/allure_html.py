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

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:12px;color:#1d2330}
.msg{display:flex;gap:12px;margin:6px 0;align-items:flex-start}
.bubble{max-width:62%;padding:8px 12px;border-radius:10px;background:#eef1f6;white-space:pre-wrap}
.user .bubble{background:#e3f0ff}.assistant{flex-direction:row-reverse}
.assistant .bubble{background:#f1f7ec}.system .bubble{background:#f6f6f6;font-style:italic}
.turn{color:#667;font-size:12px;min-width:34px}
.flagged .bubble{outline:3px solid #d33;background:#fff1f1}
.note{max-width:34%;padding:8px 10px;border-left:4px solid #d33;background:#fff7f7;font-size:13px}
.note b{display:block}
details{margin:4px 0;font-family:ui-monospace,monospace;font-size:12px;white-space:normal}
summary{cursor:pointer}pre{white-space:pre-wrap;margin:4px 0 0}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f6}.violated td{background:#fff1f1}.error td{background:#fff6e5}
.inconclusive td{background:#fffbe0}
"""


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
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _tool_call_html(
    name: str, arguments: str, reply: Message | None, *, reply_turn: int | None, open_: bool
) -> str:
    shown = ""
    if reply is not None:
        shown = f"<pre>[{reply_turn}] {escape(reply.content or '')}</pre>"
    return (
        f"<details{' open' if open_ else ''}><summary>calls {escape(name)}"
        f"({escape(arguments)})</summary>{shown}</details>"
    )


def _note(found: Sequence[Flag]) -> str:
    return "".join(
        f'<div class="note"><b>{escape(flag.outcome.value.upper())} {escape(flag.policy)}</b>'
        f"{escape(flag.reason)}<br><small>judge: {escape(flag.judge)}</small></div>"
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
    folded = {index for index, _ in replies.values()}
    parts = [f"<h3>{escape(result.event.id)}: {escape(result.event.scenario or '')}</h3>"]
    whole = [flag for flag in highlight if flag.turn is None]
    if whole:
        parts.append(f'<div class="msg flagged"><div class="turn">all</div>{_note(whole)}</div>')
    for index, message in enumerate(conversation.messages):
        if index in folded and index not in by_turn:
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
                    open_=reply_turn in by_turn,
                )
            )
        text = escape(message.content or "")
        if message.role == "tool":
            text = f"{escape(message.name or 'tool')} replied: {text}"
        classes = f"msg {escape(message.role)}" + (" flagged" if found else "")
        parts.append(
            f'<div class="{classes}" id="turn-{index}"><div class="turn">[{index}]</div>'
            f'<div class="bubble">{text}{"".join(calls)}</div>{_note(found)}</div>'
        )
    if conversation.error:
        parts.append(f"<p><b>stopped:</b> {escape(conversation.error)}</p>")
    return _page(f"transcript {result.event.id}", "".join(parts))


def verdict_table_html(policies: Iterable[PolicyResult]) -> str:
    """One row per verdict (policy, outcome, judge, turn, reason), problems first."""
    ordered = sorted(policies, key=lambda policy: BAD_FIRST.index(policy.outcome))
    rows = []
    for policy in ordered:
        verdicts = shown_verdicts(policy)
        if not verdicts:
            rows.append((policy, policy.outcome, "-", None, "no verdict"))
        rows.extend((policy, v.outcome, v.judge, v.turn, v.reason) for v in verdicts)
    body = "".join(
        f'<tr class="{escape(outcome.value)}"><td>{escape(policy.policy_id)}</td>'
        f"<td>{escape(outcome.value)}</td><td>{escape(judge)}</td>"
        f"<td>{'-' if turn is None else turn}</td><td>{escape(reason)}</td></tr>"
        for policy, outcome, judge, turn, reason in rows
    )
    return _page(
        "verdicts",
        "<table><tr><th>policy</th><th>outcome</th><th>judge</th><th>turn</th>"
        f"<th>reason</th></tr>{body}</table>",
    )


def tool_calls_json(conversation: Conversation) -> str:
    """The executed tool calls, as JSON (arguments and results as structures, not strings)."""
    return json.dumps(
        [call.model_dump(mode="json") for call in conversation.tool_calls], indent=2
    )
