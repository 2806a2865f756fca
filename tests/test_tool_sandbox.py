"""The tool sandbox: schemas from signatures, validation, isolation, errors as answers."""

from __future__ import annotations

from typing import Any
from typing import Literal

import pytest

from pytest_agentsim.sandbox import ToolDefinitionError
from pytest_agentsim.sandbox import ToolSandbox
from pytest_agentsim.sandbox import make_tool


def refund(
    db: dict[str, Any], order_id: str, amount: float, reason: Literal["late", "broken"] = "late"
) -> dict[str, Any]:
    """Refund an order.

    Money goes back to the original payment method.

    Args:
        order_id: The order to refund, like 'o-1'.
        amount: How much to refund, in dollars.
        reason: Why the refund is given.
    """
    order = db["orders"][order_id]
    if amount > order["total"]:
        raise ValueError(f"cannot refund {amount}, the order total is {order['total']}")
    order["refunded"] = amount
    return {"order_id": order_id, "refunded": amount}


DB = {"orders": {"o-1": {"total": 30.0, "refunded": 0}}}


def test_schema_is_derived_from_signature_and_docstring() -> None:
    schema = ToolSandbox([refund]).schemas[0]
    assert schema == {
        "type": "function",
        "function": {
            "name": "refund",
            "description": "Refund an order.\n\nMoney goes back to the original payment method.",
            "parameters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "order_id": {
                        "type": "string",
                        "description": "The order to refund, like 'o-1'.",
                    },
                    "amount": {"type": "number", "description": "How much to refund, in dollars."},
                    "reason": {
                        "type": "string",
                        "enum": ["late", "broken"],
                        "default": "late",
                        "description": "Why the refund is given.",
                    },
                },
                "required": ["order_id", "amount"],
            },
        },
    }


def test_a_successful_call_is_recorded_and_changes_only_the_sandbox_db() -> None:
    sandbox = ToolSandbox([refund], DB)
    call = sandbox.call("refund", {"order_id": "o-1", "amount": 10}, turn=3, call_id="c9")
    assert (call.id, call.turn, call.error, call.result) == (
        "c9",
        3,
        None,
        {"order_id": "o-1", "refunded": 10.0},
    )
    assert sandbox.db["orders"]["o-1"]["refunded"] == 10
    assert DB["orders"]["o-1"]["refunded"] == 0
    assert sandbox.initial_db["orders"]["o-1"]["refunded"] == 0
    assert sandbox.calls == [call]
    assert sandbox.diff() == {
        "values_changed": {"root['orders']['o-1']['refunded']": {"new_value": 10.0, "old_value": 0}}
    }


def test_each_sandbox_starts_from_a_fresh_copy() -> None:
    first = ToolSandbox([refund], DB)
    first.call("refund", {"order_id": "o-1", "amount": 5})
    second = first.fresh()
    assert second.db["orders"]["o-1"]["refunded"] == 0
    assert second.calls == []
    assert ToolSandbox([refund], DB).db == DB


def test_a_raising_tool_becomes_an_error_answer_not_a_crash() -> None:
    call = ToolSandbox([refund], DB).call("refund", {"order_id": "o-1", "amount": 99})
    assert call.error == "ValueError: cannot refund 99.0, the order total is 30.0"
    assert call.result_text() == "Error: ValueError: cannot refund 99.0, the order total is 30.0"
    assert not call.ok


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"order_id": "o-1"}, "invalid arguments: amount: Field required"),
        (
            {"order_id": "o-1", "amount": "lots"},
            "invalid arguments: amount: Input should be a valid number",
        ),
        (
            {"order_id": "o-1", "amount": 1, "reason": "bored"},
            "invalid arguments: reason: Input should be 'late' or 'broken'",
        ),
        (
            {"order_id": "o-1", "amount": 1, "coupon": "X"},
            "invalid arguments: coupon: Extra inputs are not permitted",
        ),
        (
            "{not json",
            "arguments are not valid JSON: Expecting property name enclosed in double quotes",
        ),
        ("[1, 2]", "arguments must be a JSON object, got list"),
    ],
)
def test_invalid_arguments_are_recorded_and_the_tool_does_not_run(
    arguments: Any, error: str
) -> None:
    sandbox = ToolSandbox([refund], DB)
    call = sandbox.call("refund", arguments)
    assert call.error is not None and call.error.startswith(error)
    assert sandbox.db == DB


def test_json_string_arguments_as_models_send_them() -> None:
    call = ToolSandbox([refund], DB).call("refund", '{"order_id": "o-1", "amount": 2.5}')
    assert call.arguments == {"order_id": "o-1", "amount": 2.5}
    assert call.result == {"order_id": "o-1", "refunded": 2.5}


def test_unknown_tool() -> None:
    call = ToolSandbox([refund], DB).call("delete_everything", {})
    assert call.error == "unknown tool 'delete_everything'; available: refund"


def test_tools_need_type_hints_and_no_varargs() -> None:
    def untyped(db, order_id):  # type: ignore[no-untyped-def]
        return order_id

    def varargs(db: dict[str, Any], *ids: str) -> None:
        return None

    here = f"{__file__}:"
    with pytest.raises(ToolDefinitionError) as info:
        make_tool(untyped)
    assert str(info.value).startswith(here)
    assert str(info.value).endswith(": tool 'untyped': parameter 'order_id' needs a type hint")
    with pytest.raises(
        ToolDefinitionError, match=r"tool 'varargs': \*args/\*\*kwargs cannot be described"
    ):
        make_tool(varargs)
    with pytest.raises(ToolDefinitionError, match="'refund' is not a tool: give functions"):
        ToolSandbox(["refund"])


def test_two_tools_with_one_name_are_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="two tools are named 'refund'"):
        ToolSandbox([refund, refund])
