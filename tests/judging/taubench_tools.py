"""The tau-bench-style airline domain of tests/judging/taubench/: its tools, written as
tau-bench writes them (a class per tool, a static ``invoke`` and a ``get_info()`` schema)
and given to the sandbox without wrappers, and an agent that replays a list of actions.

A trajectory is a task's ground-truth actions and final words (trajectories.yaml), or a
labelled mutation of them. test_final_state.py imports this module; its plugin run copies
it beside the product's conftest.py, so it imports nothing from the tests.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pytest_agentsim import tool_call

DATA = Path(__file__).resolve().parent / "taubench"

Action = dict[str, Any]


def _schema(name: str, description: str, **properties: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool schema, as tau-bench's ``get_info()`` returns them."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
        },
    }


class GetUser:
    @staticmethod
    def invoke(data: dict[str, Any], user_id: str) -> dict[str, Any]:
        user: dict[str, Any] = data["users"][user_id]
        return user

    @staticmethod
    def get_info() -> dict[str, Any]:
        return _schema(
            "get_user",
            "Get a user's details: name, payment methods and reservations.",
            user_id={"type": "string", "description": "The user's id, such as 'mia_li_3668'."},
        )


class GetReservation:
    @staticmethod
    def invoke(data: dict[str, Any], reservation_id: str) -> dict[str, Any]:
        reservation: dict[str, Any] = data["reservations"][reservation_id]
        return reservation

    @staticmethod
    def get_info() -> dict[str, Any]:
        return _schema(
            "get_reservation",
            "Get a reservation's details.",
            reservation_id={"type": "string", "description": "The reservation's id, such as 'R1'."},
        )


def _pay(db: dict[str, Any], reservation: dict[str, Any], payment_id: str, amount: int) -> None:
    method = db["users"][reservation["user_id"]]["payment_methods"].get(payment_id)
    if method is None:
        raise ValueError(f"payment method {payment_id} is not the user's")
    if method["source"] == "gift_card":
        if method["amount"] < amount:
            raise ValueError(f"gift card {payment_id} holds only {method['amount']}")
        method["amount"] -= amount
    reservation["payment_history"].append({"payment_id": payment_id, "amount": amount})


class UpdateReservationFlights:
    @staticmethod
    def invoke(
        data: dict[str, Any], reservation_id: str, flights: list[dict[str, str]], payment_id: str
    ) -> dict[str, Any]:
        reservation: dict[str, Any] = data["reservations"][reservation_id]
        if reservation["status"] != "active":
            raise ValueError(f"reservation {reservation_id} is {reservation['status']}")
        new = []
        for flight in flights:
            prices = data["flights"][flight["flight_number"]]["prices"].get(flight["date"])
            if prices is None:
                raise ValueError(f"{flight['flight_number']} does not fly on {flight['date']}")
            new.append({**flight, "price": prices[reservation["cabin"]]})
        old = sum(f["price"] for f in reservation["flights"])
        difference = sum(f["price"] for f in new) - old
        if difference:
            _pay(data, reservation, payment_id, difference)
        reservation["flights"] = new
        return reservation

    @staticmethod
    def get_info() -> dict[str, Any]:
        return _schema(
            "update_reservation_flights",
            "Change a reservation's flights; the fare difference is paid with a payment method.",
            reservation_id={"type": "string", "description": "The reservation's id."},
            flights={
                "type": "array",
                "description": "Every flight of the new itinerary.",
                "items": {
                    "type": "object",
                    "properties": {
                        "flight_number": {"type": "string"},
                        "date": {"type": "string"},
                    },
                    "required": ["flight_number", "date"],
                },
            },
            payment_id={
                "type": "string",
                "description": "The payment method that pays (or is refunded) the difference.",
            },
        )


class CancelReservation:
    @staticmethod
    def invoke(data: dict[str, Any], reservation_id: str) -> dict[str, Any]:
        reservation: dict[str, Any] = data["reservations"][reservation_id]
        if reservation["status"] == "cancelled":
            raise ValueError(f"reservation {reservation_id} is already cancelled")
        methods = data["users"][reservation["user_id"]]["payment_methods"]
        for payment in list(reservation["payment_history"]):
            reservation["payment_history"].append({**payment, "amount": -payment["amount"]})
            if methods[payment["payment_id"]]["source"] == "gift_card":
                methods[payment["payment_id"]]["amount"] += payment["amount"]
        reservation["status"] = "cancelled"
        return reservation

    @staticmethod
    def get_info() -> dict[str, Any]:
        return _schema(
            "cancel_reservation",
            "Cancel a reservation; every payment is refunded to where it came from.",
            reservation_id={"type": "string", "description": "The reservation's id."},
        )


class SendCertificate:
    @staticmethod
    def invoke(data: dict[str, Any], user_id: str, amount: int) -> str:
        methods = data["users"][user_id]["payment_methods"]
        number = 1 + sum(1 for method in methods.values() if method["source"] == "certificate")
        methods[f"certificate_{number}"] = {"source": "certificate", "amount": amount}
        return f"certificate_{number} of ${amount} sent"

    @staticmethod
    def get_info() -> dict[str, Any]:
        return _schema(
            "send_certificate",
            "Send the user a travel certificate; certificates are numbered in the order sent.",
            user_id={"type": "string", "description": "The user's id."},
            amount={"type": "integer", "description": "The certificate's value in dollars."},
        )


#: tau-bench's shape: one class per tool, given to the sandbox as they are.
TOOLS: list[type] = [
    GetUser,
    GetReservation,
    UpdateReservationFlights,
    CancelReservation,
    SendCertificate,
]


def trajectories() -> dict[str, Any]:
    """Task id -> its ground truth (actions, say) and labelled mutations."""
    loaded: dict[str, Any] = yaml.safe_load((DATA / "trajectories.yaml").read_text("utf-8"))
    return loaded


def mutate(truth: Mapping[str, Any], mutation: Mapping[str, Any]) -> tuple[list[Action], str]:
    """The actions and final words of ``truth`` edited as ``mutation`` says (``{}``: none)."""
    actions: list[Action] = copy.deepcopy(list(truth["actions"]))
    if "drop" in mutation:
        del actions[mutation["drop"]]
    if "set" in mutation:
        actions[mutation["set"]["index"]]["kwargs"].update(mutation["set"]["kwargs"])
    if "insert" in mutation:
        actions.insert(mutation["insert"]["at"], mutation["insert"]["action"])
    if "swap" in mutation:
        first, second = mutation["swap"]
        actions[first], actions[second] = actions[second], actions[first]
    return actions, str(mutation.get("say", truth["say"]))


def trajectory(task: str, mutation: str | None = None) -> tuple[list[Action], str]:
    """The ground truth of ``task``, or one of its mutations by name."""
    truth = trajectories()[task]
    return mutate(truth, truth["mutations"][mutation] if mutation else {})


class ReplayAgent:
    """Performs the listed actions one tool call at a time, then says its final words."""

    def __init__(self, actions: Sequence[Action], say: str) -> None:
        self.actions = list(actions)
        self.say = say

    def respond(self, messages: list[dict[str, Any]], sandbox: object) -> Any:
        done = sum(1 for message in messages if message["role"] == "tool")
        if done < len(self.actions):
            action = self.actions[done]
            return {
                "role": "assistant",
                "tool_calls": [tool_call(action["name"], action["kwargs"])],
            }
        return self.say
