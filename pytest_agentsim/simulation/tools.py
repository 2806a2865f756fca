"""Tools as users have them, described to a model and validated: what the sandbox runs.

A tool is anything callable whose first parameter takes the database (a dict) and whose
other parameters are the tool's arguments: a typed function ``f(db, **kwargs)``, a bound
method, an object with ``invoke(db, ...)`` or ``__call__(db, ...)``, or a class with a
static ``invoke`` (tau-bench's shape, whose ``get_info()`` gives the OpenAI schema).
Without a schema, the tool's JSON schema is derived from its signature and docstring with
pydantic, which validates the arguments; with one (``get_info()``, ``tool(f, schema=...)``
or ``tools_from_schemas``), the model is offered that schema, arguments are validated
against it with jsonschema, and the tool may take ``**kwargs``.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import get_type_hints

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import TypeAdapter
from pydantic import ValidationError
from pydantic import create_model

from pytest_agentsim.simulation.declarations import ToolSpec
from pytest_agentsim.simulation.declarations import default_tool_name

ToolFunction = Callable[..., Any]
#: What ``agentsim_tools`` may list: see the module's notes.
ToolLike = Any

#: OpenAI's rule for function names.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class _ArgsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolDefinitionError(TypeError):
    """A tool that cannot be described to a model or called; names the tool and its source."""


class ToolArgumentsError(ValueError):
    """Arguments a tool's schema rejects; the message is what the agent is told."""


@dataclass(frozen=True, eq=False)
class Tool:
    """A callable tool with what validates its arguments: the pydantic model derived from
    its signature (``arguments``), or the JSON schema its user gave (``parameters``)."""

    name: str
    description: str
    function: ToolFunction
    arguments: type[BaseModel] | None = None
    parameters: dict[str, Any] | None = field(default=None, repr=False)

    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` format."""
        if self.parameters is not None:
            parameters = copy.deepcopy(self.parameters)
        else:
            assert self.arguments is not None
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

    def bind(self, arguments: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the arguments as the tool receives them, in JSON; the keyword arguments to call
        it with), or :class:`ToolArgumentsError` saying what is wrong with them."""
        if self.arguments is None:
            problem = _schema_problem(self.parameters or {}, dict(arguments))
            if problem is not None:
                raise ToolArgumentsError(f"invalid arguments: {problem}")
            return dict(arguments), dict(arguments)
        try:
            validated = self.arguments.model_validate(dict(arguments))
        except ValidationError as exc:
            raise ToolArgumentsError(f"invalid arguments: {_validation_summary(exc)}") from None
        received = {**arguments, **validated.model_dump(mode="json", exclude_unset=True)}
        kwargs = {key: getattr(validated, key) for key in type(validated).model_fields}
        return received, kwargs


def _schema_problem(parameters: Mapping[str, Any], value: Any) -> str | None:
    """The first way ``value`` breaks the JSON schema, as one line; None if it fits."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(parameters)
    error = jsonschema.exceptions.best_match(validator_class(parameters).iter_errors(value))
    if error is None:
        return None
    where = ".".join(str(part) for part in error.absolute_path) or "arguments"
    return f"{where}: {error.message}"


def _where(function: object) -> str:
    try:
        target = (
            function if inspect.isroutine(function) or inspect.isclass(function) else type(function)
        )
        return f"{inspect.getsourcefile(target)}:{inspect.getsourcelines(target)[1]}: "
    except (OSError, TypeError):
        return ""


def _short(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


EXPECTED = (
    "expected a function f(db, **kwargs), a bound method, an object with invoke(db, ...) or "
    "__call__(db, ...), a class with a static invoke(db, ...), or "
    "pytest_agentsim.tool(f, name=..., schema=...)"
)


def _callable_of(item: object) -> tuple[ToolFunction, Callable[[], Any] | None]:
    """What to call for a tool-like ``item``, and its ``get_info`` (tau-bench) if it has one."""
    info = getattr(item, "get_info", None)
    info = info if callable(info) else None
    if inspect.isfunction(item) or inspect.ismethod(item):
        return item, None
    if inspect.isclass(item):
        invoke = inspect.getattr_static(item, "invoke", None)
        if isinstance(invoke, (staticmethod, classmethod)):
            function: ToolFunction = getattr(item, "invoke")  # noqa: B009 (a class's, untyped)
            return function, info
        raise ToolDefinitionError(
            f"{_where(item)}tool class {item.__name__}: its invoke must be a @staticmethod "
            "invoke(db, ...) (or pass an instance of the class)"
        )
    invoke = getattr(item, "invoke", None)
    if callable(invoke):
        return invoke, info
    if callable(item):
        call = item.__call__  # a bound method, except for builtins such as partial
        return (call if inspect.ismethod(call) else item), info
    raise ToolDefinitionError(f"{_short(item)} is not a tool: {EXPECTED}")


def _function_schema(schema: object, where: str) -> tuple[str | None, str | None, dict[str, Any]]:
    """(name, description, parameters) of an OpenAI tool, its ``function`` part, or a bare
    ``parameters`` JSON schema."""
    import jsonschema

    shape = (
        "expected an OpenAI tool {'type': 'function', 'function': {'name': ..., "
        "'parameters': {...}}}, its function part or a parameters JSON schema"
    )
    if not isinstance(schema, Mapping):
        raise ToolDefinitionError(f"{where}: the schema is a {type(schema).__name__}; {shape}")
    function = schema.get("function")
    if isinstance(function, Mapping):
        schema = function
    if "parameters" in schema or "name" in schema:
        parameters = schema.get("parameters", {"type": "object", "properties": {}})
        name, description = schema.get("name"), schema.get("description")
    elif schema.get("type") == "object" or "properties" in schema:
        parameters, name, description = schema, None, None
    else:
        raise ToolDefinitionError(
            f"{where}: the schema has neither parameters nor properties; {shape}"
        )
    if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
        raise ToolDefinitionError(
            f"{where}: the schema's parameters must be a JSON schema of type object"
        )
    try:
        jsonschema.validators.validator_for(parameters).check_schema(parameters)
    except jsonschema.exceptions.SchemaError as exc:
        raise ToolDefinitionError(
            f"{where}: the schema's parameters are not a valid JSON schema: {exc.message}"
        ) from None
    if name is not None and not isinstance(name, str):
        raise ToolDefinitionError(f"{where}: the schema's name must be a string")
    return (
        name,
        description if isinstance(description, str) else None,
        json.loads(json.dumps(parameters)),
    )


def description_of(function: ToolFunction) -> str:
    """The docstring that describes a tool: its function's own (not one inherited, such as
    ``object.__call__``'s), else that of the class an ``invoke`` or ``__call__`` is on."""
    doc = getattr(function, "__doc__", None)
    owner = getattr(function, "__self__", None)
    if not doc and owner is not None:
        doc = (owner if inspect.isclass(owner) else type(owner)).__doc__
    if not doc and not inspect.isroutine(function):
        doc = type(function).__doc__
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _check_parameters(function: ToolFunction, name: str) -> list[inspect.Parameter]:
    """The tool's parameters after the database one, which it must have."""
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        raise ToolDefinitionError(f"tool {name!r}: its signature cannot be read") from None
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise ToolDefinitionError(
            f"{_where(function)}tool {name!r}: the first parameter must take the database"
        )
    return params[1:]


def _derived(function: ToolFunction, name: str, description: str | None) -> Tool:
    """A Tool whose schema and validation come from the signature and docstring."""
    import docstring_parser

    params = _check_parameters(function, name)
    docs = docstring_parser.parse(description_of(function))
    param_docs = {param.arg_name: param.description for param in docs.params}
    hints = get_type_hints(function)
    fields: dict[str, Any] = {}
    for param in params:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"{_where(function)}tool {name!r}: *args/**kwargs cannot be described to a "
                "model (give its schema: pytest_agentsim.tool(f, schema=...))"
            )
        if param.name not in hints:
            raise ToolDefinitionError(
                f"{_where(function)}tool {name!r}: parameter {param.name!r} needs a type hint "
                "(or give its schema: pytest_agentsim.tool(f, schema=...))"
            )
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (
            hints[param.name],
            Field(default=default, description=param_docs.get(param.name)),
        )
    arguments = create_model(f"{name}_arguments", __base__=_ArgsBase, **fields)
    if description is None:
        description = "\n\n".join(
            part for part in (docs.short_description, docs.long_description) if part
        )
    return Tool(name, description, function, arguments)


def _with_schema(
    function: ToolFunction, name: str, description: str, parameters: dict[str, Any]
) -> Tool:
    """A Tool offered and validated by the given schema; the function must accept it."""
    params = _check_parameters(function, name)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    properties = set(parameters.get("properties") or {})
    extra = sorted(properties - named) if not takes_any else []
    if extra:
        raise ToolDefinitionError(
            f"{_where(function)}tool {name!r}: its schema has argument {extra[0]!r}, which "
            f"the function does not take (it takes: {', '.join(sorted(named)) or 'nothing'})"
        )
    required = set(parameters.get("required") or [])
    missing = sorted(
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in required
    )
    if missing:
        raise ToolDefinitionError(
            f"{_where(function)}tool {name!r}: the function needs argument {missing[0]!r}, "
            "which its schema does not list as required"
        )
    return Tool(name, description, function, None, parameters)


# Tools are described once per target (and name and schema): deriving a pydantic model for
# every sandbox would be waste, and the catalog caches argument problems per Tool. The
# target is kept beside its Tool so that its id() stays its own.
_TOOLS: dict[tuple[int, str | None, str | None], tuple[object, Tool]] = {}


def as_tool(item: object, name: str | None = None, schema: Mapping[str, Any] | None = None) -> Tool:
    """The :class:`Tool` for anything ``agentsim_tools`` may list (see the module's notes).

    The name is ``name``, else the schema's, else :func:`default_tool_name`; the schema is
    ``schema``, else the item's ``get_info()``, else derived from the signature.
    """
    if isinstance(item, Tool) and name is None and schema is None:
        return item
    if isinstance(item, ToolSpec):
        return as_tool(
            item.target, name or item.name, schema if schema is not None else item.schema
        )
    if isinstance(item, Tool):
        item = item.function
    key = (
        id(item),
        name,
        None if schema is None else json.dumps(schema, sort_keys=True, default=str),
    )
    cached = _TOOLS.get(key)
    if cached is not None and cached[0] is item:
        return cached[1]
    function, info = _callable_of(item)
    label = name or default_tool_name(item)
    if schema is None and info is not None:
        try:
            schema = info()
        except Exception as exc:  # the user's code: say whose and what
            raise ToolDefinitionError(
                f"{_where(item)}tool {label!r}: get_info() raised {type(exc).__name__}: {exc}"
            ) from None
    if schema is None:
        built = _derived(function, label, None)
    else:
        given, description, parameters = _function_schema(schema, f"{_where(item)}tool {label!r}")
        label = name or given or label
        built = _with_schema(function, label, description or description_of(function), parameters)
    if not TOOL_NAME.match(built.name):
        raise ToolDefinitionError(
            f"{_where(item)}tool {built.name!r}: a tool name must be 1-64 letters, digits, _ "
            "or - (give one: pytest_agentsim.tool(f, name=...))"
        )
    _TOOLS[key] = (item, built)
    return built


def make_tool(function: ToolFunction, name: str | None = None) -> Tool:
    """Derive a Tool from a function ``f(db, *, arg: type = default, ...)``.

    The first parameter receives the database and is not part of the schema. Every other
    parameter needs a type hint; descriptions come from the docstring (Google, reST or
    numpydoc style, parsed by docstring_parser). Derived once per function.
    """
    return as_tool(function, name)


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
    if tool.arguments is None:
        return _schema_args_problem(tool, args)
    fields = tool.arguments.model_fields
    for name, value in args.items():
        field = fields.get(str(name))
        if field is None:
            return _not_taken(tool, name, list(fields))
        adapter: TypeAdapter[Any] = TypeAdapter(field.annotation or Any)
        try:
            matches = adapter.dump_python(adapter.validate_python(value), mode="json") == value
        except ValidationError:
            matches = False
        if not matches:
            return _never_is(tool, name, value, _type_name(field.annotation))
    return None


def _not_taken(tool: Tool, name: object, names: list[str]) -> str:
    return (
        f"args names {name!r}, which {tool.name} does not take (its arguments: "
        f"{', '.join(names) or 'none'}), so the check can never match"
    )


def _never_is(tool: Tool, name: object, value: object, kind: str) -> str:
    return (
        f"args.{name} is {json.dumps(value, default=str)}, which {tool.name}'s "
        f"argument {name!r} ({kind}) never is, so the check can never match"
    )


def _schema_args_problem(tool: Tool, args: Mapping[str, Any]) -> str | None:
    """:func:`args_problem` for a tool with a given schema: its properties and their
    JSON schemas decide (the arguments reach the tool, and the record, as sent)."""
    parameters = tool.parameters or {}
    properties = parameters.get("properties") or {}
    for name, value in args.items():
        if str(name) not in properties:
            if parameters.get("additionalProperties") is False or not properties:
                return _not_taken(tool, name, list(properties))
            continue
        prop = properties[str(name)]
        if isinstance(prop, Mapping) and _schema_problem(prop, value) is not None:
            return _never_is(tool, name, value, str(prop.get("type", "its schema")))
    return None


def _validation_summary(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
