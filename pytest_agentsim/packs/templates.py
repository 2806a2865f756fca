"""The template language of pack variants: placeholders and their rendering."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    pass


PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_]+))?\}")


class GenerationError(Exception):
    """One attempt at an event failed; the message says why (in one line)."""


#: Begins the reason of a sample a generator did not try (after failures that made


def placeholder_refs(value: Any) -> set[tuple[str, str | None]]:
    """The (name, field) pairs a template value refers to: ``{order.total}`` is
    ``("order", "total")``, ``{order}`` is ``("order", None)``."""
    found: set[tuple[str, str | None]] = set()
    if isinstance(value, str):
        found.update((m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(value) if m.group(1))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found |= placeholder_refs(key) | placeholder_refs(item)
    elif isinstance(value, list):
        for item in value:
            found |= placeholder_refs(item)
    return found


def placeholders(value: Any) -> set[str]:
    """The names (entities and choices) a template value refers to."""
    return {name for name, _ in placeholder_refs(value)}


def check_policy(check: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(the policy a variant's ``expected`` check names, the check without it).

    A variant's checks are charged to its own policy unless one says ``policy: other-id``
    (a cancellation variant may carry a check of the refund policy). The policy is None
    when the check names none; it is validated against the pack where the pack loads.
    """
    rest = {key: value for key, value in check.items() if key != "policy"}
    return check.get("policy"), rest


@dataclass
class TemplateContext:
    """What placeholders resolve to while one event is built."""

    entities: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    choices: dict[str, Any] = field(default_factory=dict)
    db: Mapping[str, Any] = field(default_factory=dict)
    stand_in: str | None = None  # fills every placeholder, to validate a template's shape

    def lookup(self, name: str, attribute: str | None) -> Any:
        if self.stand_in is not None:
            return self.stand_in
        if name in self.choices and attribute is None:
            return self.choices[name]
        if name not in self.entities:
            raise GenerationError(f"template refers to {{{name}}}, which is not chosen")
        key = self.entities[name]
        if attribute is None:
            return key
        record = self.db.get(self.tables[name], {}).get(key)
        if not isinstance(record, Mapping) or attribute not in record:
            raise GenerationError(
                f"template refers to {{{name}.{attribute}}}, but {self.tables[name]}.{key} "
                f"has no field {attribute!r}"
            )
        return record[attribute]

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            whole = PLACEHOLDER.fullmatch(value)
            if whole and whole.group(1):
                return copy.deepcopy(self.lookup(whole.group(1), whole.group(2)))

            def substitute(match: re.Match[str]) -> str:
                if match.group(0) in ("{{", "}}"):
                    return match.group(0)[0]
                return str(self.lookup(match.group(1), match.group(2)))

            return PLACEHOLDER.sub(substitute, value)
        if isinstance(value, Mapping):
            return {str(self.render(key)): self.render(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.render(item) for item in value]
        return value


# ----------------------------------------------------------------------------- merging
