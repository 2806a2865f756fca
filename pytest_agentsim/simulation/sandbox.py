"""The tool sandbox: the agent's tools run over a private copy of the event's database.

Tools are plain typed Python functions whose first parameter is the database (a dict)
and whose other parameters are keyword arguments. Their JSON schemas are derived from the
signature and docstring with pydantic, arguments are validated before a tool runs, and
every call is recorded with its result or error. A tool that raises never crashes the
run: the agent gets the error back as the tool's answer, as a real API would return it.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import get_type_hints

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import TypeAdapter
from pydantic import ValidationError
from pydantic import create_model

from pytest_agentsim.core.dbstate import cow
from pytest_agentsim.core.dbstate import pretty_report
from pytest_agentsim.core.dbstate import state_report
from pytest_agentsim.core.dbstate import touched
from pytest_agentsim.core.models import ToolCall

ToolFunction = Callable[..., Any]


class _ArgsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Tool:
    """A tool function with the pydantic model of its arguments."""

    name: str
    description: str
    function: ToolFunction
    arguments: type[BaseModel]

    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` format."""
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        for prop in parameters.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }


class ToolDefinitionError(TypeError):
    """A tool function that cannot be described to a model; names the function's source."""


def _where(function: ToolFunction) -> str:
    try:
        return f"{inspect.getsourcefile(function)}:{inspect.getsourcelines(function)[1]}: "
    except (OSError, TypeError):
        return ""


@functools.cache
def make_tool(function: ToolFunction, name: str | None = None) -> Tool:
    """Derive a Tool from a function ``f(db, *, arg: type = default, ...)``.

    The first parameter receives the database and is not part of the schema. Every other
    parameter needs a type hint; descriptions come from the docstring (Google, reST or
    numpydoc style, parsed by docstring_parser). Derived once per function.
    """
    import docstring_parser

    tool_name = name or function.__name__
    signature = inspect.signature(function)
    params = list(signature.parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise ToolDefinitionError(
            f"{_where(function)}tool {tool_name!r}: the first parameter must take the database"
        )
    docs = docstring_parser.parse(inspect.getdoc(function) or "")
    param_docs = {param.arg_name: param.description for param in docs.params}
    hints = get_type_hints(function)
    fields: dict[str, Any] = {}
    for param in params[1:]:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"{_where(function)}tool {tool_name!r}: *args/**kwargs cannot be described to a model"
            )
        if param.name not in hints:
            raise ToolDefinitionError(
                f"{_where(function)}tool {tool_name!r}: parameter {param.name!r} needs a type hint"
            )
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (
            hints[param.name],
            Field(default=default, description=param_docs.get(param.name)),
        )
    arguments = create_model(f"{tool_name}_arguments", __base__=_ArgsBase, **fields)
    description = "\n\n".join(
        part for part in (docs.short_description, docs.long_description) if part
    )
    return Tool(tool_name, description, function, arguments)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def args_problem(check: Mapping[str, Any], tools: Mapping[str, Tool]) -> str | None:
    """Why a rule check's ``args`` can never match a call of its ``tool``, if they cannot.

    A call is recorded with the arguments as the tool received them (validated, then
    JSON), so an argument the tool does not take never appears, and a value is matched
    only if validating it as the argument's type gives it back unchanged (``null`` for a
    ``bool``, ``"true"`` for a ``bool`` or ``"3"`` for an ``int`` never do).
    """
    tool = tools.get(str(check.get("tool")))
    args = check.get("args")
    if tool is None or not isinstance(args, Mapping):
        return None
    fields = tool.arguments.model_fields
    for name, value in args.items():
        field = fields.get(str(name))
        if field is None:
            return (
                f"args names {name!r}, which {tool.name} does not take (its arguments: "
                f"{', '.join(fields) or 'none'}), so the check can never match"
            )
        adapter: TypeAdapter[Any] = TypeAdapter(field.annotation or Any)
        try:
            matches = adapter.dump_python(adapter.validate_python(value), mode="json") == value
        except ValidationError:
            matches = False
        if not matches:
            return (
                f"args.{name} is {json.dumps(value, default=str)}, which {tool.name}'s "
                f"argument {name!r} "
                f"({_type_name(field.annotation)}) never is, so the check can never match"
            )
    return None


def _validation_summary(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class ToolSandbox:
    """Runs tools for one conversation over a fresh deep copy of the starting database."""

    def __init__(
        self, tools: Iterable[ToolFunction | Tool], db: Mapping[str, Any] | None = None
    ) -> None:
        self.tools: dict[str, Tool] = {}
        for item in tools:
            if (
                not isinstance(item, Tool)
                and not inspect.isfunction(item)
                and not inspect.ismethod(item)
            ):
                raise ToolDefinitionError(f"{item!r} is not a tool: give functions f(db, **kwargs)")
            tool = item if isinstance(item, Tool) else make_tool(item)
            if tool.name in self.tools:
                raise ToolDefinitionError(f"two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        # Shared, never changed: the tools work on a copy-on-access view of it, so an
        # event's start costs what its tools touch, not the size of the database.
        self.initial_db: dict[str, Any] = dict(db or {})
        self.db: dict[str, Any] = cow(self.initial_db)
        self.calls: list[ToolCall] = []

    def fresh(self, db: Mapping[str, Any] | None = None) -> ToolSandbox:
        """A new sandbox with the same tools and a fresh copy of ``db`` (or of this start)."""
        return ToolSandbox(self.tools.values(), self.initial_db if db is None else db)

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """All tools in OpenAI's ``tools`` format, for an agent to offer a model."""
        return [tool.schema() for tool in self.tools.values()]

    def call(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        turn: int = -1,
        call_id: str | None = None,
    ) -> ToolCall:
        """Run a tool and record the call; errors become the call's ``error``, never raise."""
        call_id = call_id or f"call_{len(self.calls) + 1}"
        record = ToolCall(id=call_id, name=name, turn=turn)
        self.calls.append(record)
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                record.error = f"arguments are not valid JSON: {exc.msg}"
                return record
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            record.error = f"arguments must be a JSON object, got {type(arguments).__name__}"
            return record
        record.arguments = dict(arguments)
        tool = self.tools.get(name)
        if tool is None:
            record.error = f"unknown tool {name!r}; available: {', '.join(self.tools)}"
            return record
        try:
            validated = tool.arguments.model_validate(dict(arguments))
        except ValidationError as exc:
            record.error = f"invalid arguments: {_validation_summary(exc)}"
            return record
        # Record what the tool receives ("true" -> true), so rule checks see what ran.
        record.arguments.update(validated.model_dump(mode="json", exclude_unset=True))
        kwargs = {key: getattr(validated, key) for key in type(validated).model_fields}
        try:
            result = tool.function(self.db, **kwargs)
        except Exception as exc:  # the agent sees the error, as from a real API
            record.error = f"{type(exc).__name__}: {exc}"
            return record
        try:
            record.result = json.loads(json.dumps(result, default=str))
        except (TypeError, ValueError) as exc:  # e.g. tuple keys, circular references
            record.error = f"the tool's result is not JSON-serializable: {exc}"
        return record

    def diff(self) -> dict[str, Any]:
        """The change from the starting to the current database (deepdiff, JSON-safe)."""
        return state_diff(self.initial_db, self.db)


def state_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The change between two databases as JSON-safe data (deepdiff's report), computed
    over the parts that differ (parts the two share are not looked at)."""
    return state_report(*touched(before, after))


def pretty_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """The database change as lines a human reads in a failure report."""
    return pretty_report(*touched(before, after))
