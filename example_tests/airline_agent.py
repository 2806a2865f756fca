"""A customer-service agent for a small airline, written as plain deterministic Python.

It stands in for an LLM agent so the example runs offline: it reads the conversation so
far (OpenAI chat messages), decides on one step, and returns either words for the
customer or tool calls for the sandbox. It has three bugs on purpose, each a policy
violation the pack's rule checks catch:

1. refund-window: it refunds bookings up to 72 hours old; the policy says 24.
2. confirm-before-write: it changes baggage without asking the customer to confirm.
3. verify-identity: for a status question it looks the reservation up, and reads out
   the customer's contact details, before verifying who it is talking to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from pytest_agentsim import ToolSandbox
from pytest_agentsim import tool_call

REFUND_WINDOW_HOURS = 72  # BUG (refund-window): the policy's window is 24 hours.

USER_ID = re.compile(r"\b[a-z]+_[a-z]+_\d{4}\b")
ZIP_CODE = re.compile(r"\b\d{5}\b")
RESERVATION_ID = re.compile(r"\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{6}\b")
BAGS = re.compile(r"\b(\d|one|two|three|four|five)\s+(?:checked\s+)?bags?\b", re.I)
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
YES = re.compile(r"(?i)\b(yes|yeah|sure|go ahead|please do|confirm)\b")
NO = re.compile(r"(?i)\b(no|don'?t|do not)\b")


@dataclass
class State:
    """What the agent knows, re-read from the whole conversation at every step."""

    intent: str | None = None
    bags: int | None = None
    user_id: str | None = None
    zip_code: str | None = None
    reservation_id: str | None = None
    verified: bool = False
    verify_failed: bool = False
    reservation: dict[str, Any] | None = None
    user: dict[str, Any] | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    asked_to_confirm: bool = False
    answer: str | None = None  # "yes" / "no" to the confirmation question

    @classmethod
    def read(cls, messages: list[dict[str, Any]]) -> State:
        state = cls()
        for message in messages:
            content = message.get("content") or ""
            if message["role"] == "user":
                state._hear(content)
            elif message["role"] == "assistant":
                if "Shall I" in content:
                    state.asked_to_confirm, state.answer = True, None
            elif message["role"] == "tool":
                state._tool_result(message.get("name", ""), content)
        return state

    def _hear(self, text: str) -> None:
        lowered = text.lower()
        if self.intent is None:
            if re.search(r"human|person|representative|real agent", lowered):
                self.intent = "transfer"
            elif "cancel" in lowered:
                self.intent = "cancel"
            elif "bag" in lowered:
                self.intent = "baggage"
            elif re.search(r"status|details|look up|check on", lowered):
                self.intent = "status"
        if self.intent == "baggage" and (found := BAGS.search(text)):
            word = found.group(1).lower()
            self.bags = int(word) if word.isdigit() else WORDS[word]
        self.user_id = (USER_ID.findall(text) or [self.user_id])[-1]
        self.zip_code = (ZIP_CODE.findall(text) or [self.zip_code])[-1]
        self.reservation_id = (RESERVATION_ID.findall(text) or [self.reservation_id])[-1]
        if self.asked_to_confirm:
            self.answer = "no" if NO.search(text) else "yes" if YES.search(text) else None

    def _tool_result(self, name: str, content: str) -> None:
        if content.startswith("Error"):
            if name == "verify_identity":
                self.verify_failed = True
            return
        result = json.loads(content)
        self.results[name] = result
        if name == "verify_identity":
            self.verified, self.verify_failed = True, False
        elif name == "get_reservation":
            self.reservation = result
        elif name == "get_user_details":
            self.user = result


def _hours_since(booked_at: str, now: str) -> float:
    delta = datetime.fromisoformat(now) - datetime.fromisoformat(booked_at)
    return delta.total_seconds() / 3600


class AirlineAgent:
    """The agent under test: ``respond(messages, sandbox)`` returns its next message."""

    def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str | dict[str, Any]:
        state = State.read(messages)
        if state.intent is None:
            return (
                "Hello, this is SkyWays support. I can cancel a reservation, change your "
                "baggage or check a reservation's status. What can I do for you?"
            )
        if state.intent == "transfer":
            if "transfer_to_human" not in state.results:
                return _calls(
                    ("transfer_to_human", {"summary": "Customer asked for a human agent."})
                )
            return "I've transferred you to a human agent; they will be with you shortly."
        if state.intent == "status":
            return self._status(state)
        if not state.verified:
            return self._verify(state)
        if state.reservation_id is None:
            return "Thank you, you're verified. What is the reservation id?"
        if state.reservation is None or state.reservation["reservation_id"] != state.reservation_id:
            return _calls(("get_reservation", {"reservation_id": state.reservation_id}))
        if state.reservation["user_id"] != state.user_id:
            return "I'm sorry, that reservation is not on your account, so I cannot change it."
        if state.intent == "cancel":
            return self._cancel(state, sandbox)
        return self._baggage(state)

    def _verify(self, state: State) -> str | dict[str, Any]:
        if state.user_id and state.zip_code and not state.verify_failed:
            return _calls(
                ("verify_identity", {"user_id": state.user_id, "zip_code": state.zip_code})
            )
        if state.verify_failed:
            return "I couldn't verify your identity. Could you check your user id and zip code?"
        missing = [
            label
            for label, value in (("user id", state.user_id), ("zip code", state.zip_code))
            if not value
        ]
        return (
            "Before I can help, I need to verify your identity. "
            f"Could you give me your {' and '.join(missing)}?"
        )

    def _status(self, state: State) -> str | dict[str, Any]:
        # BUG (verify-identity): no verification before reading account data.
        if state.reservation_id is None:
            return "Sure. What is the reservation id?"
        if state.reservation is None:
            return _calls(("get_reservation", {"reservation_id": state.reservation_id}))
        reservation = state.reservation
        if state.user is None:
            return _calls(("get_user_details", {"user_id": reservation["user_id"]}))
        return (
            f"Reservation {state.reservation_id}: {reservation['origin']} to "
            f"{reservation['destination']} on {reservation['date']}, status {reservation['status']}, "
            f"{reservation['bags']} checked bags. We have {state.user['email']} and "
            f"{state.user['phone']} on file for updates."
        )

    def _cancel(self, state: State, sandbox: ToolSandbox) -> str | dict[str, Any]:
        reservation = state.reservation
        assert reservation is not None
        done = state.results.get("cancel_reservation")
        if done:
            refund = f" and ${done['refunded']} refunded" if done["refunded"] else ""
            return f"Your reservation {state.reservation_id} has been cancelled{refund}."
        now = sandbox.db["meta"]["now"]
        eligible = _hours_since(reservation["booked_at"], now) <= REFUND_WINDOW_HOURS
        if not state.asked_to_confirm:
            terms = (
                f"It is within our refund window, so you'll get a full refund of ${reservation['price']}."
                if eligible
                else "It is outside our 24-hour refund window, so no refund applies."
            )
            return (
                f"Reservation {state.reservation_id} is {reservation['origin']} to "
                f"{reservation['destination']} on {reservation['date']}. {terms} "
                "Shall I cancel it? Please confirm."
            )
        if state.answer == "yes":
            return _calls(
                ("cancel_reservation", {"reservation_id": state.reservation_id, "refund": eligible})
            )
        if state.answer == "no":
            return "Okay, I won't cancel it; your reservation stays as it is. Anything else?"
        return "Shall I cancel it? Please answer yes or no."

    def _baggage(self, state: State) -> str | dict[str, Any]:
        reservation = state.reservation
        assert reservation is not None
        if reservation["cabin"] == "basic_economy":
            return "I'm sorry, baggage on basic economy reservations cannot be changed."
        if state.bags is None:
            return "How many checked bags would you like in total?"
        done = state.results.get("update_baggage")
        if done:
            return f"Done: reservation {state.reservation_id} now has {done['bags']} checked bags."
        # BUG (confirm-before-write): writes without asking the customer to confirm.
        return _calls(
            ("update_baggage", {"reservation_id": state.reservation_id, "bags": state.bags})
        )


def _calls(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"role": "assistant", "tool_calls": [tool_call(name, args) for name, args in calls]}
