"""Reading user files so that every mistake is reported as ``file:line: what was expected``.

YAML is loaded with the line of every key and list item remembered, and pydantic's
validation errors are turned back into one-line messages pointing at those lines.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import TypeVar

import yaml
from pydantic import BaseModel
from pydantic import ValidationError

from pytest_agentsim.core.errors import ConfigError

Loc = tuple[int | str, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


class LineDict(dict[Any, Any]):
    """A mapping loaded from YAML that remembers its own line and each key's line."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A sequence loaded from YAML that remembers its own line and each item's line."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    items = LineList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    return items


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def display_path(path: str | os.PathLike[str]) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_document(path: Path, *, what: str) -> Any:
    """Load a YAML (or JSON, a subset of YAML) file, keeping line numbers."""
    where = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: {what} not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {what}: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{line}: invalid YAML in {what}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML in {what}: {exc}") from None


def to_plain(data: Any) -> Any:
    """Strip line bookkeeping so models hold ordinary dicts and lists."""
    if isinstance(data, dict):
        return {key: to_plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [to_plain(item) for item in data]
    return data


def line_of(data: Any, loc: Sequence[int | str]) -> int | None:
    """The line of the deepest part of ``loc`` that exists in the loaded document."""
    line = getattr(data, "line", None) or None
    node = data
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def node_at(data: Any, loc: Sequence[int | str]) -> Any:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def field_path(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _quoted_choices(expected: str) -> str:
    choices = re.findall(r"'([^']*)'", expected)
    return ", ".join(choices) if choices else expected


def _model_at(model: type[BaseModel] | None, loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that validates the object at ``loc``, if it can be told statically."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
        # Unwrap list[X] / X | None down to a model class.
        while typing.get_origin(current) is not None:
            args = [arg for arg in typing.get_args(current) if arg is not type(None)]
            if not args:
                return None
            current = args[-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def describe_error(
    error: Any, *, field_loc: Loc, model: type[BaseModel] | None = None, model_loc: Loc = ()
) -> str:
    """One pydantic error (an ``ErrorDetails`` dict) as a phrase a user can act on.

    ``field_loc`` names the field for the user; ``model_loc`` is the location within
    ``model`` (the class that was validated), used to list the keys a mapping accepts.
    """
    field = field_path(field_loc) or "value"
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "missing":
        return f"missing required field '{field}'"
    if kind == "extra_forbidden":
        parent = _model_at(model, model_loc[:-1])
        allowed = f" (expected one of: {', '.join(parent.model_fields)})" if parent else ""
        return f"unknown key '{field}'{allowed}"
    if kind in ("enum", "literal_error"):
        return (
            f"{field} must be one of {_quoted_choices(str(ctx.get('expected', '')))}, got {got!r}"
        )
    bounds = {
        "greater_than_equal": ">=",
        "less_than_equal": "<=",
        "greater_than": ">",
        "less_than": "<",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"{field} must be {bounds[kind]} {limit}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"{field} must match {ctx.get('pattern')}, got {got!r}"
    if kind == "too_short" and isinstance(got, (list, dict, str)) and not got:
        return f"{field} must not be empty"
    message = str(error["msg"])
    message = message[:1].lower() + message[1:]
    return f"{field}: {message}, got {got!r}"


def validation_error_message(
    path: Path,
    raw: Any,
    error: ValidationError,
    *,
    model: type[BaseModel] | None = None,
    loc_prefix: Loc = (),
    context: Callable[[Loc], tuple[str, Loc]] | None = None,
    limit: int = 5,
) -> str:
    """Turn a ValidationError into ``file:line: context: what was expected`` lines.

    ``raw`` is the document as loaded (with lines); the error's locations are relative to
    ``loc_prefix`` within it. ``context`` splits a full location into a prefix naming the
    object (``policy 'x': ``) and the rest, which names the field.
    """
    where = display_path(path)
    lines = []
    errors = error.errors(include_url=False)
    for item in errors[:limit]:
        full_loc: Loc = loc_prefix + tuple(item["loc"])
        prefix, rest = context(full_loc) if context else ("", full_loc)
        line = line_of(raw, full_loc)
        location = f"{where}:{line}" if line else where
        phrase = describe_error(item, field_loc=rest, model=model, model_loc=tuple(item["loc"]))
        lines.append(f"{location}: {prefix}{phrase}")
    if len(errors) > limit:
        lines.append(f"{where}: ... and {len(errors) - limit} more errors")
    return "\n".join(lines)


def named_context(kind: str, collection: str, raw: Any) -> Callable[[Loc], tuple[str, Loc]]:
    """A context function naming the object a location falls in (``policy 'x': ``)."""

    def context(loc: Loc) -> tuple[str, Loc]:
        if len(loc) >= 2 and loc[0] == collection and isinstance(loc[1], int):
            item = node_at(raw, loc[:2])
            name = item.get("id") if isinstance(item, dict) else None
            label = f"{kind} {name!r}" if isinstance(name, str) else f"{kind} #{loc[1] + 1}"
            return f"{label}: ", loc[2:]
        return "", loc

    return context


def load_model(
    path: Path, model: type[ModelT], *, what: str, kind: str, collection: str
) -> tuple[ModelT, Any]:
    """Load a YAML file into ``model``; returns it and the raw document (with lines).

    Mistakes are ConfigErrors naming the file, the line, the ``kind`` of item in
    ``collection`` (e.g. ``policy 'x'`` in ``policies``) and what was expected.
    """
    raw = load_document(path, what=what)
    if not isinstance(raw, LineDict):
        required = " and ".join(
            repr(name) for name, f in model.model_fields.items() if f.is_required()
        )
        raise ConfigError(
            f"{display_path(path)}: the {what} must be a mapping with {required}, "
            f"got {type(to_plain(raw)).__name__}"
        )
    try:
        return model.model_validate(to_plain(raw)), raw
    except ValidationError as exc:
        raise ConfigError(
            validation_error_message(
                path, raw, exc, model=model, context=named_context(kind, collection, raw)
            )
        ) from None
