"""What a conftest declares about its tools and agent, without loading anything heavy.

``tool(...)``, ``tools_from_schemas(...)`` and ``agent_factory(...)`` only record what the
user said: a conftest (or product code) may call them at import time in a plain ``pytest``
run, where the plugin must not load pydantic or the sandbox. The sandbox turns a
:class:`ToolSpec` into a described tool when a test runs, and the runner calls an
:class:`AgentFactory` once per simulated event.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from pytest_agentsim.core.models import Event


@dataclass(frozen=True, eq=False)
class ToolSpec:
    """A tool with the name and/or OpenAI schema its user gave it (see :func:`tool`)."""

    target: object
    name: str | None = None
    schema: Mapping[str, Any] | None = None


def tool(
    target: object, *, name: str | None = None, schema: Mapping[str, Any] | None = None
) -> ToolSpec:
    """A tool for ``agentsim_tools`` under another ``name`` and/or with its own ``schema``.

    ``target`` is anything the sandbox takes as a tool: a function ``f(db, **kwargs)``, a
    bound method, an object with ``invoke(db, ...)`` or ``__call__(db, ...)``, or a class
    with a static ``invoke``. ``schema`` is an OpenAI tool (``{"type": "function",
    "function": {...}}``), its ``function`` part, or just the ``parameters`` JSON schema;
    with it, the model is offered that schema, the arguments are validated against it,
    and the target may take ``**kwargs``.
    """
    return ToolSpec(target, name, schema)


def tools_from_schemas(
    schemas: Sequence[Mapping[str, Any]],
    functions: Mapping[str, object] | Sequence[object],
) -> list[ToolSpec]:
    """Tools from the OpenAI tool list an agent already sends its model, one per schema.

    ``functions`` maps each schema's ``function.name`` to its implementation, or lists
    the implementations, matched by the name each would get as a tool (a function's
    ``__name__``, a tool object's ``name``, else its class name in snake_case). A schema
    without an implementation, or an implementation without a schema, is an error.
    """
    by_name: dict[str, object]
    if isinstance(functions, Mapping):
        by_name = {str(key): value for key, value in functions.items()}
    else:
        by_name = {}
        for function in functions:
            by_name.setdefault(default_tool_name(function), function)
    specs: list[ToolSpec] = []
    for index, schema in enumerate(schemas):
        name = schema_name(schema)
        if name is None:
            raise TypeError(
                f"tools_from_schemas: schemas[{index}] has no function.name "
                '(expected {"type": "function", "function": {"name": ..., "parameters": ...}})'
            )
        if name not in by_name:
            raise TypeError(
                f"tools_from_schemas: schemas[{index}] names {name!r}, which no function "
                f"implements (functions: {', '.join(sorted(by_name)) or 'none'})"
            )
        specs.append(ToolSpec(by_name.pop(name), name, schema))
    if by_name:
        raise TypeError(
            f"tools_from_schemas: no schema for {', '.join(sorted(by_name))} "
            "(every function needs its schema)"
        )
    return specs


def schema_name(schema: object) -> str | None:
    """The tool name an OpenAI tool schema (or its ``function`` part) gives, if any."""
    if not isinstance(schema, Mapping):
        return None
    function = schema.get("function")
    if isinstance(function, Mapping):
        schema = function
    name = schema.get("name")
    return name if isinstance(name, str) else None


def default_tool_name(target: object) -> str:
    """The name a tool gets when none is given: its function's ``__name__``, a tool
    object's ``name`` attribute, the name its ``get_info()`` schema gives, else its class's name in snake_case (``GetUser`` ->
    ``get_user``), since an ``invoke`` or ``__call__`` method's own name says nothing."""
    if inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target):
        return str(getattr(target, "__name__", ""))
    name = getattr(target, "name", None)
    if isinstance(name, str) and name:
        return name
    get_info = getattr(target, "get_info", None)
    if callable(get_info):
        try:
            name = schema_name(get_info())
        except Exception:  # the sandbox reports get_info's failure with its source
            name = None
        if name:
            return name
    cls = target if inspect.isclass(target) else type(target)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls.__name__).lower()


class AgentFactory:
    """Makes the agent for each event: ``agentsim_agent`` may return one (see
    :func:`agent_factory`). Called once per simulated event and trial."""

    def __init__(self, make: Callable[[Event], Any]) -> None:
        if not callable(make):
            raise TypeError(f"agent_factory: {make!r} is not callable; give a function f(event)")
        self.make = make
        self.__name__ = getattr(make, "__name__", type(make).__name__)
        self.__doc__ = getattr(make, "__doc__", None)

    def __call__(self, event: Event) -> Any:
        return self.make(event)

    def __repr__(self) -> str:
        return f"agent_factory({self.__name__})"


def agent_factory(make: Callable[[Event], Any]) -> AgentFactory:
    """Mark ``make(event) -> agent`` as a factory of the agent under test, for an agent
    that depends on the event (its user, its database). Usable as a decorator; the
    ``agentsim_agent`` fixture returns it in place of an agent."""
    return make if isinstance(make, AgentFactory) else AgentFactory(make)


def as_factory(agent: object) -> Callable[[Event], Any] | None:
    """The factory ``agent`` is, or None when it is an agent itself.

    An :class:`AgentFactory` always is one. Otherwise a callable without a ``respond``
    method is a factory when it takes exactly one positional argument (``f(event)``);
    an agent takes two (``agent(messages, sandbox)``), so neither is mistaken for the
    other. Anything whose signature cannot be read is taken for an agent.
    """
    if isinstance(agent, AgentFactory):
        return agent
    if callable(getattr(agent, "respond", None)) or not callable(agent) or inspect.isclass(agent):
        return None
    try:
        signature = inspect.signature(agent)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(None)
    except TypeError:
        return None
    try:
        signature.bind(None, None)
    except TypeError:
        return agent
    return None
