"""What goes to and comes from a model: requests, responses, usage, prices and errors."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import PrivateAttr
from pydantic import field_validator

from pytest_agentsim.core.models import LLMTally

if TYPE_CHECKING:
    pass


ErrorKind = Literal["transient", "invalid_output", "budget", "cassette_miss", "fatal"]

#: The parts a model plays in a run, each with its own reply-length limit.
RoleName = Literal["user", "judge", "agent", "generate"]
ROLE_NAMES: tuple[RoleName, ...] = ("user", "judge", "agent", "generate")

#: ``max_tokens`` sent on every call of a role unless the run says otherwise: enough for
#: any sane reply of that role (a user's message is short; a judge's verdicts, an agent's
#: tool calls and a generated event are longer), low enough that a local model that loops
#: stops, and within the output limit of every common model (4096 for the smallest).
DEFAULT_MAX_TOKENS: dict[RoleName, int] = {
    "user": 1024,
    "judge": 4096,
    "agent": 4096,
    "generate": 4096,
}
#: The limit of a call made outside any role (a Gateway of one's own, extract-policies).
FALLBACK_MAX_TOKENS = 4096


def max_tokens_text(limits: Mapping[RoleName, int]) -> str:
    """``user=1024, judge=4096, ...``: how the option is written, in role order."""
    return ", ".join(f"{role}={limits[role]}" for role in ROLE_NAMES)


def parse_max_tokens(text: str) -> dict[RoleName, int]:
    """The per-role limits of ``--agentsim-max-tokens``, over the defaults.

    Items are separated by commas or whitespace: ``N`` sets every role, ``role=N`` one
    (later items win, so ``2000, user=300`` is every role 2000 but the user 300). A bad
    item raises ValueError saying what was expected.
    """
    limits = dict(DEFAULT_MAX_TOKENS)
    text = re.sub(r"\s*=\s*", "=", text)  # 'judge = 2000' is 'judge=2000'
    items = [item for item in re.split(r"[,\s]+", text.strip()) if item]
    if not items:
        raise ValueError("expected a number of tokens or role=N items, got nothing")
    for item in items:
        role, sep, number = item.rpartition("=")
        try:
            value = int(number)
        except ValueError:
            value = 0
        if value < 1 or (sep and role not in ROLE_NAMES) or (sep and not role):
            raise ValueError(
                f"expected N or role=N items (roles: {', '.join(ROLE_NAMES)}; N an integer "
                f">= 1), got {item!r}"
            )
        if sep:
            limits[ROLE_NAMES[ROLE_NAMES.index(role)]] = value  # the RoleName it names
        else:
            limits = dict.fromkeys(ROLE_NAMES, value)
    return limits


# --------------------------------------------------------------------------- errors


class LLMError(Exception):
    """A model call that did not produce a usable answer; ``kind`` says why.

    ``transient``: the provider kept failing after every retry; ``invalid_output``: the
    reply did not fit the schema even after a repair; ``budget``: ``max_cost`` is spent;
    ``cassette_miss``: replay-only and nothing was recorded; ``fatal``: retrying cannot
    help (bad key, bad request, unknown model).
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


class BudgetExceeded(LLMError):
    def __init__(self, message: str) -> None:
        super().__init__("budget", message)


class CassetteMiss(LLMError):
    def __init__(self, message: str) -> None:
        super().__init__("cassette_miss", message)


class ResponseFormatRefused(LLMError):
    """The server does not support the request's ``response_format`` (llama.cpp answers 500
    to ``json_schema``): fatal for that request, but structured output can fall back to
    another mode, so the gateway tells it apart from other fatal errors."""

    def __init__(self, message: str, response_type: str) -> None:
        super().__init__("fatal", message)
        self.response_type = response_type


# --------------------------------------------------------------------------- models


class ModelPrice(BaseModel):
    """USD per million tokens, for models litellm's price map does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class RateLimit(BaseModel):
    """A provider's limits for one model, per minute: requests, and tokens (the prompt's,
    estimated, plus ``max_tokens``, as providers count them before a call)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class LLMConfig(BaseModel):
    """How to reach one model. The API key is named by an env var, never stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="litellm model string, e.g. openai/gpt-4o-mini")
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="Env var holding the API key")
    timeout: float = Field(default=60.0, gt=0, description="Seconds per HTTP attempt")
    max_attempts: int = Field(default=4, ge=1, description="Tries per call, the first included")
    max_tokens: int | None = Field(
        default=FALLBACK_MAX_TOKENS,
        ge=1,
        description="Sent as max_tokens when the request sets none, so a looping model "
        "stops; a limit like the timeout, not part of a cassette's key",
    )
    max_wait: float = Field(default=30.0, ge=0, description="Cap of one backoff sleep, seconds")
    concurrency: int = Field(default=4, ge=1, description="Calls in flight per event loop")
    max_cost: float | None = Field(default=None, ge=0, description="USD budget of the run")
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description="model -> price; wins over litellm's price map"
    )
    rate_limits: dict[str, RateLimit] = Field(
        default_factory=dict,
        description="model -> requests and tokens per minute; calls wait rather than exceed",
    )
    temperature: float | None = Field(default=0.0, description="None: the provider's default")
    secret_env: list[str] = Field(
        default_factory=list, description="More env vars whose values are secrets"
    )
    secret_patterns: list[str] = Field(
        default_factory=list, description="Regexes of more text to redact from cassettes"
    )

    @field_validator("secret_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return patterns


class LLMRequest(BaseModel):
    """One chat completion to make; ``None`` model/temperature take the config's."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(description="OpenAI chat format")
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = Field(
        default=None, description='OpenAI format, e.g. {"type": "json_schema", ...}'
    )
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    purpose: str = Field(
        default="other", description="judge, user, agent, edges...: for reports, not the key"
    )
    sample: int | None = Field(
        default=None,
        ge=1,
        description="The n-th repeat of an identical request (judge voting): part of the "
        "key, so each sample has its own recording",
    )


class LLMResponse(BaseModel):
    """One answered call: the assistant message (OpenAI format) and what it cost."""

    message: dict[str, Any] = Field(description="tool_calls carry JSON-string arguments")
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    replayed: bool = Field(default=False, description="Served from a cassette, no HTTP call")
    latency_seconds: float = 0.0
    attempts: int = Field(default=1, description="HTTP tries it took (0 when replayed)")

    @property
    def content(self) -> str:
        return str(self.message.get("content") or "")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        calls = self.message.get("tool_calls")
        return list(calls) if isinstance(calls, list) else []


class Usage(BaseModel):
    """What a gateway spent. Updated under a lock: asyncio tasks and threads share it."""

    calls: int = Field(default=0, description="Real HTTP calls that succeeded")
    replayed_calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_models: set[str] = Field(default_factory=set)
    budget_refusals: int = 0
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def add_call(self, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.cost_usd += cost_usd

    def add_replay(self) -> None:
        with self._lock:
            self.replayed_calls += 1

    def add_failure(self) -> None:
        with self._lock:
            self.failed_calls += 1

    def add_unpriced(self, model: str) -> None:
        with self._lock:
            self.unpriced_models.add(model)

    def is_unpriced(self, model: str) -> bool:
        with self._lock:
            return model in self.unpriced_models

    def tally(self) -> LLMTally:
        """A plain copy for results and reports."""
        with self._lock:
            return LLMTally(
                calls=self.calls,
                replayed_calls=self.replayed_calls,
                failed_calls=self.failed_calls,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
                cost_usd=self.cost_usd,
            )

    def refuse_if_spent(self, limit: float | None) -> None:
        """Raise BudgetExceeded (and count it) when ``limit`` is set and reached."""
        if limit is None:
            return
        with self._lock:
            if self.cost_usd < limit:
                return
            self.budget_refusals += 1
            spent = self.cost_usd
        raise BudgetExceeded(
            f"LLM budget spent: {usd(spent)} of {usd(limit)} "
            "(--agentsim-max-cost); no new calls are made"
        )


def usd(amount: float) -> str:
    """'$0.25', '$0.0000031': cents for ordinary sums, every digit for tiny budgets."""
    if amount >= 0.01 or amount == 0:
        return f"${amount:.2f}"
    return "$" + f"{amount:.10f}".rstrip("0")
