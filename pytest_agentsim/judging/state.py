"""Exact state comparison: the final-state oracle (``expected_state``) and ``db_unchanged``.

A benchmark such as tau-bench rewards a task when the final database equals the one its
ground-truth actions produce (and the required outputs were said). ``expected_state``
states that database as the changes an event must end with, or as the whole of it, and
everything it does not change must end as it started; ``db_unchanged`` holds paths (or
the whole database) to their starting values.

Values compare as strictly as the benchmark's hash does: type and value (``1``, ``1.0``,
``"1"`` and ``true`` all differ), lists in order, mappings by key whatever their order.
Mapping keys compare as text, because a YAML file may write a record id ``1001`` as a
number where the JSON seed database has the string.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Literal

from pydantic import Field
from pydantic import field_validator

from pytest_agentsim.core.checks import CheckResult
from pytest_agentsim.core.checks import RuleCheck
from pytest_agentsim.core.dbpaths import MISSING
from pytest_agentsim.core.dbpaths import Path
from pytest_agentsim.core.dbpaths import expected_db
from pytest_agentsim.core.dbpaths import path_text
from pytest_agentsim.core.dbpaths import split_path
from pytest_agentsim.core.dbpaths import value_at
from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Evidence
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import StateSpec

#: Differences named in one reason; the rest are counted.
SHOWN = 8


def same(a: Any, b: Any) -> bool:
    """Strict equality: type and value, lists in order, mapping keys as text."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = {str(key): key for key in a}
        other = {str(key): key for key in b}
        return keys.keys() == other.keys() and all(same(a[keys[k]], b[other[k]]) for k in keys)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping | list | tuple) or isinstance(b, Mapping | list | tuple):
        return False
    return type(a) is type(b) and bool(a == b)


@dataclass(frozen=True)
class Difference:
    """One path where the final database is not what was expected."""

    path: Path
    expected: Any
    actual: Any
    initial: Any

    @property
    def missing_change(self) -> bool:
        """A change the agent did not make: the path still holds its starting value."""
        return not same(self.expected, self.initial) and same(self.actual, self.initial)

    @property
    def unexpected(self) -> bool:
        """A change the expected state does not make (it keeps the starting value)."""
        return same(self.expected, self.initial)

    def text(self) -> str:
        where = path_text(self.path) or "the database"
        expected, actual = _shown(self.expected, self.actual)
        if self.unexpected:
            return f"{where}: changed from {expected} to {actual}"
        if self.missing_change:
            found = "nothing" if self.actual is MISSING else "it unchanged"
            return f"{where}: expected {expected}, found {found}"
        return f"{where}: expected {expected}, found {actual}"


def _short_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(expected: Any, actual: Any) -> tuple[str, str]:
    """Both values as text, with their types when only the type differs (1 vs 1.0)."""
    left, right = _short_repr(expected), _short_repr(actual)
    scalars = not isinstance(expected, Mapping | list) and not isinstance(actual, Mapping | list)
    if scalars and MISSING not in (expected, actual) and type(expected) is not type(actual):
        left += f" ({type(expected).__name__})"
        right += f" ({type(actual).__name__})"
    return left, right


def differences(
    expected: Any, actual: Any, initial: Any = MISSING, path: Path | None = None
) -> list[Difference]:
    """Every path where ``actual`` is not strictly ``expected``, deepest first found.

    Mappings are compared key by key and lists item by item (an item one side lacks is
    compared with :data:`MISSING`), so a diff names the field that differs rather than
    the whole record; ``initial`` is carried along for saying which side moved.
    """
    path = path or []
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        keys = {str(k): k for k in expected} | {str(k): k for k in actual}
        found = []
        for text in keys:
            found += differences(
                value_at(expected, [text]),
                value_at(actual, [text]),
                value_at(initial, [text]) if initial is not MISSING else MISSING,
                [*path, text],
            )
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        found = []
        for index in range(max(len(expected), len(actual))):
            found += differences(
                expected[index] if index < len(expected) else MISSING,
                actual[index] if index < len(actual) else MISSING,
                value_at(initial, [index]) if initial is not MISSING else MISSING,
                [*path, index],
            )
        return found
    if expected is MISSING and actual is MISSING:
        return []
    if same(expected, actual):
        return []
    return [Difference(path, expected, actual, initial)]


def describe(found: Sequence[Difference]) -> str:
    """The differences in two groups: the expected changes that are wrong or missing, then
    the changes the expected state does not make; at most :data:`SHOWN` named."""
    groups = (
        ("expected changes wrong or missing", [item for item in found if not item.unexpected]),
        ("other changes", [item for item in found if item.unexpected]),
    )
    parts, room = [], SHOWN
    for title, items in groups:
        if not items:
            continue
        shown = [item.text() for item in items[:room]]
        more = f"; and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
        parts.append(f"{title} ({len(items)}): {'; '.join(shown)}{more}")
        room = max(room - len(shown), 1)
    return "; ".join(parts)


def said(conversation: Conversation, words: str) -> bool:
    """tau-bench's output rule: a case-insensitive substring of some agent message, with
    commas removed from the message (so "1000" is found in "1,000")."""
    wanted = words.lower()
    return any(
        wanted in text.replace(",", "").lower() for _, text in conversation.assistant_texts()
    )


class ExpectedStateCheck(RuleCheck, StateSpec):
    """The final database must be exactly the expected state (nothing else changed), and
    every output said."""

    type: Literal["expected_state"] = "expected_state"

    def check(self, conversation: Conversation) -> CheckResult:
        initial = conversation.initial_db
        expected = expected_db(initial, self)
        found = differences(expected, conversation.final_db, initial)
        unsaid = [words for words in self.outputs if not said(conversation, words)]
        if not found and not unsaid:
            changed = not same(expected, initial)
            return CheckResult(
                outcome=Outcome.compliant,
                reason="final database is the expected state"
                + (
                    f" and the agent said {', '.join(map(repr, self.outputs))}"
                    if self.outputs
                    else ""
                ),
                # The agent's changes (or words) made it so; an unchanged database that
                # should stay unchanged shows only that nothing happened.
                evidence=Evidence.seen if changed or self.outputs else Evidence.whole,
            )
        problems = []
        if found:
            problems.append(f"final database is not the expected state: {describe(found)}")
        if unsaid:
            problems.append("the agent never said " + ", ".join(repr(words) for words in unsaid))
        # A change the agent made wrongly, or should not have made, is something that
        # happened; a missing change or output could still have come later.
        missing = bool(unsaid) or any(item.missing_change for item in found)
        return CheckResult(
            outcome=Outcome.violated,
            reason="; ".join(problems),
            evidence=Evidence.whole if missing else Evidence.seen,
        )

    def label(self) -> str:
        if self.db is not None:
            what = f"db with {len(self.db)} tables"
        else:
            count = len(self.changes or {}) + len(self.removed)
            what = f"{count} change{'s' if count != 1 else ''}" if count else "no change"
        said_too = f", {len(self.outputs)} outputs" if self.outputs else ""
        return f"{self.type}({what}{said_too})"


class DbUnchanged(RuleCheck):
    """The final database must equal the starting one (at ``paths``, if given)."""

    type: Literal["db_unchanged"] = "db_unchanged"
    paths: list[str | list[str | int]] = Field(
        default_factory=list, description="Dotted paths to hold; none = the whole database"
    )

    @field_validator("paths")
    @classmethod
    def _no_empty(cls, paths: list[str | list[str | int]]) -> list[str | list[str | int]]:
        for path in paths:
            parts = split_path(path)
            if not parts or any(part == "" for part in parts):
                raise ValueError("expected paths table.record.field, with no empty part")
        return paths

    def check(self, conversation: Conversation) -> CheckResult:
        initial, final = conversation.initial_db, conversation.final_db
        targets = [split_path(path) for path in self.paths] or [[]]
        found = [
            item
            for target in targets
            for item in differences(
                value_at(initial, target),
                value_at(final, target),
                value_at(initial, target),
                target,
            )
        ]
        where = ", ".join(map(path_text, targets)) if self.paths else "the database"
        if not found:
            return CheckResult(outcome=Outcome.compliant, reason=f"{where} unchanged")
        shown = "; ".join(item.text() for item in found[:SHOWN])
        more = f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        return CheckResult(
            outcome=Outcome.violated,
            reason=f"{where} must not change; {len(found)} changed: {shown}{more}",
            # The agent's own change decides it, though a later one could undo it.
            evidence=Evidence.seen,
        )


STATE_RULE_TYPES: tuple[type[RuleCheck], ...] = (ExpectedStateCheck, DbUnchanged)
