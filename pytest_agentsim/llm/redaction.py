"""Secrets never reach what a run writes: the values and patterns to redact, and how.

A secret is matched in every spelling our outputs can give it (:func:`secret_spellings`),
not only as typed: the spellings of a secret set are computed once and cached, because
every judged event's result is redacted before any report sees it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import TypeVar
from urllib.parse import quote
from urllib.parse import quote_plus

from pydantic import BaseModel
from pydantic import ValidationError

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.llm.messages import LLMConfig

T = TypeVar("T", bound=BaseModel)
REDACTED = "[REDACTED]"
# Shapes of credentials that must never reach a cassette even when no env var names them.
# ``\b`` keeps words like "risk-assessment" intact.
DEFAULT_SECRET_PATTERNS = (r"\bsk-[A-Za-z0-9_-]{8,}", r"(?i)\bbearer\s+\S+")
# What a match of each default pattern has in any JSON spelling of its string (none of
# these characters is escaped): without them, no default pattern can match.
_DEFAULT_PATTERN_HINTS = (re.compile("sk-"), re.compile("(?i)bearer"))
#: Never written as they are (reports show their changes): not redacted, not copied.
_WHOLE_DBS = {"initial_db", "final_db"}
_MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would redact ordinary words
# --------------------------------------------------------------------------- secrets


def _secret_name(name: str) -> bool:
    upper = name.upper()
    return upper.endswith(("_API_KEY", "_TOKEN", "_SECRET")) or "SECRET" in upper


def env_secret_values(names: Iterable[str] = ()) -> list[str]:
    """Values of ``names`` and of every env var that looks like a credential.

    A credential is a name ending in ``_API_KEY``, ``_TOKEN`` or ``_SECRET`` or containing
    ``SECRET``; values shorter than 6 characters are ignored.
    """
    wanted = set(names)
    values = {
        value
        for name, value in os.environ.items()
        if (name in wanted or _secret_name(name)) and len(value) >= _MIN_SECRET_LENGTH
    }
    return sorted(values, key=lambda value: (-len(value), value))


def secret_values(config: LLMConfig) -> list[str]:
    """Every secret the config can reach: its key, ``secret_env`` and credential-like vars."""
    names = [*config.secret_env]
    if config.api_key_env:
        names.append(config.api_key_env)
    return env_secret_values(names)


# --------------------------------------------------------------------------- spellings
#
# What a run writes escapes text on its way out: the judge prompt embeds the transcript as
# JSON (tool arguments and tool results are JSON strings already, so they end up escaped
# twice), rule checks quote values with ``!r``, a tool error is ``repr`` of an exception put
# into a JSON tool message, and some lines collapse whitespace. A secret with a quote, a
# backslash, a newline or non-ASCII characters no longer reads as itself there, so each
# secret is matched in every spelling those escapes can give it, up to three deep.


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _json_ascii(text: str) -> str:
    return json.dumps(text)[1:-1]


def _repr_body(quote: str) -> Callable[[str], str]:
    """``repr(text)[1:-1]`` as if quoted with ``quote``: Python picks the quote from the
    whole string, so a secret inside a larger string may be spelt either way."""

    def escape(text: str) -> str:
        return "".join("\\" + char if char in (quote, "\\") else repr(char)[1:-1] for char in text)

    return escape


def _url(safe: str, plus: bool = False) -> Callable[[str], str]:
    def escape(text: str) -> str:
        try:
            return quote_plus(text, safe=safe) if plus else quote(text, safe=safe)
        except UnicodeEncodeError:  # a lone surrogate (a non-UTF-8 env value): no URL has it
            return text

    return escape


def _collapsed(text: str) -> str:
    """One-line renderings (``" ".join(text.split())``) turn a newline into a space."""
    return " ".join(text.split())


#: Each turns text into the spelling one of our outputs gives it.
ESCAPES: tuple[Callable[[str], str], ...] = (
    _json,
    _json_ascii,
    _repr_body("'"),
    _repr_body('"'),
    _url("/"),
    _url(""),
    _url("", plus=True),
    _collapsed,
)
#: JSON in a tool message, in the judge's JSON transcript: three escapes deep.
ESCAPE_DEPTH = 3
# Characters no escape above changes: a run of them is in every spelling of a secret.
_UNESCAPED = re.compile(r"[A-Za-z0-9_.~-]+")


def secret_spellings(secret: str) -> tuple[str, ...]:
    """``secret`` as it can appear in what a run writes, longest first.

    Raw, then every composition of up to :data:`ESCAPE_DEPTH` of :data:`ESCAPES`: JSON
    (with and without ``ensure_ascii``), ``repr`` in either quote style, URL encoding
    (``quote``, ``quote`` with nothing safe, ``quote_plus``) and whitespace collapsed.
    A plain ``[A-Za-z0-9_.~-]`` secret has one spelling; one with quotes, backslashes,
    a newline and non-ASCII characters has about a hundred.
    """
    found = {secret}
    level = {secret}
    for _ in range(ESCAPE_DEPTH):
        level = {escape(text) for text in level for escape in ESCAPES} - found
        found |= level
    usable = (text for text in found if len(text) >= _MIN_SECRET_LENGTH)
    return tuple(sorted(usable, key=lambda text: (-len(text), text)))


@dataclass(frozen=True)
class _Secret:
    """One secret's spellings as one regex, and a substring every spelling contains."""

    anchor: str
    spellings: re.Pattern[str]


@functools.lru_cache(maxsize=256)
def _compiled(secret: str) -> _Secret | None:
    """The secret's spellings, compiled once per process: the gateway, the cassettes and
    the run's :class:`Redactor` each hold a secret set, mostly of the same secrets (a
    3 KB private key takes about 0.2 s to compile)."""
    if len(secret) < _MIN_SECRET_LENGTH:
        return None
    # The longest unescaped run: "anchor in text" is a fast test that most strings fail,
    # so the regex runs only where a spelling may be.
    anchor = max(_UNESCAPED.findall(secret), key=len, default="")
    alternatives = "|".join(re.escape(text) for text in secret_spellings(secret))
    return _Secret(anchor, re.compile(alternatives))  # longest first: the whole spelling


class _Scrubber:
    """A secret set and patterns, compiled once: redacting is then one substring test per
    secret and one regex search per pattern for a string that holds none of them."""

    def __init__(self, secrets: tuple[str, ...], patterns: tuple[str, ...]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        ordered = sorted(set(secrets), key=lambda secret: (-len(secret), secret))
        self.secrets = [compiled for s in ordered if (compiled := _compiled(s)) is not None]
        # Only the user's own patterns defeat the fast path of may_change (no hints for them).
        self.custom_patterns = bool(set(patterns) - set(DEFAULT_SECRET_PATTERNS))
        self.patterns = [
            re.compile(p) for p in dict.fromkeys((*DEFAULT_SECRET_PATTERNS, *patterns))
        ]

    def text(self, text: str) -> str:
        """``text`` redacted; ``text`` itself (even a str subclass, an enum) when unchanged."""
        redacted = text
        for secret in self.secrets:
            if secret.anchor in redacted:
                redacted = secret.spellings.sub(REDACTED, redacted)
        for pattern in self.patterns:
            redacted = pattern.sub(REDACTED, redacted)
        return text if redacted == text else redacted

    def may_change(self, model: BaseModel, exclude: set[str] | None = None) -> bool:
        """Whether redacting ``model`` might change it; False only when it surely would not.

        One JSON dump (pydantic's, in Rust) and a substring test per secret are about 20
        times cheaper than walking every string of a conversation, and almost every
        conversation holds no secret: every spelling of a secret contains its anchor, and
        a default pattern's match its hint, as JSON escaping leaves them as they are.
        """
        if self.custom_patterns or any(not secret.anchor for secret in self.secrets):
            return True
        try:
            dumped = model.model_dump_json(exclude=exclude)
        except Exception:  # something in a database pydantic cannot serialize: walk it
            return True
        return self._may_be_in(dumped)

    def may_change_data(self, data: Any) -> bool:
        """:meth:`may_change` for JSON-like data."""
        if self.custom_patterns or any(not secret.anchor for secret in self.secrets):
            return True
        try:
            dumped = json.dumps(data, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # e.g. tuple keys: walk it
            return True
        return self._may_be_in(dumped)

    def _may_be_in(self, dumped: str) -> bool:
        return any(secret.anchor in dumped for secret in self.secrets) or any(
            hint.search(dumped) for hint in _DEFAULT_PATTERN_HINTS
        )

    def data(self, data: Any) -> Any:
        """Every string of JSON-like data (keys included) redacted; ``data`` itself, not a
        copy, when nothing in it needed redacting (so callers can skip rebuilding)."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, Mapping):
            items = [(self.data(key), self.data(value)) for key, value in data.items()]
            if isinstance(data, dict) and all(
                new_key is key and new_value is value
                for (new_key, new_value), (key, value) in zip(items, data.items(), strict=True)
            ):
                return data
            return dict(items)
        if isinstance(data, (list, tuple)):
            redacted = [self.data(item) for item in data]
            if all(new is old for new, old in zip(redacted, data, strict=True)):
                return data
            return redacted if isinstance(data, list) else tuple(redacted)
        return data


@functools.lru_cache(maxsize=32)
def _scrubber(secrets: tuple[str, ...], patterns: tuple[str, ...]) -> _Scrubber:
    """Compiled once per secret set: the gateway and every result redact with the same."""
    return _Scrubber(secrets, patterns)


def redact(text: str, secrets: Iterable[str] = (), patterns: Iterable[str] = ()) -> str:
    """``text`` with each secret, in each of its :func:`secret_spellings`, and each pattern
    match replaced by ``[REDACTED]``.

    The default patterns (``sk-...`` keys, ``Bearer ...`` tokens) always apply. Redact the
    final text, or text before an escape that cannot spell a secret anew: a truncated or
    re-wrapped secret is no longer found.
    """
    return _scrubber(tuple(secrets), tuple(patterns)).text(text)


def redact_data(data: Any, secrets: Iterable[str] = (), patterns: Iterable[str] = ()) -> Any:
    """:func:`redact` applied to every string (keys included) of JSON-like data.

    Returns ``data`` itself when nothing in it needed redacting: do not mutate the result.
    """
    return _scrubber(tuple(secrets), tuple(patterns)).data(data)


@dataclass(frozen=True)
class Redactor:
    """The run's secrets and patterns, applied to what it reports (not only to cassettes).

    A transcript can carry a secret: an agent reading out a token, a user told a key. The
    judges see the conversation as it happened; every report (failure text, JSON results,
    JUnit, Allure, the GitHub summary) is made from the redacted copy.
    """

    secrets: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @classmethod
    def for_config(cls, config: LLMConfig) -> Redactor:
        return cls(tuple(secret_values(config)), tuple(config.secret_patterns))

    @property
    def _scrubber(self) -> _Scrubber:
        return _scrubber(self.secrets, self.patterns)

    def text(self, text: str) -> str:
        """:func:`redact` with the run's secrets and patterns."""
        return self._scrubber.text(text)

    def result(self, result: EventResult) -> EventResult:
        """``result`` with its conversation, verdicts and event redacted.

        The event too: failure reports and Allure print its scenario and metadata, and the
        results file keeps it whole (what ``agentsim label`` makes a calibration case of),
        so a user's script or fact holding a secret must not reach it either.
        """
        return result.model_copy(
            update={
                "event": self._event(result.event),
                "conversation": self._conversation(result.conversation),
                "policies": [self._model(policy) for policy in result.policies],
            }
        )

    def _event(self, event: Event) -> Event:
        """The event with every string redacted; itself when nothing needed it. Where it
        is loaded from (file, line, whether generated) stays with it."""
        scrubber = self._scrubber
        if not scrubber.may_change(event):
            return event
        data = event.model_dump()
        new = scrubber.data(data)
        if new is data:
            return event
        try:
            redacted = Event.model_validate(new)
        except ValidationError:  # a secret in an id: keep what may be written, redacted
            redacted = event.model_copy(
                update={
                    "scenario": scrubber.data(event.scenario),
                    "metadata": scrubber.data(event.metadata),
                    "user": type(event.user).model_validate(scrubber.data(data["user"])),
                    "db": scrubber.data(event.db),
                }
            )
        redacted.__pydantic_private__ = dict(event.__pydantic_private__ or {})
        return redacted

    def _conversation(self, conversation: Conversation) -> Conversation:
        """The conversation with what reports write redacted: transcript, tool calls,
        error, and the database changes. The two whole databases are never written (a
        report shows their changes), so they are neither searched nor copied: with a
        multi-MB database that was most of the cost of every event."""
        scrubber = self._scrubber
        redacted = conversation
        if scrubber.may_change(conversation, exclude=_WHOLE_DBS):
            data = conversation.model_dump(exclude=_WHOLE_DBS)
            new = scrubber.data(data)
            if new is not data:
                redacted = type(conversation).model_validate(
                    {**new, "initial_db": conversation.initial_db}
                )
        before, after = changes = conversation.db_changes()
        if (before or after) and scrubber.may_change_data(changes):
            changes = (scrubber.data(before), scrubber.data(after))
        if redacted is not conversation or changes[0] is not before or changes[1] is not after:
            # The final database is then made from the redacted changes, as reports are.
            redacted = redacted.with_db_changes(changes)
        return redacted

    def _model(self, model: T) -> T:
        if not self._scrubber.may_change(model):
            return model
        # Python mode, not JSON: an int key or a tuple in a tool result stays what it was.
        data = model.model_dump()
        redacted = self._scrubber.data(data)
        # Nothing to redact (the common case): no copy to validate.
        return model if redacted is data else type(model).model_validate(redacted)
