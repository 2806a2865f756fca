"""Paths into a database (``reservations.R1.status``) and the state an event expects.

Rule checks read the final database through these paths, and an event's expected state
is its starting database with changes made at them; both the loader (which checks at
load that the changes fit the event's starting database) and the judges use them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from collections.abc import MutableMapping
from collections.abc import Sequence
from typing import Any

from pytest_agentsim.core.models import StateSpec

Path = list[str | int]


class _Missing:
    """What a path holds where nothing is: prints as ``nothing``."""

    def __repr__(self) -> str:
        return "nothing"


MISSING: Any = _Missing()


def _as_int(part: str | int) -> int | None:
    if isinstance(part, int):
        return part
    return int(part) if part.lstrip("-").isdigit() else None


def split_path(path: str | Sequence[str | int]) -> Path:
    """``"users.u1.email"`` -> ``["users", "u1", "email"]``; a list is taken as it is."""
    return [*path.split(".")] if isinstance(path, str) else list(path)


def path_text(path: Sequence[str | int]) -> str:
    return ".".join(map(str, path))


def _key_in(node: Mapping[Any, Any], part: str | int) -> Any:
    """The key of ``node`` a path part names: as written, as text, or as a number."""
    index = _as_int(part)
    for key in (part, str(part), index):
        if key is not None and key in node:
            return key
    return MISSING


def value_at(data: Any, path: Sequence[str | int]) -> Any:
    """The value at a path of keys / list indices, or :data:`MISSING`.

    A digit part is a list index, or a mapping key as written ("1001", "02134": JSON keys
    are strings) or as a number (YAML keys may be ints).
    """
    node = data
    for part in path:
        index = _as_int(part)
        if isinstance(node, Mapping):
            key = _key_in(node, part)
            if key is MISSING:
                return MISSING
            node = node[key]
        elif isinstance(node, list) and index is not None and -len(node) <= index < len(node):
            node = node[index]
        else:
            return MISSING
    return node


class StateError(ValueError):
    """A change that cannot be made to the starting database (says which and why)."""


def _set(db: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = db
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = path_text(path[: depth + 1])
        if isinstance(node, MutableMapping):
            key = _key_in(node, part)
            if key is MISSING:
                key = str(part)
                if not last:
                    node[key] = {}
            if last:
                node[key] = copy.deepcopy(value)
            else:
                node = node[key]
        elif isinstance(node, list):
            index = _as_int(part)
            if index is None or not 0 <= index <= len(node) or (index == len(node) and not last):
                raise StateError(
                    f"{where}: a list of {len(node)} items has no index {part!r} "
                    f"(index {len(node)} appends an item)"
                )
            if not last:
                node = node[index]
            elif index == len(node):
                node.append(copy.deepcopy(value))
            else:
                node[index] = copy.deepcopy(value)
        else:
            raise StateError(f"{where}: {path_text(path[:depth])} holds {node!r}, not a record")


def _remove(db: dict[str, Any], path: Path) -> None:
    parent = value_at(db, path[:-1])
    if isinstance(parent, MutableMapping) and (key := _key_in(parent, path[-1])) is not MISSING:
        del parent[key]
        return
    index = _as_int(path[-1])
    if isinstance(parent, list) and index is not None and 0 <= index < len(parent):
        del parent[index]
        return
    raise StateError(f"{path_text(path)}: nothing there to remove")


def expected_db(initial: Mapping[str, Any], spec: StateSpec) -> dict[str, Any]:
    """The database ``spec`` expects: its ``db``, or the start with its changes made.

    Changes are made in the order written (an index one past a list's end appends), then
    the removals; raises :class:`StateError` for a change the start cannot take.
    """
    if spec.db is not None:
        return copy.deepcopy(spec.db)
    expected = copy.deepcopy(dict(initial))
    for path, value in (spec.changes or {}).items():
        _set(expected, split_path(path), value)
    for path in spec.removed:
        _remove(expected, split_path(path))
    return expected
