"""The vocabulary of rule checks: the base every rule type extends, its result, and the
registry that parses a check mapping into its type.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic import Field

from pytest_agentsim.core.errors import UnknownRuleType
from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Evidence
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import StrictModel


class CheckResult(BaseModel):
    """What one rule check found, and what that rests on.

    ``evidence`` is how a rule type says whether its answer survives a conversation that
    stopped early (see :class:`~pytest_agentsim.core.models.Evidence`): ``final`` when
    something that happened decides it whatever would have followed (a forbidden call
    was made), ``seen`` when it rests on something that happened that more conversation
    could still change (every call so far was confirmed), ``whole`` when it rests on
    something not happening or on the final state. The default is ``whole``, the safe
    one: a rule type that does not say is taken to need the whole conversation, so on a
    conversation that broke off its verdict is an error, never a violation or a pass.
    """

    outcome: Outcome
    turn: int | None = None
    reason: str
    evidence: Evidence = Evidence.whole


#: Fields of the built-in rule types that name a tool.
TOOL_FIELDS = ("tool", "first", "then", "when_called")


def tools_named(check: Mapping[str, Any]) -> set[str]:
    """The tools a rule check names, as written in a pack or an event."""
    return {str(check[name]) for name in TOOL_FIELDS if check.get(name)}


class RuleCheck(StrictModel):
    """Base of every rule type. ``when_called`` limits a check to conversations that call a tool."""

    type: str
    when_called: str | None = Field(
        default=None,
        min_length=1,
        description="Only applies when this tool was called (else not_applicable)",
    )

    def evaluate(self, conversation: Conversation) -> CheckResult:
        if self.when_called and not conversation.called(self.when_called):
            return CheckResult(
                outcome=Outcome.not_applicable,
                reason=f"{self.when_called} was never called",
            )
        return self.check(conversation)

    def check(self, conversation: Conversation) -> CheckResult:
        raise NotImplementedError

    def label(self) -> str:
        """``type(field=value, ...)``, text as written: a regex reads as in the pack."""
        fields = self.model_dump(exclude={"type"}, exclude_defaults=True)
        inner = ", ".join(f"{key}={_shown(value)}" for key, value in fields.items())
        return f"{self.type}({inner})"


def _shown(value: Any) -> str:
    if isinstance(value, str) and "'" not in value:
        return f"'{value}'"
    return repr(value)


class RuleRegistry:
    """Rule types by name; parses a check mapping into its rule model."""

    def __init__(self, types: Iterable[type[RuleCheck]] = ()) -> None:
        self._types: dict[str, type[RuleCheck]] = {}
        for rule_type in types:
            self.add(rule_type)

    def add(self, rule_type: type[RuleCheck]) -> None:
        name = rule_type.model_fields["type"].default
        if not isinstance(name, str) or not name:
            raise TypeError(f"{rule_type.__name__} needs a default for its 'type' field")
        if name in self._types and self._types[name] is not rule_type:
            raise ValueError(f"rule type {name!r} is registered twice")
        self._types[name] = rule_type

    @property
    def names(self) -> list[str]:
        return sorted(self._types)

    def parse(self, data: Any) -> RuleCheck:
        """Validate one check; raises UnknownRuleType or pydantic's ValidationError."""
        if not isinstance(data, dict):
            raise UnknownRuleType(f"a check must be a mapping with a 'type', got {data!r}")
        if "type" not in data:
            raise UnknownRuleType(f"a check needs a 'type' (one of: {', '.join(self.names)})")
        name = data.get("type")
        if not isinstance(name, str) or name not in self._types:
            raise UnknownRuleType(
                f"unknown check type {name!r} (expected one of: {', '.join(self.names)})"
            )
        return self.type_of(name).model_validate(data)

    def type_of(self, name: str) -> type[RuleCheck]:
        return self._types[name]
