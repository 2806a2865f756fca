"""Databases that cost what the tools touch, not what the seed holds.

A seed database of several MB is parsed once per run; every event starts from it. Deep
copies per event (and a deepdiff of two full copies) made a run's cost grow with the
database instead of with the work, so instead:

- :func:`merged` puts an event's overrides over the seed by copying only the path to
  each override: every untouched table and record is the seed's own object;
- :class:`CowDict` / :class:`CowList` hand the tools a copy-on-access view: a container
  is copied (shallowly) the first time a tool reaches it through the view, so writes
  land in copies and the shared seed is never changed;
- :func:`touched` compares two databases that share structure, skipping every part that
  is the same object in both, and returns only the changed parts of each side, from
  which deepdiff's report and text are made when something asks for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import SupportsIndex

if TYPE_CHECKING:
    from typing_extensions import Self


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in (mappings merge, anything else replaces),
    sharing every part of ``base`` that no override reaches."""
    result = dict(base)
    for key, value in overrides.items():
        current = result.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            result[key] = merged(current, value)
        else:
            result[key] = _plain_copy(value)
    return result


def _plain_copy(value: Any) -> Any:
    """A private copy of JSON-like data (cheaper than copy.deepcopy)."""
    if isinstance(value, Mapping):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(item) for item in value]
    return value


def _own(parent: Any, key: Any, value: Any) -> Any:
    """``value`` as a copy-on-access child of ``parent``: copied once, then kept there."""
    if type(value) is dict:
        copied: Any = CowDict(value)
    elif type(value) is list:
        copied = CowList(value)
    else:
        return value
    if isinstance(parent, CowDict):
        parent._mark(key)
        dict.__setitem__(parent, key, copied)
    else:
        list.__setitem__(parent, key, copied)
    return copied


class CowDict(dict[Any, Any]):
    """A shallow copy whose nested dicts and lists are copied when first reached.

    What it holds is always the current state (untouched parts are the originals, shared
    with the database it was made from), so anything reading it as a plain dict (JSON,
    pydantic, ``==``) sees the right data. Every way of reaching a value hands out the
    private copy, so a tool's writes never reach the shared originals.
    """

    # ``origin``: the mapping it copies; ``dirty``: the keys that may differ from it (copied
    # for a tool, written or removed).
    __slots__ = ("dirty", "origin")

    def __init__(self, origin: Mapping[Any, Any]) -> None:
        super().__init__(origin)
        self.origin = origin
        self.dirty: set[Any] = set()

    def _mark(self, *keys: Any) -> None:
        self.dirty.update(keys)

    def __getitem__(self, key: Any) -> Any:
        return _own(self, key, dict.__getitem__(self, key))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._mark(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._mark(key)
        dict.__delitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Self:  # type: ignore[misc]
        self.update(other)
        return self

    def clear(self) -> None:
        self._mark(*self.keys())
        dict.clear(self)

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            value = self[key]
            del self[key]
            return value
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[Any, Any]:
        key = next(reversed(self.keys()))
        return key, self.pop(key)

    def values(self) -> Any:
        return [self[key] for key in self.keys()]

    def items(self) -> Any:
        return [(key, self[key]) for key in self.keys()]

    def copy(self) -> dict[Any, Any]:
        return dict(self.items())

    def __reduce__(self) -> Any:  # copy/pickle as the plain dict it stands for
        return (dict, (dict(self.items()),))


class CowList(list[Any]):
    """The list counterpart of :class:`CowDict`."""

    __slots__ = ()

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = index.__index__()
        if position < 0:
            position += len(self)
        return _own(self, position, list.__getitem__(self, index))

    def __iter__(self) -> Iterator[Any]:
        for position in range(len(self)):
            yield self[position]

    def __reversed__(self) -> Iterator[Any]:
        for position in range(len(self) - 1, -1, -1):
            yield self[position]

    def pop(self, index: SupportsIndex = -1) -> Any:
        value = self[index]
        del self[index]
        return value

    def copy(self) -> list[Any]:
        return list(self)

    def __reduce__(self) -> Any:
        return (list, (list(self),))


def cow(db: Mapping[str, Any]) -> CowDict:
    """A view of ``db`` that tools may change freely without changing ``db``."""
    return CowDict(db)


def plain(data: Any) -> Any:
    """Copy-on-access containers as plain dicts and lists (shared parts stay shared)."""
    if type(data) is CowDict:
        result = dict(data)
        for key in data.dirty:
            if key in result:
                result[key] = plain(result[key])
        return result
    if type(data) is CowList:
        return [plain(item) for item in list.__iter__(data)]
    return data


_ABSENT = object()


def same(a: Any, b: Any) -> bool:
    """Equal as deepdiff (numeric types ignored) sees it: 0 == 0.0, but True != 1."""
    if a is b:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(
            key in b and same(value, dict.__getitem__(b, key) if isinstance(b, dict) else b[key])
            for key, value in (dict.items(a) if isinstance(a, dict) else a.items())
        )
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return (
            (type(a) is type(b) or (isinstance(a, list) and isinstance(b, list)))
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _items(data: Mapping[Any, Any]) -> Any:
    return dict.items(data) if isinstance(data, dict) else data.items()


def touched(before: Any, after: Any) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The parts of two databases that differ: ``before`` and ``after`` pruned to the keys
    on a path to a change, in their own key order.

    A changed list is kept whole on both sides (as deepdiff reports a list per index).
    deepdiff gives the same report over the pruned pair as over the whole databases.
    Parts that are the same object on both sides are skipped without a look, which is
    what makes this cost what the tools touched.
    """
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return ({} if same(before, after) else {"": before}), {"": after}
    return _touched(before, after)


def _touched(
    before: Mapping[Any, Any], after: Mapping[Any, Any]
) -> tuple[dict[Any, Any], dict[Any, Any]]:
    old_part: dict[Any, Any] = {}
    new_part: dict[Any, Any] = {}
    reorder = True
    if type(after) is CowDict and after.origin is before:
        # Only the keys a tool reached can differ: the rest are the origin's own values.
        keys = after.dirty
        pairs = (
            [(key, dict.__getitem__(after, key)) for key in after if key in keys] if keys else []
        )
        gone = {key for key in keys if key not in after}
        removed = [key for key in before if key in gone] if gone else []
        # Keys kept in place keep their order: only a removal needs the old side rebuilt.
        reorder = bool(gone)
    else:
        pairs = list(_items(after))
        removed = [key for key in before if key not in after]
    for key, new in pairs:
        old = (
            dict.get(before, key, _ABSENT) if isinstance(before, dict) else before.get(key, _ABSENT)
        )
        if old is new:
            continue
        if old is _ABSENT:
            new_part[key] = plain(new)
        elif isinstance(old, Mapping) and isinstance(new, Mapping):
            sub_old, sub_new = _touched(old, new)
            if sub_old or sub_new:
                new_part[key] = sub_new
                old_part[key] = sub_old
        elif not same(old, new):
            new_part[key] = plain(new)
            old_part[key] = old
    if reorder and (removed or old_part):
        # Rebuild the old side in its own key order, as deepdiff walks it.
        old_part = {
            key: (old_part[key] if key in old_part else value)
            for key, value in _items(before)
            if key in old_part or key not in after
        }
    return old_part, new_part


def applied(
    base: Mapping[Any, Any], old_part: Mapping[Any, Any], new_part: Mapping[Any, Any]
) -> dict[Any, Any]:
    """``base`` with the changes :func:`touched` found applied: the database after them,
    sharing every part of ``base`` they do not reach."""
    result = dict(base)
    for key in old_part:
        if key not in new_part:
            result.pop(key, None)
    for key, new in new_part.items():
        old = old_part.get(key, _ABSENT)
        current = result.get(key, _ABSENT)
        if isinstance(old, dict) and isinstance(new, dict) and isinstance(current, Mapping):
            result[key] = applied(current, old, new)
        else:
            result[key] = new
    return result


def state_report(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """deepdiff's report of the change as JSON-safe data ({} when nothing changed)."""
    if not before and not after:
        return {}
    import json

    result: dict[str, Any] = json.loads(_deep_diff(before, after).to_json())
    return result


def pretty_report(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """The change as lines a human reads in a failure report ("" when nothing changed)."""
    if not before and not after:
        return ""
    text: str = _deep_diff(before, after).pretty()
    return text


def _deep_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> Any:
    from deepdiff import DeepDiff

    # Per-key changes (no "whole dict replaced"), and 0 -> 10.0 is a value change only.
    return DeepDiff(
        plain(dict(before)),
        plain(dict(after)),
        threshold_to_diff_deeper=0,
        ignore_numeric_type_changes=True,
        verbose_level=2,
    )
