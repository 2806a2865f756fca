"""Tools as users have them: tau-bench classes, invoke/__call__ objects, bound methods,
given schemas and names, and the one line that says why a tool cannot be used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.simulation.declarations import tool
from pytest_agentsim.simulation.declarations import tools_from_schemas
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.tools import ToolDefinitionError
from pytest_agentsim.simulation.tools import args_problem
from pytest_agentsim.simulation.tools import make_tool


def cancel(db: dict[str, Any], reservation_id: str, refund: bool) -> str:
    """Cancel a reservation."""
    db["reservations"][reservation_id]["status"] = "cancelled"
    return "cancelled"


def seed() -> dict[str, Any]:
    return {"reservations": {"ZFA04Y": {"bags": 0, "status": "booked"}}, "refunds": []}


# ------------------------------------------------------------- tools as users have them


class GetReservation:
    """tau-bench's shape: a class per tool, a static invoke and an OpenAI schema."""

    @staticmethod
    def invoke(data: dict[str, Any], reservation_id: str) -> str:
        return json.dumps(data["reservations"][reservation_id])

    @staticmethod
    def get_info() -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": "get_reservation_details",
                "description": "Get the details of a reservation.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "reservation_id": {"type": "string", "description": "Like 'ZFA04Y'."}
                    },
                    "required": ["reservation_id"],
                },
            },
        }


class SetBags:
    """Set the number of checked bags."""

    def invoke(self, db: dict[str, Any], reservation_id: str, bags: int) -> str:
        db["reservations"][reservation_id]["bags"] = bags
        return "ok"


class CountBags:
    """Count the checked bags of a reservation."""

    def __call__(self, db: dict[str, Any], reservation_id: str) -> int:
        return int(db["reservations"][reservation_id]["bags"])


class Desk:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def status(self, db: dict[str, Any], reservation_id: str) -> str:
        """The reservation's status."""
        return self.prefix + str(db["reservations"][reservation_id]["status"])


def free_form(db: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return dict(kwargs)


FREE_FORM_SCHEMA = {
    "type": "function",
    "function": {
        "name": "echo",
        "description": "Echo the arguments.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}, "times": {"type": "integer"}},
            "required": ["text"],
            "additionalProperties": False,
        },
    },
}


def test_a_tau_bench_class_is_a_tool_named_and_described_by_its_get_info() -> None:
    sandbox = ToolSandbox([GetReservation], seed())
    assert sandbox.schemas == [GetReservation.get_info()]
    record = sandbox.call("get_reservation_details", {"reservation_id": "ZFA04Y"})
    assert (record.error, record.result) == (None, '{"bags": 0, "status": "booked"}')
    missing = sandbox.call("get_reservation_details", {})
    assert missing.error == "invalid arguments: arguments: 'reservation_id' is a required property"
    wrong = sandbox.call("get_reservation_details", {"reservation_id": 7})
    assert wrong.error == "invalid arguments: reservation_id: 7 is not of type 'string'"


def test_objects_with_invoke_or_call_and_bound_methods_are_tools() -> None:
    sandbox = ToolSandbox([SetBags(), CountBags(), Desk("now ").status], seed())
    assert list(sandbox.tools) == ["set_bags", "count_bags", "status"]
    descriptions = [schema["function"]["description"] for schema in sandbox.schemas]
    assert descriptions == [
        "Set the number of checked bags.",
        "Count the checked bags of a reservation.",
        "The reservation's status.",
    ]
    # derived schemas still validate and convert: "2" is the int 2
    assert sandbox.call("set_bags", {"reservation_id": "ZFA04Y", "bags": "2"}).error is None
    assert sandbox.db["reservations"]["ZFA04Y"]["bags"] == 2
    assert sandbox.call("count_bags", {"reservation_id": "ZFA04Y"}).result == 2
    assert sandbox.call("status", {"reservation_id": "ZFA04Y"}).result == "now booked"


def test_a_kwargs_tool_with_a_schema_is_offered_and_validated_by_it() -> None:
    sandbox = ToolSandbox([tool(free_form, schema=FREE_FORM_SCHEMA)])
    assert sandbox.schemas == [FREE_FORM_SCHEMA]
    assert sandbox.call("echo", {"text": "hi", "times": 2}).result == {"text": "hi", "times": 2}
    assert sandbox.call("echo", {"text": "hi", "loud": True}).error == (
        "invalid arguments: arguments: Additional properties are not allowed ('loud' was unexpected)"
    )


def test_name_and_schema_overrides() -> None:
    renamed = ToolSandbox([tool(cancel, name="cancel_reservation")])
    assert list(renamed.tools) == ["cancel_reservation"]
    assert (
        renamed.schemas[0]["function"]["parameters"]
        == make_tool(cancel).schema()["function"]["parameters"]
    )
    parameters = {
        "type": "object",
        "properties": {"reservation_id": {"type": "string"}},
        "required": ["reservation_id"],
    }
    bare = ToolSandbox([tool(GetReservation, name="lookup", schema=parameters)], seed())
    assert bare.schemas == [
        {
            "type": "function",
            "function": {"name": "lookup", "description": "", "parameters": parameters},
        }
    ]


def test_tools_from_an_openai_schema_list() -> None:
    schemas = [FREE_FORM_SCHEMA, GetReservation.get_info()]
    by_name = tools_from_schemas(
        schemas, {"echo": free_form, "get_reservation_details": GetReservation.invoke}
    )
    assert ToolSandbox(by_name).schemas == schemas
    by_list = tools_from_schemas([GetReservation.get_info()], [GetReservation])
    with pytest.raises(TypeError, match=r"schemas\[0\] names 'echo', which no function implements"):
        tools_from_schemas([FREE_FORM_SCHEMA], [cancel])
    with pytest.raises(TypeError, match="no schema for cancel"):
        tools_from_schemas([], [cancel])
    # the class's own get_info is used unless a schema is given; here they agree
    assert ToolSandbox(by_list).schemas == [GetReservation.get_info()]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            free_form,
            r"tools\[0\]: .*tool 'free_form': \*args/\*\*kwargs cannot be described to a "
            r"model \(give its schema: pytest_agentsim.tool\(f, schema=...\)\)",
        ),
        (
            42,
            r"tools\[0\]: 42 is not a tool: expected a function f\(db, \*\*kwargs\), a bound "
            r"method, an object with invoke\(db, ...\) or __call__\(db, ...\), a class with a "
            r"static invoke\(db, ...\), or pytest_agentsim.tool\(f, name=..., schema=...\)",
        ),
        (SetBags, r"tools\[0\]: .*tool class SetBags: its invoke must be a @staticmethod"),
        (
            tool(free_form, schema={"type": "array"}),
            r"tools\[0\]: .*tool 'free_form': the "
            r"schema has neither parameters nor properties",
        ),
        (
            tool(GetReservation, schema={"properties": {"id": {"type": "string"}}}),
            r"tools\[0\]: .*tool 'get_reservation_details': its schema has argument 'id', which the "
            r"function does not take \(it takes: reservation_id\)",
        ),
        (
            tool(GetReservation, schema={"properties": {"reservation_id": {"type": "string"}}}),
            r"tools\[0\]: .*the function needs argument 'reservation_id', which its schema does "
            r"not list as required",
        ),
        (
            tool(free_form, schema={"properties": {"x": {"type": "nonsense"}}}),
            r"tools\[0\]: .*the schema's parameters are not a valid JSON schema",
        ),
        (
            tool(cancel, name="cancel reservation"),
            r"tools\[0\]: .*tool 'cancel reservation': "
            r"a tool name must be 1-64 letters, digits, _ or -",
        ),
    ],
)
def test_a_tool_that_cannot_be_used_says_which_and_what_was_expected(
    item: object, message: str
) -> None:
    with pytest.raises(ToolDefinitionError, match=message) as info:
        ToolSandbox([item])
    assert "\n" not in str(info.value)


def test_check_args_are_checked_against_a_given_schema() -> None:
    tools = ToolSandbox([tool(free_form, schema=FREE_FORM_SCHEMA)]).tools
    assert args_problem({"tool": "echo", "args": {"text": "hi"}}, tools) is None
    assert args_problem({"tool": "echo", "args": {"loud": True}}, tools) == (
        "args names 'loud', which echo does not take (its arguments: text, times), so the "
        "check can never match"
    )
    assert args_problem({"tool": "echo", "args": {"times": "2"}}, tools) == (
        "args.times is \"2\", which echo's argument 'times' (integer) never is, so the check "
        "can never match"
    )


def test_the_readme_quickstart_tools_work_as_written() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = next(
        part.split("\n```", 1)[0]
        for part in readme.split("```python\n")[1:]
        if part.startswith("# my_product/tools.py")
    )
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    sandbox = ToolSandbox(namespace["TOOLS"], {"users": {"u1": {"city": "Oslo"}}})
    assert list(sandbox.tools) == ["get_user_details", "update_address"]
    assert sandbox.call("update_address", {"user_id": "u1", "city": "Bergen"}).error is None
    assert sandbox.call("get_user_details", {"user_id": "u1"}).result == '{"city": "Bergen"}'
