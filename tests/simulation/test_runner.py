"""The offline simulated users and the conversation runner."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.simulation.agent import Agent
from pytest_agentsim.simulation.declarations import agent_factory
from pytest_agentsim.simulation.llm_agent import LLMAgent
from pytest_agentsim.simulation.llm_agent import OpenAICompatibleAgent
from pytest_agentsim.simulation.runner import AgentFactoryError
from pytest_agentsim.simulation.runner import SimulationRunner
from pytest_agentsim.simulation.runner import agent_for
from pytest_agentsim.simulation.runner import call_agent
from pytest_agentsim.simulation.runner import run_conversation
from pytest_agentsim.simulation.runner import tool_call
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.tools import ToolFunction
from pytest_agentsim.simulation.users import AgendaUser
from pytest_agentsim.simulation.users import ScriptedUser
from pytest_agentsim.simulation.users import SimulatedUser

PROFILE = UserProfile.model_validate(
    {
        "goal": {
            "requests": [
                {"slot": "refund", "text": "I want my money back.", "done_when": "refunded"}
            ]
        },
        "facts": {"order_id": "o-17", "email": "ann@example.com", "postcode": "SW1"},
        "aliases": {"postcode": ["zip"]},
        "agenda": [
            {"act": "say", "text": "Hello, my parcel arrived broken."},
            {"act": "inform", "slot": "order_id"},
            {"act": "request", "slot": "refund"},
            {"act": "inform", "slot": "email"},
        ],
    }
)


class ShopAgent:
    """Asks for what it needs, one thing at a time, then asks to confirm and refunds."""

    def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> Any:
        said = " ".join(m["content"] or "" for m in messages if m["role"] == "user")
        if messages[-1]["role"] == "tool":
            return "Your order has been refunded."
        if "o-17" not in said:
            return "Sorry to hear that. What is your order id?"
        if "ann@example.com" not in said:
            return "Thanks. Can you give me your email?"
        if re.search(r"\byes\b", messages[-1]["content"], re.I):
            return {"role": "assistant", "tool_calls": [tool_call("refund", {"order_id": "o-17"})]}
        if re.search(r"\bno\b", messages[-1]["content"], re.I):
            return "Alright, nothing was changed."
        return "I can refund order o-17. Shall I go ahead?"


def refund(db: dict[str, Any], order_id: str) -> str:
    """Refund an order."""
    db["refunds"] = [order_id]
    return "ok"


def converse(
    user: SimulatedUser,
    agent: Agent | None = None,
    max_turns: int = 10,
    tools: Sequence[ToolFunction] = (refund,),
) -> Conversation:
    return asyncio.run(
        run_conversation(
            event_id="ev",
            user=user,
            agent=agent or ShopAgent(),
            sandbox=ToolSandbox(list(tools), {"refunds": []}),
            max_turns=max_turns,
        )
    )


def user_lines(conversation: Conversation) -> list[str]:
    return [m.content or "" for m in conversation.messages if m.role == "user"]


def test_agenda_user_is_deterministic_for_a_seed() -> None:
    first = converse(AgendaUser(PROFILE, seed=7))
    second = converse(AgendaUser(PROFILE, seed=7))
    assert first.messages == second.messages
    assert first.stop_reason is StopReason.goal_met


def test_every_seed_reaches_the_goal_though_initiative_varies() -> None:
    runs = [converse(AgendaUser(PROFILE, seed=seed)) for seed in range(12)]
    assert {run.stop_reason for run in runs} == {StopReason.goal_met}
    assert all(run.final_db["refunds"] == ["o-17"] for run in runs)
    assert len({tuple(user_lines(run)) for run in runs}) > 1


def test_agenda_user_answers_questions_from_its_facts() -> None:
    user = AgendaUser(PROFILE, seed=0)
    user.reply([])
    asked = [
        Message(role="user", content="hi"),
        Message(role="assistant", content="What is your zip?"),
    ]
    assert user.reply(asked).text == "My postcode is SW1."


def test_agenda_user_says_yes_or_no_as_its_goal_says() -> None:
    question = [
        Message(role="user", content="hi"),
        Message(role="assistant", content="Shall I go ahead?"),
    ]
    assert AgendaUser(PROFILE, seed=0).reply(question).text == "Yes, please go ahead."
    declining = PROFILE.model_copy(
        update={"goal": PROFILE.goal.model_copy(update={"confirm": False})}
    )
    assert AgendaUser(declining, seed=0).reply(question).text == "No, please don't do that."


def test_declining_user_leaves_without_the_action() -> None:
    declining = PROFILE.model_copy(
        update={"goal": PROFILE.goal.model_copy(update={"confirm": False, "requests": []})}
    )
    conversation = converse(AgendaUser(declining, seed=1))
    assert conversation.stop_reason is StopReason.agenda_done
    assert conversation.final_db["refunds"] == []
    assert "No, please don't do that." in user_lines(conversation)


def test_refusal_without_a_question_ends_the_conversation() -> None:
    conversation = converse(
        AgendaUser(PROFILE, seed=0), agent=lambda m, s: "Sorry, I cannot help with refunds."
    )
    assert conversation.stop_reason is StopReason.refused
    assert user_lines(conversation)[-1] == "I see. Thanks anyway, goodbye."


def test_a_goal_never_met_hits_the_turn_limit() -> None:
    conversation = converse(
        AgendaUser(PROFILE, seed=0), agent=lambda m, s: "Hmm, tell me more.", max_turns=3
    )
    assert conversation.stop_reason is StopReason.max_turns
    assert len(user_lines(conversation)) == 3


def test_scripted_user_says_its_turns_in_order_then_stops() -> None:
    conversation = converse(
        ScriptedUser(["one", "two"]), agent=lambda m, s: f"heard {m[-1]['content']}"
    )
    assert [m.content for m in conversation.messages] == ["one", "heard one", "two", "heard two"]
    assert conversation.stop_reason is StopReason.script_done
    with pytest.raises(ValueError, match="at least one turn"):
        ScriptedUser([])


def test_tool_calls_are_run_and_fed_back() -> None:
    conversation = converse(ScriptedUser(["Refund o-17", "ann@example.com", "yes"]))
    roles = [(m.role, bool(m.tool_calls)) for m in conversation.messages]
    assert ("assistant", True) in roles
    tool_message = next(m for m in conversation.messages if m.role == "tool")
    call = conversation.tool_calls[0]
    assert (tool_message.tool_call_id, tool_message.name, tool_message.content) == (
        call.id,
        "refund",
        "ok",
    )
    assert call.turn == conversation.messages.index(
        next(m for m in conversation.messages if m.tool_calls)
    )
    assert conversation.state_diff == {"iterable_item_added": {"root['refunds'][0]": "o-17"}}


def test_a_compacted_conversation_keeps_changes_and_reads_the_same() -> None:
    conversation = converse(ScriptedUser(["Refund o-17", "ann@example.com", "yes"]))
    final, text = conversation.final_db, conversation.db_diff_text()
    conversation.compact()
    assert conversation.kept_final_db is None
    assert conversation.db_changes() == ({"refunds": []}, {"refunds": ["o-17"]})
    assert conversation.final_db == final == {"refunds": ["o-17"]}
    assert conversation.db_diff_text() == text
    assert "root['refunds'][0]" in text


def test_async_agent() -> None:
    class AsyncAgent:
        async def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
            await asyncio.sleep(0)
            return "hello from a coroutine"

    conversation = converse(ScriptedUser(["hi"]), agent=AsyncAgent())
    assert conversation.messages[-1].content == "hello from a coroutine"


class Words:
    def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        return "words"


class AsyncDict:
    async def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> dict[str, Any]:
        return {"content": "a dict"}


def message_function(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> Message:
    return Message(role="assistant", content="a message")


async def coroutine_function(messages: Sequence[dict[str, Any]], _: object) -> str:
    return "a coroutine"


class CallableWithRespond:
    """Both shapes at once: ``respond`` wins, as call_agent has always done."""

    def __call__(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        return "called"

    def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        return "responded"


def test_every_documented_agent_shape_is_an_agent_and_is_called() -> None:
    # The annotation is checked by mypy: each of these shapes satisfies the Agent protocol.
    agents: list[Agent] = [
        Words(),
        AsyncDict(),
        message_function,
        coroutine_function,
        lambda messages, sandbox: "a lambda",
        CallableWithRespond(),
    ]
    sandbox = ToolSandbox([refund])
    said = [
        asyncio.run(call_agent(agent, [{"role": "user", "content": "hi"}], sandbox)).content
        for agent in agents
    ]
    assert said == ["words", "a dict", "a message", "a coroutine", "a lambda", "responded"]


def test_the_built_in_agents_are_agents() -> None:
    agents: list[Agent] = [
        LLMAgent("You help.", "openai/agent"),
        OpenAICompatibleAgent("http://127.0.0.1:1/v1", "bot"),
    ]
    assert [type(agent).__name__ for agent in agents] == ["LLMAgent", "OpenAICompatibleAgent"]


@pytest.mark.parametrize(
    ("agent", "error"),
    [
        (lambda m, s: 1 / 0, "ZeroDivisionError: division by zero"),
        (lambda m, s: 42, "the agent returned int; expected a string"),
        (lambda m, s: {"role": "assistant", "content": ""}, "the agent returned an empty message"),
        (lambda m, s: {"role": "user", "content": "x"}, "the agent returned a 'user' message"),
        (object(), "object is not an agent"),
        (
            lambda m, s: {
                "role": "assistant",
                "tool_calls": [tool_call("refund", {"order_id": "x"})],
            },
            "the agent made 16 replies with tool calls in turn 1 without answering the user",
        ),
    ],
)
def test_agent_failures_end_the_conversation_as_errors(agent: Any, error: str) -> None:
    conversation = converse(ScriptedUser(["hi", "again"]), agent=agent)
    assert conversation.stop_reason is StopReason.agent_error
    assert conversation.error is not None and error in conversation.error
    assert len(user_lines(conversation)) == 1


def test_a_failing_user_is_a_user_error() -> None:
    class BrokenUser:
        def reply(self, messages: Any) -> Any:
            raise KeyError("persona")

    conversation = converse(BrokenUser())
    assert conversation.stop_reason is StopReason.user_error
    assert "KeyError: 'persona'" in (conversation.error or "")


# --------------------------------------------------------- agent factories and seeds


EVENT = Event(id="ev-9", domain="shop", policies=["p"], user=PROFILE)


def test_an_agent_factory_makes_the_agent_for_the_event() -> None:
    seen: list[str] = []

    def make(event: Event) -> ShopAgent:
        seen.append(event.id)
        return ShopAgent()

    assert isinstance(agent_for(make, EVENT), ShopAgent)
    assert isinstance(agent_for(agent_factory(make), EVENT), ShopAgent)
    assert seen == ["ev-9", "ev-9"]
    agent = ShopAgent()
    assert agent_for(agent, EVENT) is agent  # an agent is used as it is


def test_a_failing_factory_or_one_that_makes_no_agent_says_so() -> None:
    def broken(event: Event) -> ShopAgent:
        raise KeyError(event.id)

    with pytest.raises(
        AgentFactoryError, match="the agent factory broken failed for event ev-9: KeyError: 'ev-9'"
    ):
        agent_for(broken, EVENT)
    with pytest.raises(
        AgentFactoryError,
        match=r"the agent factory <lambda> returned NoneType for event ev-9; expected an agent",
    ):
        agent_for(agent_factory(lambda event: None), EVENT)


def test_only_generated_events_follow_the_run_seed() -> None:
    hand_written = EVENT.model_copy()
    generated = EVENT.model_copy()
    generated._generated = True
    seeds = {seed: SimulationRunner(judges=[], seed=seed) for seed in (0, 5)}
    assert seeds[0].user_seed(hand_written) == seeds[5].user_seed(hand_written)
    assert seeds[0].user_seed(generated) != seeds[5].user_seed(generated)
    # ... where it makes a difference: this profile's user varies with its seed
    lines = {
        seed: user_lines(converse(AgendaUser(PROFILE, seed=runner.user_seed(generated))))
        for seed, runner in seeds.items()
    }
    assert lines[0] != lines[5]
    assert seeds[0].user_seed(hand_written) == seeds[0].user_seed(generated)  # as it was
