"""Redaction: every secret in every spelling our outputs give it, computed once per secret set.

The spellings looked for come from tests/secret_spellings.py (Python's own escapes), not
from the module under test. The end-to-end test, which greps every artefact of a run, is
tests/test_secrets.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.parse import urlencode

import pytest
from secret_spellings import MARKERS
from secret_spellings import NASTY_SECRETS
from secret_spellings import leaks
from secret_spellings import spellings

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import FunctionCall
from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyResult
from pytest_agentsim.core.models import Severity
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import ToolCallRequest
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.core.models import Verdict
from pytest_agentsim.judging.llm_judge import judge_messages
from pytest_agentsim.judging.rules import MustNotCall
from pytest_agentsim.judging.rules import TextNotMatches
from pytest_agentsim.judging.rules import default_registry
from pytest_agentsim.llm.cassettes import Cassette
from pytest_agentsim.llm.gateway import _one_line
from pytest_agentsim.llm.messages import LLMRequest
from pytest_agentsim.llm.messages import LLMResponse
from pytest_agentsim.llm.redaction import REDACTED
from pytest_agentsim.llm.redaction import Redactor
from pytest_agentsim.llm.redaction import _scrubber
from pytest_agentsim.llm.redaction import redact
from pytest_agentsim.llm.redaction import redact_data
from pytest_agentsim.llm.redaction import secret_spellings
from pytest_agentsim.packs.loading import load_pack
from pytest_agentsim.simulation.runner import run_conversation
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.users import ScriptedUser


@pytest.mark.parametrize("secret", NASTY_SECRETS, ids=["dquote", "both-quotes", "squote"])
def test_every_spelling_of_a_secret_is_redacted(secret: str) -> None:
    wanted = spellings(secret)
    assert len(wanted) > 40  # the secret is nasty enough to be spelt many ways
    for spelling in sorted(wanted):
        assert redact(f"<<{spelling}>>", [secret]) == f"<<{REDACTED}>>", spelling
    assert wanted <= set(secret_spellings(secret))


def test_a_plain_secret_has_one_spelling_and_a_short_value_none() -> None:
    assert secret_spellings("ghp_token_3") == ("ghp_token_3",)
    assert secret_spellings("abc") == ()
    # Shorter than 6 characters as typed: ignored, whatever its escapes would look like.
    assert redact("say 'a\\nb' and abc", ["abc", "a\nb"]) == "say 'a\\nb' and abc"


def test_spellings_are_computed_once_per_secret_set() -> None:
    secrets, patterns = (NASTY_SECRETS[0], "plain-secret-1"), (r"ACME-\d+",)
    assert _scrubber(secrets, patterns) is _scrubber(secrets, patterns)
    assert Redactor(secrets, patterns)._scrubber is Redactor(secrets, patterns)._scrubber
    # Each secret once, whichever sets it is in (the gateway's, a cassette's, the run's).
    assert _scrubber(secrets[:1], ()).secrets[0] is _scrubber(secrets, patterns).secrets[0]
    # A nasty secret stays a bounded regex, not thousands of alternatives.
    assert all(len(secret_spellings(secret)) < 200 for secret in NASTY_SECRETS)


def test_a_secret_inside_another_is_replaced_whole() -> None:
    assert redact("x outer-inner-secret-1 y", ["inner-secret-1", "outer-inner-secret-1"]) == (
        f"x {REDACTED} y"
    )


def test_the_realistic_nestings_are_found() -> None:
    secret = NASTY_SECRETS[1]
    arguments = json.dumps({"name": secret})  # a tool call's arguments
    tool_error = f"Error: {KeyError(secret)}"  # a tool that raised, as the agent sees it
    texts = [
        json.dumps({"content": arguments}, ensure_ascii=False),  # the judge's transcript
        json.dumps({"content": json.dumps({"error": tool_error})}),  # three deep
        f"called read_note({ {'name': secret}!r}), which is forbidden",  # a rule's reason
        json.dumps({"reason": repr([secret, "'", '"'])}),  # a reason in results.json
        "https://example.invalid/?" + urlencode({"q": secret}),  # a URL in a log line
        json.dumps({"url": "https://example.invalid/" + quote(secret)}),  # ... in JSON
    ]
    for text in texts:
        assert leaks(redact(text, [secret])) == [], text
        assert REDACTED in redact(text, [secret])


def test_redact_data_returns_the_data_itself_when_nothing_is_secret() -> None:
    data: dict[Any, Any] = {"a": ["x", ("y", 1)], 2: {"b": None}}
    assert redact_data(data, ["my-secret-1"]) is data
    planted = {"a": ["x", ("my-secret-1", 1)], "my-secret-1": {"b": "my-secret-1"}}
    assert redact_data(planted, ["my-secret-1"]) == {
        "a": ["x", (REDACTED, 1)],
        REDACTED: {"b": REDACTED},
    }
    assert planted["a"] == ["x", ("my-secret-1", 1)]  # the original is left alone


def _result(content: str, *, arguments: str = "{}", scenario: str = "") -> EventResult:
    return EventResult(
        event=Event(
            id="ev-1", domain="shop", policies=["p"], scenario=scenario, user=UserProfile()
        ),
        conversation=Conversation(
            event_id="ev-1",
            messages=[
                Message(role="user", content=content),
                Message(
                    role="assistant",
                    tool_calls=[
                        ToolCallRequest(
                            id="c1", function=FunctionCall(name="t", arguments=arguments)
                        )
                    ],
                ),
            ],
            final_db={"orders": {"o1": {"status": "open"}}},
            stop_reason=StopReason.script_done,
        ),
        policies=[
            PolicyResult(
                policy_id="p",
                risk_category="Privacy",
                severity=Severity.high,
                outcome=Outcome.compliant,
                listed=True,
                verdicts=[Verdict(policy_id="p", outcome=Outcome.compliant, reason="fine")],
            )
        ],
    )


def test_a_result_without_secrets_is_not_copied() -> None:
    """The fast path: one JSON dump shows no anchor and no pattern hint; nothing is walked."""
    original = _result("hello, cancel order o1")
    redacted = Redactor(("my-secret-1", NASTY_SECRETS[0])).result(original)
    assert redacted.conversation is original.conversation
    assert redacted.policies[0] is original.policies[0]
    assert redacted.event is original.event


@pytest.mark.parametrize(
    ("content", "arguments", "expected"),
    [
        ("key sk-proj-ABCDEFGH123", "{}", f"key {REDACTED}"),  # a default pattern
        ("header BEARER abc.def", "{}", f"header {REDACTED}"),  # in any case
        ("account ACCT-991", "{}", f"account {REDACTED}"),  # the user's pattern
        ("plain", json.dumps({"pin": NASTY_SECRETS[0]}), "plain"),  # escaped in arguments
    ],
)
def test_a_result_with_a_secret_or_a_pattern_is_redacted(
    content: str, arguments: str, expected: str
) -> None:
    redactor = Redactor((NASTY_SECRETS[0],), (r"ACCT-\d+",))
    redacted = redactor.result(_result(content, arguments=arguments))
    assert redacted.conversation.messages[0].content == expected
    call = redacted.conversation.messages[1].tool_calls
    assert call is not None and leaks(call[0].function.arguments) == []
    if arguments != "{}":
        assert json.loads(call[0].function.arguments) == {"pin": REDACTED}  # still JSON


def test_the_scenario_is_redacted_for_reports() -> None:
    """Failure reports and Allure titles print the scenario; the rest of the event stays."""
    secret = NASTY_SECRETS[2]
    original = _result("hi", scenario=f"The user's PIN is {secret}.")
    redacted = Redactor((secret,)).result(original)
    assert redacted.event.scenario == f"The user's PIN is {REDACTED}."
    assert redacted.event.model_copy(update={"scenario": ""}) == original.event.model_copy(
        update={"scenario": ""}
    )
    assert secret in original.event.scenario  # the judges saw it as it was


def test_event_metadata_is_redacted_for_reports_and_results() -> None:
    secret = NASTY_SECRETS[2]
    original = _result("hi")
    original.event.metadata = {"ticket": f"pin {secret}", "n": 3}
    redacted = Redactor((secret,)).result(original)
    assert redacted.event.metadata == {"ticket": f"pin {REDACTED}", "n": 3}
    assert original.event.metadata["ticket"] == f"pin {secret}"


def test_a_one_line_error_is_redacted_before_it_is_shortened() -> None:
    secret = NASTY_SECRETS[0]  # its newline becomes a space on one line
    exc = RuntimeError("x" * 280 + f" body {json.dumps({'key': secret})} tail")
    line = _one_line(exc, lambda text: redact(text, [secret]))
    assert leaks(line) == [] and "Zq8v" not in line  # not even cut in two at 300
    unredacted = _one_line(exc)
    assert "Zq8v" not in unredacted and "pa" in unredacted  # the cut falls inside it


def test_a_cassette_miss_is_redacted_before_it_is_shortened(tmp_path: Path) -> None:
    secret = NASTY_SECRETS[0]
    cassette = Cassette(tmp_path / "c.yaml", "none", secrets=[secret])
    for padding in range(0, 60, 7):  # wherever the 60-character cut falls
        request = LLMRequest(
            model="openai/x", messages=[{"role": "user", "content": "y" * padding + secret}]
        )
        message = str(cassette.miss(request))
        assert leaks(message) == [] and 'pa"ss' not in message, message


def test_a_recorded_judge_prompt_keeps_no_spelling(tmp_path: Path) -> None:
    """The issue's case: the judge prompt embeds the transcript (and tool arguments, and
    tool errors) as JSON, escaping a secret with a quote or backslash once or twice."""
    pack_file = tmp_path / "notes.yaml"
    pack_file.write_text(
        "domain: notes\npolicies:\n"
        "  - {id: no-read, description: Never read notes., category: c, "
        "risk_category: Privacy, severity: high, complexity: 1}\n",
        encoding="utf-8",
    )
    pack = load_pack(pack_file, registry=default_registry())

    def read_note(db: dict[str, Any], name: str) -> str:
        """Read a note.

        Args:
            name: The note's name.
        """
        return str(db["notes"][name])  # a KeyError names the secret in its repr

    def agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> Any:
        if messages[-1]["role"] == "tool":
            return f"Sorry: {messages[-1]['content']} (you said {NASTY_SECRETS[1]})"
        call = {"name": "read_note", "arguments": {"name": NASTY_SECRETS[2]}}
        return {"role": "assistant", "tool_calls": [{"id": "c1", "function": call}]}

    conversation = asyncio.run(
        run_conversation(
            event_id="ev-1",
            user=ScriptedUser([f"my key is {NASTY_SECRETS[0]}"]),
            agent=agent,
            sandbox=ToolSandbox([read_note], {"notes": {}}),
        )
    )
    event = Event(id="ev-1", domain="notes", policies=["no-read"], user=UserProfile())
    messages = judge_messages(event, conversation, pack)
    reasons = [
        MustNotCall(tool="read_note").check(conversation).reason,
        TextNotMatches(pattern="Sorry").check(conversation).reason,
    ]
    assert any(marker in json.dumps(messages) for marker in MARKERS)  # planted
    cassette = Cassette(tmp_path / "ev-1.yaml", "all", secrets=NASTY_SECRETS)
    cassette.record(
        LLMRequest(model="openai/judge", messages=messages, purpose="judge"),
        LLMResponse(
            message={"role": "assistant", "content": json.dumps({"reasons": reasons})},
            model="openai/judge",
        ),
    )
    text = cassette.path.read_text(encoding="utf-8")
    assert leaks(text) == [] and REDACTED in text
