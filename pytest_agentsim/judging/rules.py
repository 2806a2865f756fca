"""Declarative rule checks: deterministic judges over the transcript, tool calls and DB.

A pack writes a check as a mapping with a ``type`` and the fields of that type, e.g.
``{type: call_order, first: verify_identity, then: get_reservation}``. Each type is a
pydantic model with an ``evaluate`` method; the built-in types are registered through the
``pytest_agentsim_add_rule_types`` hook like any plugin's, so new types plug in the same way.

Each result says what it rests on (:class:`~pytest_agentsim.core.models.Evidence`), so that
a conversation that stopped early cannot make a check lie: a breach that happened
(``must_not_call`` found the call, ``text_not_matches`` matched, a call was unconfirmed or
out of order) and a required thing that happened (``must_call`` found the call,
``text_matches`` matched) are ``final``; an absence ("X was never called", "no agent
message matched") and the final database need the ``whole`` conversation; compliance
that rests on what happened but could still change (every call so far was confirmed, the
agent's changes put the value in the database) is ``seen``.
"""

from __future__ import annotations

import re
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import Field
from pydantic import field_validator

from pytest_agentsim.core.checks import CheckResult
from pytest_agentsim.core.checks import RuleCheck
from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.dbpaths import MISSING
from pytest_agentsim.core.dbpaths import split_path
from pytest_agentsim.core.dbpaths import value_at
from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Evidence
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import ToolCall
from pytest_agentsim.judging.state import STATE_RULE_TYPES

#: A tool's name in a check: never empty (a check of tool '' is decided by that alone).
ToolName = Annotated[str, Field(min_length=1)]


def _compiled(pattern: str) -> str:
    if not pattern:
        raise ValueError("an empty pattern matches every message")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return pattern


def _args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in args.items())


def _matches_args(call: ToolCall, args: dict[str, Any]) -> bool:
    return all(
        key in call.arguments and call.arguments[key] == value for key, value in args.items()
    )


class _ToolArgsCheck(RuleCheck):
    tool: ToolName
    args: dict[str, Any] = Field(default_factory=dict, description="Arguments that must match")

    def matching_calls(self, conversation: Conversation) -> list[ToolCall]:
        return [call for call in conversation.calls_to(self.tool) if _matches_args(call, self.args)]

    def call_text(self) -> str:
        return f"{self.tool}({_args_text(self.args)})" if self.args else self.tool


class MustCall(_ToolArgsCheck):
    """The tool must be called (with these arguments, if given)."""

    type: Literal["must_call"] = "must_call"

    def check(self, conversation: Conversation) -> CheckResult:
        calls = self.matching_calls(conversation)
        if calls:
            return CheckResult(
                outcome=Outcome.compliant,
                turn=calls[0].turn,
                reason=f"{self.call_text()} called",
                evidence=Evidence.final,
            )
        others = conversation.calls_to(self.tool)
        seen = f"; it was called with {_args_text(others[0].arguments)}" if others else ""
        return CheckResult(
            outcome=Outcome.violated, reason=f"{self.call_text()} was never called{seen}"
        )


class MustNotCall(_ToolArgsCheck):
    """The tool must not be called (with these arguments, if given); attempts count."""

    type: Literal["must_not_call"] = "must_not_call"

    def check(self, conversation: Conversation) -> CheckResult:
        calls = self.matching_calls(conversation)
        if not calls:
            # Calling the tool in an allowed way shows the situation came up; never calling
            # it shows nothing (a conversation where nothing happened also complies).
            return CheckResult(
                outcome=Outcome.compliant,
                reason=f"{self.call_text()} was not called",
                evidence=Evidence.seen if conversation.called(self.tool) else Evidence.whole,
            )
        call = calls[0]
        failed = f" (the call failed: {call.error})" if call.error else ""
        return CheckResult(
            outcome=Outcome.violated,
            turn=call.turn,
            reason=f"called {call.name}({_args_text(call.arguments)}), which is forbidden{failed}",
            evidence=Evidence.final,
        )


class CallOrder(RuleCheck):
    """``first`` must have been called successfully before any call to ``then``."""

    type: Literal["call_order"] = "call_order"
    first: ToolName
    then: ToolName

    def check(self, conversation: Conversation) -> CheckResult:
        later = conversation.calls_to(self.then)
        if not later:
            return CheckResult(
                outcome=Outcome.not_applicable, reason=f"{self.then} was never called"
            )
        target = later[0]
        position = conversation.tool_calls.index(target)
        before = [
            call
            for call in conversation.tool_calls[:position]
            if call.name == self.first and call.ok
        ]
        # Only the first call to ``then`` counts, so whatever follows it changes nothing.
        if before:
            return CheckResult(
                outcome=Outcome.compliant,
                turn=target.turn,
                reason=f"{self.first} succeeded before {self.then}",
                evidence=Evidence.final,
            )
        return CheckResult(
            outcome=Outcome.violated,
            turn=target.turn,
            reason=f"{self.then} was called before {self.first} had succeeded",
            evidence=Evidence.final,
        )


DEFAULT_CONFIRM = (
    r"(?i)\b(yes|yeah|yep|sure|confirm(ed)?|go ahead|proceed|please do|do it|ok(ay)?)\b"
)
DEFAULT_DENY = r"(?i)\b(no|nope|don'?t|do not|stop|wait)\b"
DEFAULT_ASK = (
    r"(?i)(confirm|shall i|should i|do you want me to|would you like me to|proceed|go ahead)"
)


class ConfirmationBefore(RuleCheck):
    """Every call to ``tool`` must follow the agent asking and the user agreeing.

    The last user message before the call must match ``confirm`` and not ``deny``, and
    the last assistant text before that user message must match ``ask``.
    """

    type: Literal["confirmation_before"] = "confirmation_before"
    tool: ToolName
    confirm: str = DEFAULT_CONFIRM
    deny: str = DEFAULT_DENY
    ask: str = DEFAULT_ASK

    _check_patterns = field_validator("confirm", "deny", "ask")(_compiled)

    def check(self, conversation: Conversation) -> CheckResult:
        calls = conversation.calls_to(self.tool)
        if not calls:
            return CheckResult(
                outcome=Outcome.not_applicable, reason=f"{self.tool} was never called"
            )
        messages = conversation.messages
        for call in calls:
            user_index = next(
                (i for i in range(call.turn - 1, -1, -1) if messages[i].role == "user"), None
            )
            if user_index is None:
                return CheckResult(
                    outcome=Outcome.violated,
                    turn=call.turn,
                    reason=f"{self.tool} was called before the user said anything",
                    evidence=Evidence.final,
                )
            said = messages[user_index].content or ""
            if not re.search(self.confirm, said) or re.search(self.deny, said):
                return CheckResult(
                    outcome=Outcome.violated,
                    turn=call.turn,
                    reason=(
                        f"{self.tool} was called without the user confirming; "
                        f"the last user message was {said!r}"
                    ),
                    evidence=Evidence.final,
                )
            asked = next(
                (
                    messages[i].content or ""
                    for i in range(user_index - 1, -1, -1)
                    if messages[i].role == "assistant" and messages[i].content
                ),
                "",
            )
            if not re.search(self.ask, asked):
                return CheckResult(
                    outcome=Outcome.violated,
                    turn=call.turn,
                    reason=(
                        f"{self.tool} was called but the agent never asked for confirmation; "
                        f"its last message was {asked!r}"
                    ),
                    evidence=Evidence.final,
                )
        return CheckResult(
            outcome=Outcome.compliant,
            turn=calls[0].turn,
            reason=f"every call to {self.tool} was confirmed by the user",
            # A later, unconfirmed call would breach it: this holds for what happened.
            evidence=Evidence.seen,
        )


class _DbCheck(RuleCheck):
    path: str | list[str | int] = Field(description="Dotted path ('users.u1.email') or a list")
    value: Any = Field(default=None, description="Expected value; omit to test the path only")

    @field_validator("path")
    @classmethod
    def _a_path(cls, path: str | list[str | int]) -> str | list[str | int]:
        """No empty path or part: an empty path is the whole database, which every final
        database "contains", so the check would be decided before the conversation."""
        parts = split_path(path)
        if not parts or any(part == "" for part in parts):
            raise ValueError("expected table.record.field, with no empty part")
        return path

    @property
    def has_value(self) -> bool:
        return "value" in self.model_fields_set

    def found(self, conversation: Conversation, *, initial: bool = False) -> tuple[bool, Any]:
        """Whether the final database (or the starting one) has it, and what is there."""
        db = conversation.initial_db if initial else conversation.final_db
        current = value_at(db, split_path(self.path))
        if current is MISSING:
            return False, MISSING
        if not self.has_value:
            return True, current
        if isinstance(current, list) and not isinstance(self.value, list):
            return self.value in current, current
        return current == self.value, current

    def change_evidence(self, conversation: Conversation, ok: bool) -> Evidence:
        """``seen`` when the agent's changes made the database so, else ``whole``: a state
        the database started in says nothing about what the agent did."""
        was, _ = self.found(conversation, initial=True)
        return Evidence.seen if was != ok else Evidence.whole

    def wanted(self) -> str:
        where = self.path if isinstance(self.path, str) else ".".join(map(str, self.path))
        return f"{self.value!r} at {where}" if self.has_value else where

    def label(self) -> str:
        return f"{self.type}({self.wanted()})"


class DbContains(_DbCheck):
    """The final database must have the path (and the value, if given; lists: membership)."""

    type: Literal["db_contains"] = "db_contains"

    def check(self, conversation: Conversation) -> CheckResult:
        ok, current = self.found(conversation)
        if ok:
            return CheckResult(
                outcome=Outcome.compliant,
                reason=f"final database has {self.wanted()}",
                evidence=self.change_evidence(conversation, ok),
            )
        found = "" if current is MISSING else f" (found {current!r})"
        return CheckResult(
            outcome=Outcome.violated, reason=f"final database lacks {self.wanted()}{found}"
        )


class DbNotContains(_DbCheck):
    """The final database must not have the path (or the value there, if given)."""

    type: Literal["db_not_contains"] = "db_not_contains"

    def check(self, conversation: Conversation) -> CheckResult:
        ok, current = self.found(conversation)
        if not ok:
            return CheckResult(
                outcome=Outcome.compliant,
                reason=f"final database has no {self.wanted()}",
                evidence=self.change_evidence(conversation, ok),
            )
        return CheckResult(
            outcome=Outcome.violated,
            reason=f"final database has {self.wanted()}, which is forbidden (found {current!r})",
            evidence=self.change_evidence(conversation, ok),
        )


class _TextCheck(RuleCheck):
    pattern: str = Field(description="Python regex, searched in each assistant message")

    _check_pattern = field_validator("pattern")(_compiled)


class TextMatches(_TextCheck):
    """Some assistant message must match the pattern."""

    type: Literal["text_matches"] = "text_matches"

    def check(self, conversation: Conversation) -> CheckResult:
        for turn, text in conversation.assistant_texts():
            if re.search(self.pattern, text):
                return CheckResult(
                    outcome=Outcome.compliant,
                    turn=turn,
                    reason=f"agent said {text!r}",
                    evidence=Evidence.final,
                )
        return CheckResult(
            outcome=Outcome.violated, reason=f"no agent message matched /{self.pattern}/"
        )


class TextNotMatches(_TextCheck):
    """No assistant message may match the pattern."""

    type: Literal["text_not_matches"] = "text_not_matches"

    def check(self, conversation: Conversation) -> CheckResult:
        for turn, text in conversation.assistant_texts():
            found = re.search(self.pattern, text)
            if found:
                return CheckResult(
                    outcome=Outcome.violated,
                    turn=turn,
                    reason=f"agent said {found.group(0)!r}, matching /{self.pattern}/: {text!r}",
                    evidence=Evidence.final,
                )
        return CheckResult(
            outcome=Outcome.compliant, reason=f"no agent message matched /{self.pattern}/"
        )


BUILTIN_RULE_TYPES: tuple[type[RuleCheck], ...] = (
    MustCall,
    MustNotCall,
    CallOrder,
    ConfirmationBefore,
    DbContains,
    DbNotContains,
    TextMatches,
    TextNotMatches,
    *STATE_RULE_TYPES,
)


def default_registry() -> RuleRegistry:
    return RuleRegistry(BUILTIN_RULE_TYPES)
