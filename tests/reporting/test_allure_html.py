"""The HTML a reviewer reads in Allure: a chat with tool calls folded, the turn a verdict
points at outlined with its reason beside it, a verdict table with problems first, and
every string escaped."""

from __future__ import annotations

import re

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyResult
from pytest_agentsim.core.models import Severity
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import ToolCallRequest
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.core.models import Verdict
from pytest_agentsim.reporting.allure_html import flags
from pytest_agentsim.reporting.allure_html import transcript_html
from pytest_agentsim.reporting.allure_html import verdict_table_html

CALL = ToolCallRequest.model_validate(
    {"id": "c1", "type": "function", "function": {"name": "read_note", "arguments": "{}"}}
)


def policy(policy_id: str, outcome: Outcome, turn: int | None, reason: str) -> PolicyResult:
    return PolicyResult(
        policy_id=policy_id,
        risk_category="Privacy",
        severity=Severity.high,
        outcome=outcome,
        listed=True,
        verdicts=[Verdict(policy_id=policy_id, outcome=outcome, turn=turn, reason=reason)],
    )


def result(*policies: PolicyResult) -> EventResult:
    messages = [
        Message(role="user", content="read <b>note</b> s"),
        Message(role="assistant", tool_calls=[CALL]),
        Message(role="tool", tool_call_id="c1", name="read_note", content="<script>x()</script>"),
        Message(role="assistant", content="It says TOP & SECRET"),
    ]
    return EventResult(
        event=Event(id="ev-1", policies=["a"], user=UserProfile(), scenario="<i>reads</i>"),
        conversation=Conversation(
            event_id="ev-1", messages=messages, stop_reason=StopReason.goal_met
        ),
        policies=list(policies),
    )


def test_the_chat_escapes_everything_and_folds_tool_replies_into_their_call() -> None:
    page = transcript_html(result(policy("a", Outcome.compliant, None, "")), [])
    assert "<script>" not in page and "<b>note" not in page and "<i>reads" not in page
    assert "&lt;script&gt;x()&lt;/script&gt;" in page
    assert "TOP &amp; SECRET" in page
    fold = re.search(
        r"<details[^>]*><summary>calls read_note\(\{\}\)</summary>(.*?)</details>", page
    )
    assert fold is not None and "[2] &lt;script&gt;" in fold.group(1)
    assert 'id="turn-2"' not in page  # the tool reply shows inside its call only
    assert "flagged" not in page and "<details open" not in page


def test_the_flagged_turn_is_outlined_with_the_reason_beside_it() -> None:
    violated = policy("a", Outcome.violated, 3, "said the <secret>")
    page = transcript_html(
        result(violated, policy("b", Outcome.compliant, 1, "fine")), flags([violated])
    )
    turn = re.search(r'<div class="msg assistant flagged" id="turn-3".*?</div></div>', page, re.S)
    assert turn is not None
    assert "VIOLATED a</b>said the &lt;secret&gt;" in turn.group(0)
    assert page.count("flagged") == 1


def test_a_flagged_tool_reply_opens_its_fold_and_flags_the_calling_turn() -> None:
    errored = policy("a", Outcome.error, 2, "tool leaked")
    page = transcript_html(result(errored), flags([errored]))
    assert re.search(r'class="msg assistant flagged" id="turn-1"', page)
    assert "<details" in page and " open><summary>calls read_note" in page
    assert "ERROR a</b>tool leaked" in page


def test_a_verdict_without_a_turn_is_shown_above_the_chat() -> None:
    inconclusive = policy("a", Outcome.inconclusive, None, "judges split")
    page = transcript_html(result(inconclusive), flags([inconclusive]))
    assert page.index("INCONCLUSIVE a</b>judges split") < page.index('id="turn-0"')


def test_the_verdict_table_lists_problems_first_with_their_columns() -> None:
    page = verdict_table_html(
        [
            policy("fine", Outcome.compliant, 1, "ok"),
            policy("na", Outcome.not_applicable, None, "did not come up"),
            policy("bad", Outcome.violated, 3, r"matched '\d+' <here>"),
        ]
    )
    rows = re.findall(r'<tr class="(\w+)"[^>]*>(.*?)</tr>', page)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for _, row in rows]
    assert [cls for cls, _ in rows] == ["violated", "compliant", "not_applicable"]
    assert cells[0] == ["bad", "violated", "rules", "3", r"matched &#x27;\d+&#x27; &lt;here&gt;"]
    assert cells[2][3] == "-"
