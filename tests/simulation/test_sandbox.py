"""The tool sandbox: schemas from signatures, recorded (never raised) errors, isolated DBs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.tools import ToolDefinitionError
from pytest_agentsim.simulation.tools import make_tool


def update_baggage(
    db: dict[str, Any], reservation_id: str, bags: int, note: str = "", urgent: bool = False
) -> dict[str, Any]:
    """Set the number of checked bags on a reservation.

    Changes nothing else on the reservation.

    Args:
        reservation_id: The reservation to change, like 'ZFA04Y'.
        bags: The new number of checked bags (0-5).
        note: A note for the ground staff.
    """
    if not 0 <= bags <= 5:
        raise ValueError("bags must be between 0 and 5")
    db["reservations"][reservation_id]["bags"] = bags
    return {"reservation_id": reservation_id, "bags": bags}


def cancel(db: dict[str, Any], reservation_id: str, refund: bool) -> str:
    """Cancel a reservation.

    Args:
        reservation_id: The reservation to cancel.
        refund: Whether to refund the price.
    """
    db["reservations"][reservation_id]["status"] = "cancelled"
    db["refunds"].append({"reservation_id": reservation_id, "refund": refund})
    return "cancelled"


def seed() -> dict[str, Any]:
    return {"reservations": {"ZFA04Y": {"bags": 0, "status": "booked"}}, "refunds": []}


# --------------------------------------------------------------------------- schemas


def test_schema_from_signature_and_google_docstring() -> None:
    assert make_tool(update_baggage).schema() == {
        "type": "function",
        "function": {
            "name": "update_baggage",
            "description": "Set the number of checked bags on a reservation.\n\n"
            "Changes nothing else on the reservation.",
            "parameters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "reservation_id": {
                        "type": "string",
                        "description": "The reservation to change, like 'ZFA04Y'.",
                    },
                    "bags": {
                        "type": "integer",
                        "description": "The new number of checked bags (0-5).",
                    },
                    "note": {
                        "type": "string",
                        "default": "",
                        "description": "A note for the ground staff.",
                    },
                    # Not in the docstring: no description, still in the schema.
                    "urgent": {"type": "boolean", "default": False},
                },
                "required": ["reservation_id", "bags"],
            },
        },
    }


def test_the_db_parameter_is_not_offered_to_the_model() -> None:
    sandbox = ToolSandbox([update_baggage, cancel])
    names = [schema["function"]["name"] for schema in sandbox.schemas]
    assert names == ["update_baggage", "cancel"]
    for schema in sandbox.schemas:
        assert "db" not in schema["function"]["parameters"]["properties"]
    # The schemas are plain JSON, as a model API receives them.
    assert json.loads(json.dumps(sandbox.schemas)) == sandbox.schemas


def test_make_tool_rejects_a_parameter_without_type_hint() -> None:
    def lookup(db, reservation_id):  # type: ignore[no-untyped-def]
        return db

    with pytest.raises(ToolDefinitionError) as info:
        make_tool(lookup)
    message = str(info.value)
    assert message.endswith(
        "tool 'lookup': parameter 'reservation_id' needs a type hint "
        "(or give its schema: pytest_agentsim.tool(f, schema=...))"
    )
    # It names where the function is defined.
    assert message.startswith(f"{__file__}:")


@pytest.mark.parametrize("star", ["args", "kwargs"])
def test_make_tool_rejects_star_parameters(star: str) -> None:
    def with_args(db: dict[str, Any], *args: str) -> None:
        pass

    def with_kwargs(db: dict[str, Any], **kwargs: str) -> None:
        pass

    function = with_args if star == "args" else with_kwargs
    with pytest.raises(ToolDefinitionError, match=r"\*args/\*\*kwargs cannot be described"):
        make_tool(function)


def test_make_tool_needs_a_database_parameter() -> None:
    def no_db(*, reservation_id: str) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match="the first parameter must take the database"):
        make_tool(no_db)


def test_sandbox_rejects_non_functions_and_duplicate_names() -> None:
    with pytest.raises(ToolDefinitionError, match="'cancel' is not a tool"):
        ToolSandbox(["cancel"])
    with pytest.raises(ToolDefinitionError, match="two tools are named 'cancel'"):
        ToolSandbox([cancel, make_tool(cancel)])


# --------------------------------------------------------------------------- calls


def test_a_valid_call_runs_over_the_sandbox_db_and_is_recorded() -> None:
    sandbox = ToolSandbox([update_baggage], seed())
    call = sandbox.call(
        "update_baggage", {"reservation_id": "ZFA04Y", "bags": 2}, turn=4, call_id="c1"
    )
    assert (call.id, call.name, call.turn, call.ok) == ("c1", "update_baggage", 4, True)
    assert call.result == {"reservation_id": "ZFA04Y", "bags": 2}
    assert call.result_text() == '{"bags": 2, "reservation_id": "ZFA04Y"}'
    assert sandbox.db["reservations"]["ZFA04Y"]["bags"] == 2
    assert sandbox.calls == [call]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"bags": 1}, "invalid arguments: reservation_id: Field required"),
        (
            {"reservation_id": "ZFA04Y", "bags": "many"},
            "invalid arguments: bags: Input should be a valid integer, unable to parse string "
            "as an integer",
        ),
        (
            {"reservation_id": "ZFA04Y", "bags": 1, "colour": "red"},
            "invalid arguments: colour: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_arguments_are_recorded_not_raised(arguments: dict[str, Any], error: str) -> None:
    sandbox = ToolSandbox([update_baggage], seed())
    call = sandbox.call("update_baggage", arguments)
    assert call.error == error
    assert call.result is None
    assert call.result_text() == f"Error: {error}"
    assert call.arguments == arguments
    assert sandbox.db == seed()  # the tool did not run
    assert sandbox.calls == [call]


def test_unknown_tool_lists_the_available_ones() -> None:
    sandbox = ToolSandbox([update_baggage, cancel], seed())
    call = sandbox.call("refund", {"reservation_id": "ZFA04Y"})
    assert call.error == "unknown tool 'refund'; available: update_baggage, cancel"
    assert call.name == "refund"
    assert sandbox.calls == [call]


def test_invalid_json_argument_string() -> None:
    sandbox = ToolSandbox([update_baggage], seed())
    call = sandbox.call("update_baggage", '{"reservation_id": "ZFA04Y", bags: 2}')
    assert (
        call.error
        == "arguments are not valid JSON: Expecting property name enclosed in double quotes"
    )
    assert sandbox.db == seed()


def test_json_argument_that_is_not_an_object() -> None:
    call = ToolSandbox([update_baggage], seed()).call("update_baggage", '["ZFA04Y", 2]')
    assert call.error == "arguments must be a JSON object, got list"


def test_json_string_arguments_are_decoded() -> None:
    sandbox = ToolSandbox([update_baggage], seed())
    call = sandbox.call("update_baggage", '{"reservation_id": "ZFA04Y", "bags": 3}')
    assert call.ok and call.arguments == {"reservation_id": "ZFA04Y", "bags": 3}
    assert sandbox.db["reservations"]["ZFA04Y"]["bags"] == 3


def test_recorded_arguments_are_what_the_tool_received() -> None:
    # Models sometimes send "true" or "2"; the tool gets True and 2, and rule checks on the
    # recorded call (must_not_call ... args: {refund: true}) must see the same.
    sandbox = ToolSandbox([cancel], seed())
    call = sandbox.call("cancel", '{"reservation_id": "ZFA04Y", "refund": "true"}')
    assert call.ok
    assert call.arguments == {"reservation_id": "ZFA04Y", "refund": True}
    assert sandbox.db["refunds"] == [{"reservation_id": "ZFA04Y", "refund": True}]


def test_a_raising_tool_becomes_an_error_answer() -> None:
    sandbox = ToolSandbox([update_baggage], seed())
    call = sandbox.call("update_baggage", {"reservation_id": "ZFA04Y", "bags": 9})
    assert call.error == "ValueError: bags must be between 0 and 5"
    assert not call.ok
    assert call.result_text() == "Error: ValueError: bags must be between 0 and 5"
    missing = sandbox.call("update_baggage", {"reservation_id": "NOPE", "bags": 1})
    assert missing.error == "KeyError: 'NOPE'"
    assert len(sandbox.calls) == 2


def test_a_result_that_is_not_json_is_an_error_not_a_crash() -> None:
    def odd(db: dict[str, Any]) -> Any:
        """Return something JSON cannot encode."""
        return {(1, 2): "tuple key"}

    call = ToolSandbox([odd]).call("odd", {})
    assert call.error is not None
    assert call.error.startswith("the tool's result is not JSON-serializable: ")


class Noon:
    def __str__(self) -> str:
        return "noon"


def test_results_are_made_json_safe() -> None:
    def stamp(db: dict[str, Any]) -> Any:
        """Return a value JSON has no type for."""
        return {"when": Noon(), "slots": (1, 2)}

    call = ToolSandbox([stamp]).call("stamp", None)
    assert call.result == {"when": "noon", "slots": [1, 2]}


def test_call_ids_default_to_their_position() -> None:
    sandbox = ToolSandbox([update_baggage], seed())
    first = sandbox.call("update_baggage", {"reservation_id": "ZFA04Y", "bags": 1})
    second = sandbox.call("nope")
    assert (first.id, second.id) == ("call_1", "call_2")


# --------------------------------------------------------------------------- isolation


def test_each_sandbox_works_on_its_own_copy() -> None:
    initial = seed()
    first = ToolSandbox([update_baggage], initial)
    second = ToolSandbox([update_baggage], initial)
    first.call("update_baggage", {"reservation_id": "ZFA04Y", "bags": 4})
    assert first.db["reservations"]["ZFA04Y"]["bags"] == 4
    assert initial == seed()
    assert second.db == seed()
    assert first.initial_db == seed()
    # Every way a tool can reach a nested value hands out the sandbox's own copy.
    db = second.db
    db["reservations"].get("ZFA04Y")["status"] = "x"
    next(iter(db["reservations"].values()))["bags"] = 9
    for _, reservation in db["reservations"].items():
        reservation["extra"] = [1]
    db["reservations"]["ZFA04Y"]["extra"][0] = 2
    db["refunds"].append("r1")
    db.setdefault("payments", []).append({"n": 1})
    assert initial == seed()
    assert second.diff() == {
        "dictionary_item_added": {
            "root['payments']": [{"n": 1}],
            "root['reservations']['ZFA04Y']['extra']": [2],
        },
        "values_changed": {
            "root['reservations']['ZFA04Y']['bags']": {"new_value": 9, "old_value": 0},
            "root['reservations']['ZFA04Y']['status']": {"new_value": "x", "old_value": "booked"},
        },
        "iterable_item_added": {"root['refunds'][0]": "r1"},
    }
    db["reservations"].pop("ZFA04Y")
    assert initial == seed()


def test_fresh_starts_over_from_the_initial_db_with_the_same_tools() -> None:
    sandbox = ToolSandbox([update_baggage, cancel], seed())
    sandbox.call("cancel", {"reservation_id": "ZFA04Y", "refund": True})
    again = sandbox.fresh()
    assert again.db == seed()
    assert again.calls == []
    assert list(again.tools) == ["update_baggage", "cancel"]
    again.call("update_baggage", {"reservation_id": "ZFA04Y", "bags": 1})
    assert sandbox.db["reservations"]["ZFA04Y"] == {"bags": 0, "status": "cancelled"}
    other = sandbox.fresh({"reservations": {"X": {"bags": 5, "status": "booked"}}})
    assert other.db == {"reservations": {"X": {"bags": 5, "status": "booked"}}}


def test_diff_reports_a_changed_value() -> None:
    sandbox = ToolSandbox([update_baggage], seed())
    assert sandbox.diff() == {}
    sandbox.call("update_baggage", {"reservation_id": "ZFA04Y", "bags": 2})
    assert sandbox.diff() == {
        "values_changed": {
            "root['reservations']['ZFA04Y']['bags']": {"new_value": 2, "old_value": 0}
        }
    }
