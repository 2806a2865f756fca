"""The tool sandbox: the agent's tools run over a private copy of the event's database.

What a tool may be, and how it is described and validated, is
:mod:`pytest_agentsim.simulation.tools`. Every call is recorded with its result or error.
A tool that raises never crashes the run: the agent gets the error back as the tool's
answer, as a real API would return it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from pytest_agentsim.core.dbstate import cow
from pytest_agentsim.core.dbstate import pretty_report
from pytest_agentsim.core.dbstate import state_report
from pytest_agentsim.core.dbstate import touched
from pytest_agentsim.core.models import ToolCall
from pytest_agentsim.simulation.tools import Tool
from pytest_agentsim.simulation.tools import ToolArgumentsError
from pytest_agentsim.simulation.tools import ToolDefinitionError
from pytest_agentsim.simulation.tools import ToolLike
from pytest_agentsim.simulation.tools import as_tool


class ToolSandbox:
    """Runs tools for one conversation over a fresh deep copy of the starting database."""

    def __init__(self, tools: Iterable[ToolLike], db: Mapping[str, Any] | None = None) -> None:
        self.tools: dict[str, Tool] = {}
        for index, item in enumerate(tools):
            try:
                tool = as_tool(item)
            except ToolDefinitionError as exc:
                raise ToolDefinitionError(f"tools[{index}]: {exc}") from None
            if tool.name in self.tools:
                raise ToolDefinitionError(
                    f"tools[{index}]: two tools are named {tool.name!r} (rename one: "
                    "pytest_agentsim.tool(f, name=...))"
                )
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
            # Recorded as the tool receives them ("true" -> true): rule checks see what ran.
            record.arguments, kwargs = tool.bind(arguments)
        except ToolArgumentsError as exc:
            record.error = str(exc)
            return record
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
