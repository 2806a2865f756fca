"""Reading user files so that every mistake is reported as ``file:line: what was expected``.

YAML is loaded with the line of every key and list item remembered, and pydantic's
validation errors are turned back into one-line messages pointing at those lines.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Callable
from collections.abc import Hashable
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

    # Slots: a document holds one per mapping (a dozen per event), each without a __dict__.
    __slots__ = ("key_lines", "line")
    line: int
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A sequence loaded from YAML that remembers its own line and each item's line."""

    __slots__ = ("item_lines", "line")
    line: int
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(yaml.MarkedYAMLError):
    """A mapping's own key given twice (JSON and YAML alike forbid it; parsers keep one)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    """A mapping with its lines; a key given twice is an error naming both lines.

    Keys brought in by a merge (``<<: *defaults``) may be overridden by the mapping's own
    keys, as YAML's merge key means; only the mapping's own keys must be unique.
    """
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    merged = len(node.value) - own
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    own_keys: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            kind = "list" if isinstance(key, list) else "mapping"
            raise yaml.MarkedYAMLError(
                problem=f"a mapping key must be a string or a number, got a {kind}",
                problem_mark=key_node.start_mark,
            )
        if index >= merged:
            if key in own_keys:
                raise _DuplicateKey(
                    problem=f"duplicate key {key!r} (first on line {mapping.key_lines[key]})",
                    problem_mark=key_node.start_mark,
                )
            own_keys.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    items = LineList()
    items.line = node.start_mark.line + 1
    items.item_lines = []
    release = getattr(loader, "release_built", False)
    for index, child in enumerate(node.value):
        items.append(loader.construct_object(child, deep=True))
        items.item_lines.append(child.start_mark.line + 1)
        if release:
            # A tree (no alias): no node is asked for twice, so each item's nodes go as
            # soon as it is built. The nodes of a long list (1,000 events) weigh twice
            # what is built of them, and would otherwise all be held to the end.
            node.value[index] = None
            loader.constructed_objects.clear()
    return items


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

#: The same loader over libyaml's parser (about ten times faster) when PyYAML has it: a
#: document it refuses is read again by the pure-Python loader, whose messages users see.
_FastLineLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLineLoader(yaml.CSafeLoader):
        pass

    _CLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _CLineLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence
    )
    _FastLineLoader = _CLineLoader

#: The largest user file read (bytes), so that a runaway file fails at once instead of
#: parsing for minutes (YAML is parsed in pure Python, about half a megabyte a second).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: The most values a document may hold once aliases are expanded: an alias bomb (YAML's
#: "billion laughs") would otherwise expand exponentially in every consumer of the data.
MAX_VALUES = 1_000_000
#: The deepest nesting of collections a document may have: far beyond any real input,
#: and well within Python's recursion limit for every consumer of the data.
MAX_DEPTH = 100


def display_path(path: str | os.PathLike[str]) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _size_text(size: float) -> str:
    megabyte = 1024 * 1024
    return f"{size / megabyte:.1f} MB" if size >= megabyte else f"{size:.0f} bytes"


def read_user_text(path: Path, *, what: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of a user file, or a ConfigError naming it: missing, unreadable, larger
    than ``max_bytes``, or not UTF-8 (with the line of the first bad byte).

    Every user-written input (packs, events, seed databases, baselines, cassettes) is
    read here, so each of these mistakes reads the same for all of them.
    """
    where = display_path(path)
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{where}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: {what} is a directory, expected a file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {what}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ConfigError(
            f"{where}: {what} is too large ({_size_text(path.stat().st_size)}; "
            f"the limit is {_size_text(max_bytes)})"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError(
            f"{where}:{line}: {what} is not UTF-8 text: byte 0x{data[exc.start]:02x} cannot "
            f"be decoded{hint}; save the file as UTF-8"
        ) from None


class _TooComplex(Exception):
    """A document refused before construction; ``node`` is where it shows."""

    def __init__(self, node: yaml.Node, problem: str) -> None:
        super().__init__(problem)
        self.node = node
        self.problem = problem


def _check_size(root: yaml.Node) -> bool:
    """Refuse a node graph that is cyclic, too deep, or too large once aliases expand;
    whether any node is shared (reached twice, through an alias).

    Aliases make the composed document a graph whose nodes may be shared; the count of
    values each node expands to is memoized, so a billion laughs is refused after
    visiting each of its few nodes once, before anything is constructed.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    shared = False

    def size(node: yaml.Node, depth: int) -> int:
        nonlocal shared
        key = id(node)
        if key in sizes:
            shared = True
            return sizes[key]
        if key in active:
            raise _TooComplex(node, "an alias refers to a collection that contains it")
        if depth > MAX_DEPTH:
            raise _TooComplex(node, f"collections are nested more than {MAX_DEPTH} levels deep")
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        active.add(key)
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_VALUES:
                raise _TooComplex(
                    node, f"aliases expand to more than {MAX_VALUES:,} values (an alias bomb?)"
                )
        active.discard(key)
        sizes[key] = total
        return total

    size(root, 0)
    return shared


def _read(loader: Any) -> Any:
    """The one document a line-keeping loader holds (None if empty), its size checked
    before it is built (and its nodes released as they are built, when none is shared)."""
    node = loader.get_single_node()
    if node is None:
        return None
    loader.release_built = not _check_size(node)
    return loader.construct_document(node)


def load_document(path: Path, *, what: str, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Load a YAML (or JSON, a subset of YAML) file, keeping line numbers.

    Anything wrong with the file is a one-line ConfigError naming it, and the line when
    there is one: the reading problems of :func:`read_user_text`, invalid YAML, a key
    given twice, an unhashable key, an alias bomb, a recursive alias or absurd nesting.
    """
    where = display_path(path)
    text = read_user_text(path, what=what, max_bytes=max_bytes)
    if _FastLineLoader is not None:
        fast = _FastLineLoader(text)
        try:
            return _read(fast)
        except (yaml.YAMLError, _TooComplex, RecursionError):
            pass  # read again below, for the message
        finally:
            fast.dispose()
    loader = _LineLoader(text)
    try:
        return _read(loader)
    except _TooComplex as exc:
        line = exc.node.start_mark.line + 1
        raise ConfigError(f"{where}:{line}: invalid YAML in {what}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        # The context says what the parser was reading ("while parsing a flow mapping").
        problem = f"{exc.context}, {exc.problem}" if exc.context else exc.problem
        raise ConfigError(f"{where}{line}: invalid YAML in {what}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML in {what}: {exc}") from None
    except RecursionError:  # the parser nests deeper than MAX_DEPTH before it is checked
        raise ConfigError(
            f"{where}: invalid YAML in {what}: collections are nested more than "
            f"{MAX_DEPTH} levels deep"
        ) from None
    finally:
        loader.dispose()


#: JSON read again for the lines of an error (:func:`json_lines`) up to this size; beyond
#: it the error names the field without a line rather than parse for minutes.
MAX_LINE_LOOKUP_CHARS = 4 * 1024 * 1024


def json_lines(path: Path, text: str, *, what: str) -> Any:
    """JSON ``text`` (already parsed by the json module) read again with the line of each
    key and item, for the message about a mistake in it; None when it is too large to
    read again quickly or does not read as YAML.

    A key given twice in one object, which the json module would silently take the last
    of, is a ConfigError naming both lines.
    """
    if len(text) > MAX_LINE_LOOKUP_CHARS:
        return None
    loader = _LineLoader(text)
    try:
        return _read(loader)
    except _DuplicateKey as exc:
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark is not None else ""
        raise ConfigError(
            f"{display_path(path)}{line}: invalid JSON in {what}: {exc.problem}"
        ) from None
    except (yaml.YAMLError, _TooComplex, RecursionError):
        return None
    finally:
        loader.dispose()


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


class _Shown:
    """A value as an error message shows it: its repr, cut short when long (a whole list
    of policies where a mapping was expected would otherwise fill the screen)."""

    LIMIT = 80

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        text = repr(to_plain(self.value))
        return text if len(text) <= self.LIMIT else text[: self.LIMIT - 3] + "..."


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
    value = error.get("input")
    got = _Shown(value)
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
    if kind in ("too_short", "string_too_short") and value in ([], {}, ""):
        return f"{field} must not be empty"
    # The object itself (a policy that is a string) is named by the context alone.
    named = f"{field}: " if field_loc else ""
    if kind in ("model_type", "dict_type"):
        # Not "a valid dictionary or instance of Policy": the user wrote YAML, not Python.
        return f"{named}input should be a mapping, got {got!r}"
    if kind == "value_error" and ctx.get("error") is not None:
        # A validator's own words, without pydantic's "Value error, " in front.
        return f"{named}{ctx['error']}, got {got!r}"
    message = str(error["msg"])
    message = message[:1].lower() + message[1:]
    return f"{named}{message}, got {got!r}"


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "none": "null",
    "list": "a list",
    "tuple": "a list",
    "dict": "a mapping",
}


def _type_tag(part: int | str) -> str | None:
    """The words for a union member's tag in a pydantic location (``str``,
    ``list[union[str,int]]``), or None for a field name or an index."""
    if not isinstance(part, str):
        return None
    base = part.split("[", 1)[0]
    if base in _TYPE_WORDS:
        return _TYPE_WORDS[base]
    if "[" in part or part.startswith(("function-", "lax-", "strict-", "literal", "json-")):
        return "a valid value"
    return None


def _untagged(loc: Loc) -> tuple[Loc, str | None]:
    """(the location up to its first union tag, that tag's words or None)."""
    for index, part in enumerate(loc):
        words = _type_tag(part)
        if words is not None:
            return loc[:index], words
    return loc, None


def validation_error_message(
    path: Path,
    raw: Any,
    error: ValidationError,
    *,
    model: type[BaseModel] | None = None,
    loc_prefix: Loc = (),
    context: Callable[[Loc], tuple[str, Loc]] | None = None,
) -> str:
    """Turn a ValidationError into one line: ``file:line: context: what was expected``.

    ``raw`` is the document as loaded (with lines); the error's locations are relative to
    ``loc_prefix`` within it. ``context`` splits a full location into a prefix naming the
    object (``policy 'x': ``) and the rest, which names the field.

    The first problem is described; what pydantic reports as several errors for one
    mistake is one problem: the members of a union the value matched none of ("expected a
    string or a list") and the required fields an object lacks. Further problems are
    counted at the end of the line, to be seen once this one is fixed.
    """
    where = display_path(path)
    errors = error.errors(include_url=False)
    misspelt = _misspelt_key(errors)
    first = misspelt[0] if misspelt else errors[0]
    base, tag = _untagged(tuple(first["loc"]))
    if misspelt:
        group = list(misspelt)
    elif tag is not None:
        group = [item for item in errors if _untagged(tuple(item["loc"]))[0] == base]
    elif first["type"] == "missing":
        group = [
            item
            for item in errors
            if item["type"] == "missing" and tuple(item["loc"])[:-1] == base[:-1]
        ]
    else:
        group = [first]
    full_loc: Loc = loc_prefix + base
    prefix, rest = context(full_loc) if context else ("", full_loc)
    line = line_of(raw, full_loc)
    location = f"{where}:{line}" if line else where
    if misspelt:
        phrase = (
            f"unknown key '{field_path(rest)}' (did you mean '{tuple(misspelt[1]['loc'])[-1]}'?)"
        )
    elif tag is not None:
        words = list(dict.fromkeys(w for item in group if (w := _untagged(tuple(item["loc"]))[1])))
        field = field_path(rest)
        got = _Shown(node_at(raw, full_loc) if line else first.get("input"))
        phrase = f"{field + ': ' if field else ''}expected {' or '.join(words)}, got {got!r}"
    elif len(group) > 1:
        fields = [field_path(rest[:-1] + tuple(item["loc"])[-1:]) for item in group]
        phrase = "missing required fields " + ", ".join(f"'{name}'" for name in fields)
    else:
        phrase = describe_error(first, field_loc=rest, model=model, model_loc=tuple(first["loc"]))
    others = {_untagged(tuple(item["loc"]))[0] for item in errors if item not in group}
    more = (
        f" (and {len(others)} more {'error' if len(others) == 1 else 'errors'})" if others else ""
    )
    return f"{location}: {prefix}{phrase}{more}"


def _misspelt_key(errors: Sequence[Any]) -> tuple[Any, Any] | None:
    """(an unknown key's error, the missing field's error) when a required field is
    missing beside an unknown key spelt like it (``severty`` for ``severity``): one
    mistake, best reported at the typo's line with the name it was meant to be."""
    missing = {
        (tuple(item["loc"])[:-1], str(tuple(item["loc"])[-1])): item
        for item in errors
        if item["type"] == "missing" and item["loc"]
    }
    for item in errors:
        if item["type"] != "extra_forbidden" or not item["loc"]:
            continue
        parent, key = tuple(item["loc"])[:-1], str(tuple(item["loc"])[-1])
        names = [name for (where, name) in missing if where == parent]
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
        if close:
            return item, missing[(parent, close[0])]
    return None


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
    return validate_document(path, raw, model, what=what, kind=kind, collection=collection), raw


def validate_document(
    path: Path, raw: Any, model: type[ModelT], *, what: str, kind: str, collection: str
) -> ModelT:
    """Validate a document :func:`load_document` loaded from ``path`` into ``model``
    (the second half of :func:`load_model`, for a loader that looks at the raw document
    first)."""
    if not isinstance(raw, LineDict):
        required = " and ".join(
            repr(name) for name, f in model.model_fields.items() if f.is_required()
        )
        got = "an empty file" if raw is None else type(to_plain(raw)).__name__
        raise ConfigError(
            f"{display_path(path)}: the {what} must be a mapping with {required}, got {got}"
        )
    try:
        return model.model_validate(to_plain(raw))
    except ValidationError as exc:
        raise ConfigError(
            validation_error_message(
                path, raw, exc, model=model, context=named_context(kind, collection, raw)
            )
        ) from None
