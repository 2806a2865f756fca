"""Simulated users (agenda-based and scripted) and the conversation loop that drives them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.simulation.runner import run_conversation
from pytest_agentsim.simulation.runner import tool_call
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.users import AgendaUser
from pytest_agentsim.simulation.users import ScriptedUser
from pytest_agentsim.simulation.users import SimulatedUser
from pytest_agentsim.simulation.users import UserReply
from pytest_agentsim.simulation.users import user_for

FACTS = {"user_id": "mia_li_3668", "zip_code": "94110", "reservation_id": "ZFA04Y"}


def profile(**changes: Any) -> UserProfile:
    data: dict[str, Any] = {
        "persona": "Gold member in a hurry.",
        "goal": {
            "requests": [
                {
                    "slot": "cancellation",
                    "text": "Please cancel it.",
                    "done_when": "has been cancelled",
                }
            ]
        },
        "facts": dict(FACTS),
        "agenda": [
            {"act": "say", "text": "Hi, I need to cancel a flight."},
            {"act": "inform", "slot": "reservation_id"},
            {"act": "inform", "slot": "user_id"},
        ],
    }
    data.update(changes)
    return UserProfile.model_validate(data)


def cancelling_agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
    """A deterministic agent: asks for what it lacks, asks to confirm, then cancels."""
    said = " ".join(m["content"] or "" for m in messages if m["role"] == "user")
    last = messages[-1]["content"] or ""
    if "mia_li_3668" not in said:
        return "Sure. What is your user id?"
    if "94110" not in said:
        return "Thanks. What is your zip code?"
    if "ZFA04Y" not in said:
        return "Which reservation id is it?"
    if re.search(r"(?i)\byes\b", last):
        return "Done: reservation ZFA04Y has been cancelled."
    if re.search(r"(?i)\bno\b", last):
        return "Alright, I have changed nothing."
    return "I can cancel reservation ZFA04Y. Shall I go ahead?"


def converse(
    user: SimulatedUser,
    agent: Any = cancelling_agent,
    *,
    sandbox: ToolSandbox | None = None,
    max_turns: int = 12,
    max_tool_rounds: int = 16,
) -> Conversation:
    return asyncio.run(
        run_conversation(
            event_id="ev-1",
            user=user,
            agent=agent,
            sandbox=sandbox if sandbox is not None else ToolSandbox([]),
            max_turns=max_turns,
            max_tool_rounds=max_tool_rounds,
        )
    )


def texts(conversation: Conversation, role: str) -> list[str | None]:
    return [m.content for m in conversation.messages if m.role == role]


def after(agent_says: str) -> list[Message]:
    return [Message(role="user", content="Hi."), Message(role="assistant", content=agent_says)]


# --------------------------------------------------------------------------- agenda user


def test_same_profile_and_seed_give_the_same_conversation() -> None:
    first = converse(AgendaUser(profile(), seed="ev-1:3"))
    second = converse(AgendaUser(profile(), seed="ev-1:3"))
    assert first.stop_reason is StopReason.goal_met
    assert texts(first, "user") == texts(second, "user")
    assert first.messages == second.messages


def test_different_seeds_vary_initiative_but_all_reach_the_goal() -> None:
    runs = [converse(AgendaUser(profile(), seed=seed)) for seed in range(16)]
    assert {run.stop_reason for run in runs} == {StopReason.goal_met}
    assert all(
        texts(run, "assistant")[-1] == "Done: reservation ZFA04Y has been cancelled."
        for run in runs
    )
    # Some users say several things at once, others one at a time.
    assert len({tuple(texts(run, "user")) for run in runs}) > 1
    assert len({len(run.messages) for run in runs}) > 1


def test_opening_turn_comes_from_the_agenda() -> None:
    user = AgendaUser(profile(), seed=0, max_initiative=1)
    assert user.reply([]) == UserReply("Hi, I need to cancel a flight.")


def test_answers_a_question_about_a_known_fact() -> None:
    user = AgendaUser(profile(), seed=0, max_initiative=1)
    assert user.reply(after("What is your user id?")) == UserReply("My user id is mia_li_3668.")


def test_answers_through_an_alias() -> None:
    user = AgendaUser(profile(aliases={"zip_code": ["postal code"]}), seed=0, max_initiative=1)
    assert user.reply(after("What is your postal code?")).text == "My zip code is 94110."


def test_answers_several_questions_in_the_order_asked() -> None:
    user = AgendaUser(profile(), seed=0, max_initiative=1)
    first = user.reply(after("Please tell me your zip code and then your user id."))
    second = user.reply(after("Thanks."))
    assert (first.text, second.text) == ("My zip code is 94110.", "My user id is mia_li_3668.")


def test_a_fact_already_given_on_request_is_not_repeated_from_the_agenda() -> None:
    user = AgendaUser(profile(), seed=0, max_initiative=1)
    said = [user.reply([]).text]  # the opening
    said.append(user.reply(after("What is your user id?")).text)
    for _ in range(3):
        said.append(user.reply(after("Okay.")).text)
    assert said.count("My user id is mia_li_3668.") == 1
    assert said[2] == "My reservation id is ZFA04Y."


def test_informing_a_fact_it_lacks_says_it_does_not_know() -> None:
    user = AgendaUser(profile(agenda=[{"act": "inform", "slot": "email"}]), seed=0)
    assert user.reply([]).text == "Sorry, I don't know my email."


@pytest.mark.parametrize(
    ("confirm", "answer"), [(True, "Yes, please go ahead."), (False, "No, please don't do that.")]
)
def test_confirms_or_denies_as_its_goal_says(confirm: bool, answer: str) -> None:
    goal = {
        "confirm": confirm,
        "requests": [{"slot": "c", "text": "Cancel it.", "done_when": "has been cancelled"}],
    }
    # A high initiative still answers a yes/no question in a turn of its own.
    user = AgendaUser(profile(goal=goal), seed=0, max_initiative=5)
    assert user.reply(after("Shall I cancel reservation ZFA04Y?")) == UserReply(answer)


def test_stops_with_goal_met_when_the_agent_reply_matches_done_when() -> None:
    user = AgendaUser(profile(), seed=0)
    reply = user.reply(after("Your reservation HAS BEEN CANCELLED."))
    assert reply.stop is StopReason.goal_met
    assert reply.text == "Great, thank you. That's all I needed."


def test_goal_with_several_requests_needs_all_of_them() -> None:
    goal = {
        "requests": [
            {"slot": "c", "text": "Cancel it.", "done_when": "cancelled"},
            {"slot": "r", "text": "And refund me.", "done_when": "refunded"},
        ]
    }
    user = AgendaUser(profile(goal=goal, agenda=[]), seed=0)
    assert user.reply(after("It is cancelled.")).stop is None
    assert user.reply(after("You have been refunded.")).stop is StopReason.goal_met


def test_stops_with_refused_when_the_agent_refuses_without_a_question() -> None:
    user = AgendaUser(profile(), seed=0)
    reply = user.reply(after("I'm sorry, I cannot cancel that reservation."))
    assert reply == UserReply("I see. Thanks anyway, goodbye.", StopReason.refused)


def test_a_refusal_with_a_question_is_not_the_end() -> None:
    user = AgendaUser(profile(), seed=0, max_initiative=1)
    reply = user.reply(after("I can't do that yet. What is your user id?"))
    assert reply == UserReply("My user id is mia_li_3668.")


def test_stops_with_agenda_done_when_nothing_is_left_to_say() -> None:
    chatty = profile(goal={}, agenda=[{"act": "say", "text": "Hello there."}])
    conversation = converse(
        AgendaUser(chatty, seed=0), agent=lambda messages, sandbox: "Hello! Nice to meet you."
    )
    assert conversation.stop_reason is StopReason.agenda_done
    assert texts(conversation, "user") == ["Hello there.", "Thanks, that's all."]


def test_a_user_whose_goal_is_unmet_asks_again_until_max_turns() -> None:
    conversation = converse(
        AgendaUser(profile(agenda=[]), seed=0),
        agent=lambda messages, sandbox: "Let me look into that for you.",
        max_turns=2,
    )
    assert conversation.stop_reason is StopReason.max_turns
    assert [m.role for m in conversation.messages] == ["user", "assistant"] * 2
    assert texts(conversation, "user") == ["Please cancel it."] * 2


def test_a_user_that_would_say_the_same_a_third_time_has_stalled() -> None:
    conversation = converse(
        AgendaUser(profile(agenda=[]), seed=0),
        agent=lambda messages, sandbox: "Let me look into that for you.",
        max_turns=12,
    )
    assert conversation.stop_reason is StopReason.stalled
    assert [m.role for m in conversation.messages] == ["user", "assistant"] * 2
    assert texts(conversation, "user") == ["Please cancel it."] * 2


def test_answering_the_same_question_again_is_stalling_too() -> None:
    conversation = converse(
        AgendaUser(profile(agenda=[]), seed=0),
        agent=lambda messages, sandbox: "Sorry, what is your user id?",
        max_turns=12,
    )
    assert conversation.stop_reason is StopReason.stalled
    assert texts(conversation, "user") == ["Please cancel it.", *["My user id is mia_li_3668."] * 2]


def test_repeating_oneself_once_is_not_stalling() -> None:
    answers = iter(["What is your user id?", "What is your user id?", "It has been cancelled."])
    conversation = converse(
        AgendaUser(profile(agenda=[]), seed=0), agent=lambda messages, sandbox: next(answers)
    )
    assert conversation.stop_reason is StopReason.goal_met


def test_gives_the_last_four_digits_when_asked_for_them() -> None:
    card = profile(facts={**FACTS, "card_id": "4111 1111 1111 8842"})
    user = AgendaUser(card, seed=0, max_initiative=1)
    reply = user.reply(after("Could you tell me the last four digits of your card?"))
    assert reply == UserReply("The last four digits of my card id are 8842.")


@pytest.mark.parametrize(("value", "answer"), [(True, "Yes."), (False, "No.")])
def test_answers_a_yes_no_question_from_a_true_or_false_fact(value: bool, answer: str) -> None:
    user = AgendaUser(profile(facts={**FACTS, "card_with_you": value}), seed=0, max_initiative=1)
    assert user.reply(after("Do you still have the card with you?")).text == answer


def test_a_question_about_what_it_wants_is_answered_with_its_request() -> None:
    bags = {"requests": [{"slot": "bags", "text": "Two bags, please.", "done_when": "now has"}]}
    user = AgendaUser(profile(goal=bags), seed=0, max_initiative=1)
    assert user.reply(after("How many checked bags would you like?")).text == "Two bags, please."


def test_asked_to_confirm_a_fact_it_gives_the_fact() -> None:
    user = AgendaUser(profile(), seed=0, max_initiative=1)
    assert user.reply(after("Can you confirm your zip code?")).text == "My zip code is 94110."
    # A fact the agent states is confirmed, not told again.
    assert user.reply(after("Your zip code is 94110, is that correct?")).text == (
        "Yes, please go ahead."
    )


SWALLOW = "What is the airspeed velocity of an unladen swallow?"


def test_an_agent_asking_what_the_user_cannot_follow_three_times_loses_it() -> None:
    chatty = profile(
        agenda=[
            {"act": "say", "text": "Hi, I need to cancel a flight."},
            {"act": "inform", "slot": "reservation_id"},
            {"act": "inform", "slot": "user_id"},
            {"act": "inform", "slot": "zip_code"},
        ]
    )
    conversation = converse(
        AgendaUser(chatty, seed=0, max_initiative=1), agent=lambda messages, sandbox: SWALLOW
    )
    assert conversation.stop_reason is StopReason.stalled
    # It kept to its agenda meanwhile, and stopped at the third time, agenda left unsaid.
    assert texts(conversation, "user") == [
        "Hi, I need to cancel a flight.",
        "My reservation id is ZFA04Y.",
        "My user id is mia_li_3668.",
    ]
    assert conversation.stop_detail == (
        f"the simulated user could not follow turn 5: '{SWALLOW}' (the agent said it 3 times)"
    )


def test_nearly_the_same_question_counts_as_the_same() -> None:
    questions = iter([SWALLOW, f"Sorry, {SWALLOW.lower()}", f"{SWALLOW} Please!"] * 3)
    conversation = converse(
        AgendaUser(profile(), seed=0, max_initiative=1),
        agent=lambda messages, sandbox: next(questions),
    )
    assert conversation.stop_reason is StopReason.stalled
    assert conversation.stop_detail is not None
    assert conversation.stop_detail.endswith("(the agent said it 3 times)")


def test_lost_with_nothing_left_but_its_goal_it_says_that_once_then_stops() -> None:
    asked = iter(["Hello! How may I help?", SWALLOW, "And what is the capital of Assyria?"])
    conversation = converse(
        AgendaUser(profile(agenda=[]), seed=0), agent=lambda messages, sandbox: next(asked)
    )
    assert conversation.stop_reason is StopReason.stalled
    assert texts(conversation, "user") == ["Please cancel it.", "Please cancel it."]
    assert conversation.stop_detail == (
        "the simulated user could not follow turn 3: 'What is the airspeed velocity of an "
        "unladen swallow?' (it had nothing left to say with its goal unmet)"
    )


def test_an_agent_that_understands_nothing_it_says_gets_no_further() -> None:
    conversation = converse(
        AgendaUser(profile(agenda=[]), seed=0),
        agent=lambda messages, sandbox: "Let me look into that for you.",
    )
    assert conversation.stop_detail == (
        "the simulated user got no further after turn 3: 'Let me look into that for you.' "
        "(it would say 'Please cancel it.' a third time)"
    )


def test_a_question_it_could_not_follow_once_is_not_a_stall() -> None:
    answers = iter([SWALLOW, "What is your user id?", "What is your zip code?", "Which one?"])

    def agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        return next(answers, "It has been cancelled.")

    conversation = converse(AgendaUser(profile(), seed=0, max_initiative=1), agent=agent)
    assert conversation.stop_reason is StopReason.goal_met
    assert conversation.stop_detail is None


def test_agenda_user_refuses_a_scripted_profile() -> None:
    with pytest.raises(ValueError, match="use ScriptedUser"):
        AgendaUser(profile(script=["hi"]), seed=0)


def test_user_for_picks_the_kind_of_user() -> None:
    assert isinstance(user_for(profile(script=["hi"]), seed=1), ScriptedUser)
    assert isinstance(user_for(profile(), seed=1), AgendaUser)


# --------------------------------------------------------------------------- scripted user


def test_scripted_user_says_its_turns_in_order_then_stops() -> None:
    conversation = converse(
        ScriptedUser(["Cancel ZFA04Y.", "My user id is mia_li_3668."]),
        agent=lambda messages, sandbox: f"You said: {messages[-1]['content']}",
    )
    assert conversation.stop_reason is StopReason.script_done
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("user", "Cancel ZFA04Y."),
        ("assistant", "You said: Cancel ZFA04Y."),
        ("user", "My user id is mia_li_3668."),
        ("assistant", "You said: My user id is mia_li_3668."),
    ]


def test_scripted_user_needs_a_turn() -> None:
    with pytest.raises(ValueError, match="at least one turn"):
        ScriptedUser([])


# --------------------------------------------------------------------------- the loop


def test_an_agent_that_raises_ends_with_agent_error() -> None:
    def broken(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        raise RuntimeError("model overloaded")

    conversation = converse(ScriptedUser(["Hi"]), agent=broken)
    assert conversation.stop_reason is StopReason.agent_error
    assert conversation.error == "agent error: RuntimeError: model overloaded"
    assert conversation.traceback is not None
    assert conversation.traceback.startswith("Traceback (most recent call last):")
    assert 'raise RuntimeError("model overloaded")' in conversation.traceback
    assert texts(conversation, "user") == ["Hi"]
    assert texts(conversation, "assistant") == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (42, "the agent returned int; expected a string, an OpenAI assistant message dict"),
        ("", "the agent returned an empty message (no text, no tool calls)"),
        ({"role": "user", "content": "hi"}, "the agent returned a 'user' message, not 'assistant'"),
    ],
)
def test_an_agent_returning_something_invalid_ends_with_agent_error(reply: Any, error: str) -> None:
    conversation = converse(ScriptedUser(["Hi"]), agent=lambda messages, sandbox: reply)
    assert conversation.stop_reason is StopReason.agent_error
    assert conversation.error is not None and error in conversation.error


def test_a_user_that_raises_ends_with_user_error() -> None:
    class BrokenUser:
        def reply(self, messages: Sequence[Message]) -> UserReply:
            raise KeyError("facts")

    conversation = converse(BrokenUser())
    assert conversation.stop_reason is StopReason.user_error
    assert conversation.error == "user error: KeyError: 'facts'"


def test_an_async_agent_object_works() -> None:
    class AsyncAgent:
        async def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> Any:
            await asyncio.sleep(0)
            return {"role": "assistant", "content": cancelling_agent(messages, sandbox)}

    conversation = converse(AgendaUser(profile(), seed=0), agent=AsyncAgent())
    assert conversation.stop_reason is StopReason.goal_met
    assert texts(conversation, "assistant")[-1] == "Done: reservation ZFA04Y has been cancelled."


def test_an_agent_looping_on_tool_calls_ends_with_agent_error() -> None:
    def lookup(db: dict[str, Any], reservation_id: str) -> str:
        """Look a reservation up."""
        return "booked"

    def looping(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> Any:
        return {"role": "assistant", "tool_calls": [tool_call("lookup", {"reservation_id": "Z"})]}

    sandbox = ToolSandbox([lookup])
    conversation = converse(ScriptedUser(["Hi"]), agent=looping, sandbox=sandbox, max_tool_rounds=4)
    assert conversation.stop_reason is StopReason.agent_error
    assert conversation.error == (
        "agent error: the agent made 4 replies with tool calls in turn 1 without answering "
        "the user (the limit: --agentsim-max-tool-rounds)"
    )
    assert conversation.traceback is None  # nothing raised: the line says it all
    assert len(conversation.tool_calls) == 4


def baggage(db: dict[str, Any], reservation_id: str, bags: int) -> dict[str, Any]:
    """Set the checked bags of a reservation."""
    db["reservations"][reservation_id]["bags"] = bags
    return {"reservation_id": reservation_id, "bags": bags}


def test_tool_calls_are_run_and_their_results_fed_back() -> None:
    seen: list[list[dict[str, Any]]] = []

    def agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> Any:
        seen.append(messages)
        if messages[-1]["role"] == "user":
            return {
                "role": "assistant",
                "content": "Updating it now.",
                "tool_calls": [
                    tool_call("baggage", {"reservation_id": "ZFA04Y", "bags": 2}),
                    # OpenAI dict form, arguments given as a dict, with the agent's own id.
                    {
                        "id": "mine",
                        "type": "function",
                        "function": {"name": "baggage", "arguments": {"reservation_id": "NOPE"}},
                    },
                ],
            }
        return "Your reservation now has 2 checked bags."

    sandbox = ToolSandbox([baggage], {"reservations": {"ZFA04Y": {"bags": 0}}})
    conversation = converse(ScriptedUser(["Two bags, please."]), agent=agent, sandbox=sandbox)

    assert conversation.stop_reason is StopReason.script_done
    assert [m.role for m in conversation.messages] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    first, second = conversation.tool_calls
    assert (first.id, first.name, first.turn, first.ok) == ("call_1_0", "baggage", 1, True)
    assert (second.id, second.turn) == ("mine", 1)
    assert second.error == "invalid arguments: bags: Field required"
    results = conversation.messages[2:4]
    assert [(m.tool_call_id, m.name, m.content) for m in results] == [
        ("call_1_0", "baggage", '{"bags": 2, "reservation_id": "ZFA04Y"}'),
        ("mine", "baggage", "Error: invalid arguments: bags: Field required"),
    ]
    assistant = conversation.messages[1]
    assert assistant.tool_calls is not None
    assert [call.id for call in assistant.tool_calls] == ["call_1_0", "mine"]
    # The agent's second round saw the results, as OpenAI tool messages.
    assert seen[1][-2:] == [m.to_openai() for m in results]
    assert conversation.final_db == {"reservations": {"ZFA04Y": {"bags": 2}}}
    assert conversation.initial_db == {"reservations": {"ZFA04Y": {"bags": 0}}}
    assert conversation.state_diff == {
        "values_changed": {
            "root['reservations']['ZFA04Y']['bags']": {"new_value": 2, "old_value": 0}
        }
    }
