"""Secrets never reach what a run writes: the values and patterns to redact, and how."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from pydantic import BaseModel

from pytest_agentsim.core.models import EventResult
from pytest_agentsim.llm.messages import LLMConfig

if TYPE_CHECKING:
    pass


T = TypeVar("T", bound=BaseModel)
REDACTED = "[REDACTED]"
# Shapes of credentials that must never reach a cassette even when no env var names them.
# ``\b`` keeps words like "risk-assessment" intact.
DEFAULT_SECRET_PATTERNS = (r"\bsk-[A-Za-z0-9_-]{8,}", r"(?i)\bbearer\s+\S+")
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


def redact(text: str, secrets: Iterable[str] = (), patterns: Iterable[str] = ()) -> str:
    """``text`` with each secret value and each pattern match replaced by ``[REDACTED]``.

    The default patterns (``sk-...`` keys, ``Bearer ...`` tokens) always apply.
    """
    # Longest first, so a secret containing another is replaced whole.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    for pattern in (*DEFAULT_SECRET_PATTERNS, *patterns):
        text = re.sub(pattern, REDACTED, text)
    return text


def redact_data(data: Any, secrets: Sequence[str] = (), patterns: Sequence[str] = ()) -> Any:
    """:func:`redact` applied to every string (keys included) of JSON-like data."""
    if isinstance(data, str):
        return redact(data, secrets, patterns)
    if isinstance(data, Mapping):
        return {
            redact_data(key, secrets, patterns): redact_data(value, secrets, patterns)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [redact_data(item, secrets, patterns) for item in data]
    if isinstance(data, tuple):
        return tuple(redact_data(item, secrets, patterns) for item in data)
    return data


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

    def result(self, result: EventResult) -> EventResult:
        """``result`` with its conversation and verdicts redacted (the event is the user's own)."""
        return result.model_copy(
            update={
                "conversation": self._model(result.conversation),
                "policies": [self._model(policy) for policy in result.policies],
            }
        )

    def _model(self, model: T) -> T:
        # Python mode, not JSON: an int key or a tuple in a tool result stays what it was.
        data = redact_data(model.model_dump(), self.secrets, self.patterns)
        return type(model).model_validate(data)
