"""What the offline user understands of an agent's message: each documented rule, tested."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.simulation.understanding import CONFIRMATION_PHRASINGS
from pytest_agentsim.simulation.understanding import SLOT_RULES
from pytest_agentsim.simulation.understanding import Asked
from pytest_agentsim.simulation.understanding import SlotMatcher
from pytest_agentsim.simulation.understanding import is_confirmation
from pytest_agentsim.simulation.understanding import near_same
from pytest_agentsim.simulation.understanding import rules_table
from pytest_agentsim.simulation.understanding import shape

README = Path(__file__).resolve().parents[2] / "README.md"

# One agent message per confirmation phrasing, in the table's order.
CONFIRMATIONS = [
    "I can cancel reservation ZFA04Y. Shall I go ahead?",
    "Do you want me to block the card now?",
    "The refund is $120. Would you like to proceed?",
    "So that's two checked bags on K8M2PQ, is that correct?",
    "Can you confirm you want to cancel?",
    "It will cost $35. OK to proceed?",
    "Are you sure you want to delete it?",
    "Do you agree to the new fare?",
    "Cancel it now (yes or no)?",
]


def test_every_confirmation_phrasing_has_an_example_it_matches() -> None:
    assert len(CONFIRMATIONS) == len(CONFIRMATION_PHRASINGS)
    for phrasing, text in zip(CONFIRMATION_PHRASINGS, CONFIRMATIONS, strict=True):
        assert phrasing.pattern.search(text), (phrasing.example, text)


@pytest.mark.parametrize(
    "text",
    [
        "What is your user id?",
        "May I have your zip code?",
        "Can I help you with anything else?",
        "Your reservation has been confirmed.",
        "What is your confirmation number?",
        "How many checked bags would you like in total?",
        "Should you need anything else, just ask.",
    ],
)
def test_questions_that_are_not_asking_to_confirm(text: str) -> None:
    assert not is_confirmation(text)


FACTS: dict[str, Any] = {
    "card_id": "4111 1111 1111 8842",
    "user_id": "mia_li_3668",
    "zip_code": "94110",
    "reservation_id": "ZFA04Y",
    "contact": "mia@example.com",
    "mobile": "+1 415 555 0100",
    "travel_date": datetime.date(2026, 12, 24),
    "full_name": "Mia Li",
    "card_with_you": False,
}


def asked(text: str, facts: dict[str, Any] | None = None, **aliases: list[str]) -> list[Asked]:
    return SlotMatcher(FACTS if facts is None else facts, aliases, ["bags"]).asked(text)


# (agent message, slot, how it was recognised, what the user answers with)
RECOGNISED = [
    ("What is your user id?", "user_id", "name", "value"),
    ("Could you give me your user-id?", "user_id", "name", "value"),
    ("What are the last four digits of your card?", "card_id", "last four digits", "last4"),
    ("Which card is it, the one ending in which digits?", "card_id", "last four digits", "last4"),
    ("What e-mail address can we use?", "contact", "email address", "value"),
    ("What is your postal code?", "zip_code", "zip code", "value"),
    ("What phone number can we reach you at?", "mobile", "phone number", "value"),
    ("When would you like to travel?", "travel_date", "date", "value"),
    ("May I have your name, please?", "full_name", "name", "value"),
    ("Please give me the 16-digit number on the card.", "card_id", "digit count", "value"),
    ("Please give me your card number.", "card_id", "identifier", "value"),
    ("What is the booking code? It looks like ABC123?", "reservation_id", "same shape", "value"),
    ("Which reservation is this about?", "reservation_id", "words", "value"),
    ("Do you still have the card with you?", "card_with_you", "name", "yes_no"),
    ("How many checked bags would you like in total?", "bags", "name", "value"),
]


@pytest.mark.parametrize(("text", "slot", "tier", "answer"), RECOGNISED)
def test_a_question_is_matched_to_the_slot_it_asks_for(
    text: str, slot: str, tier: str, answer: str
) -> None:
    assert asked(text) == [Asked(slot, tier, answer)]  # type: ignore[arg-type]


def test_every_slot_rule_has_a_question_it_recognises() -> None:
    tested = {tier for _, _, tier, _ in RECOGNISED}
    assert {rule.kind for rule in SLOT_RULES} <= tested


def test_an_alias_is_a_name() -> None:
    assert asked("What is the PNR?", reservation_id=["pnr"]) == [Asked("reservation_id", "name")]


def test_several_slots_come_in_the_order_asked() -> None:
    assert [item.slot for item in asked("Please give me your zip code and your user id.")] == [
        "zip_code",
        "user_id",
    ]


@pytest.mark.parametrize(
    "text",
    [
        # Not a question: the agent only mentions the slot.
        "I can look up any reservation id for you.",
        # Several slots fit and none is named: the user does not guess.
        "Could you give me the booking reference?",
        "What are the last four digits?",
        # A question about something the user has no fact of.
        "What is the airspeed velocity of an unladen swallow?",
    ],
)
def test_what_the_user_does_not_take_for_a_question_about_its_facts(text: str) -> None:
    assert asked(text) == []


def test_a_phone_number_is_not_a_card_number() -> None:
    # A 16-digit card number has no phone number's shape: with no phone fact, nothing.
    assert asked("What phone number can we call?", {"card_id": "4111111111118842"}) == []


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("ZFA04Y", "ABC123", True),
        ("mia_li_3668", "joe_ng_1024", True),
        ("94110", "12345", True),
        ("94110", "1234", False),
        ("mia_li_3668", "user_1234", False),
    ],
)
def test_shapes(first: str, second: str, same: bool) -> None:
    assert (shape(first) == shape(second)) is same


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("What is the airspeed velocity?", "what is the airspeed velocity", True),
        ("Sorry, what is the airspeed velocity?", "What is the airspeed velocity?", True),
        ("What is your user id?", "What is your zip code?", False),
    ],
)
def test_near_same(first: str, second: str, same: bool) -> None:
    assert near_same(first, second) is same


def test_the_readme_lists_the_rules_as_the_code_has_them() -> None:
    assert rules_table() in README.read_text(encoding="utf-8")
