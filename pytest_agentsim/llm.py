"""The LLM gateway: the one module that talks to models (through litellm).

Every model call of pytest-agentsim (edge scoring, policy extraction, and later the LLM
user, judge and agent) goes through :class:`Gateway`, so retries, structured output,
token and cost accounting and the run's budget are decided in one place:

- litellm is imported lazily, with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` set first (no
  network fetch of the price map) and telemetry off, so a plain ``pytest`` never pays
  for it;
- transient failures (429, 5xx, timeouts, connection errors, an unreadable response) are
  retried by tenacity, honouring Retry-After, with exponential backoff and jitter, a
  bounded number of times; litellm's own retries are off so there is one retry layer;
- structured output is parsed into a pydantic model, with one repair call on invalid
  JSON; what still fails is an :class:`LLMError`, never a silent default;
- cost comes from litellm's price map, else from the ``prices`` setting, else 0 with the
  model listed as unpriced (an unknown model never crashes the run);
- with ``max_cost`` set, a call that would start after the budget is spent is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from typing import Literal
from typing import TypeVar

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError

T = TypeVar("T", bound=BaseModel)
ErrorKind = Literal["transient", "invalid_output", "budget", "fatal"]

_litellm: ModuleType | None = None
_import_lock = threading.Lock()


def load_litellm() -> ModuleType:
    """Import litellm on first use, offline-safe and quiet."""
    global _litellm
    with _import_lock:
        if _litellm is None:
            os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
            os.environ.setdefault("LITELLM_MODE", "PRODUCTION")  # no .env auto-loading
            import litellm

            litellm.telemetry = False
            litellm.suppress_debug_info = True
            _litellm = litellm
    return _litellm


class LLMError(Exception):
    """A model call that did not produce a usable answer; ``kind`` says why."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ModelPrice(BaseModel):
    """USD per million tokens, for models litellm's price map does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class LLMConfig(BaseModel):
    """How to reach one model. The API key is named by an env var, never stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="litellm model string, e.g. openai/gpt-4o-mini")
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="Env var holding the API key")
    timeout: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    max_wait: float = Field(default=30.0, ge=0, description="Cap of one backoff sleep, seconds")
    concurrency: int = Field(default=4, ge=1)
    max_cost: float | None = Field(default=None, ge=0, description="USD budget of the run")
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    temperature: float | None = 0.0


class LLMResponse(BaseModel):
    """One answered call: the assistant message (OpenAI format) and what it cost."""

    message: dict[str, Any]
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_seconds: float = 0.0
    attempts: int = 1

    @property
    def content(self) -> str:
        return str(self.message.get("content") or "")


class Usage(BaseModel):
    """What a gateway spent: counted under a lock, reported at the end of the run."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_models: set[str] = Field(default_factory=set)
    budget_refusals: int = 0


def _transient_types(litellm: ModuleType) -> tuple[type[BaseException], ...]:
    names = (
        "RateLimitError",
        "Timeout",
        "APIConnectionError",
        "ServiceUnavailableError",
        "InternalServerError",
        "APIError",
    )
    return tuple(getattr(litellm, name) for name in names if hasattr(litellm, name))


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (Retry-After), if it said."""
    headers: Any = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        headers = getattr(exc, "litellm_response_headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


class Gateway:
    """Calls one configured model; shares retries, accounting and the budget."""

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], Any] | None = None) -> None:
        self.config = config
        self.usage = Usage()
        self._lock = threading.Lock()
        self._sleep = sleep or asyncio.sleep
        self._semaphores: dict[int, asyncio.Semaphore] = {}

    # -- plumbing ------------------------------------------------------------------------

    def _semaphore(self) -> asyncio.Semaphore:
        """One semaphore per event loop (an asyncio.Semaphore is bound to its loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            semaphore = self._semaphores.get(id(loop))
            if semaphore is None:
                semaphore = asyncio.Semaphore(self.config.concurrency)
                self._semaphores = {id(loop): semaphore}
            return semaphore

    def _api_key(self) -> str:
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if key:
                return key
        return "sk-no-key-configured"  # local servers accept any key

    def _cost(self, litellm: ModuleType, raw: Any, model: str, prompt: int, output: int) -> float:
        try:
            return float(litellm.completion_cost(completion_response=raw, model=model))
        except Exception:  # litellm raises a plain Exception for unmapped models
            price = self.config.prices.get(model)
            if price is None:
                with self._lock:
                    self.usage.unpriced_models.add(model)
                return 0.0
            return (prompt * price.input_per_million + output * price.output_per_million) / 1e6

    def _check_budget(self) -> None:
        limit = self.config.max_cost
        with self._lock:
            if limit is not None and self.usage.cost_usd >= limit:
                self.usage.budget_refusals += 1
                raise LLMError(
                    "budget",
                    f"LLM budget spent: ${self.usage.cost_usd:.4f} of ${limit:.4f} "
                    "(--agentsim-max-cost); no new calls are made",
                )

    # -- calls ---------------------------------------------------------------------------

    async def acomplete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> LLMResponse:
        """One chat completion, retried on transient errors; raises LLMError otherwise."""
        from tenacity import AsyncRetrying
        from tenacity import RetryCallState
        from tenacity import retry_if_exception_type
        from tenacity import stop_after_attempt
        from tenacity import wait_exponential_jitter

        litellm = load_litellm()
        model = model or self.config.model
        self._check_budget()
        backoff = wait_exponential_jitter(max=self.config.max_wait)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after(exc) if exc is not None else None
            if asked is not None:
                return min(asked, self.config.max_wait)
            return float(backoff(state))

        kwargs: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "api_key": self._api_key(),
            "timeout": self.config.timeout,
            "num_retries": 0,
            "max_retries": 0,
        }
        if self.config.api_base:
            kwargs["api_base"] = self.config.api_base
        if self.config.temperature is not None:
            kwargs["temperature"] = self.config.temperature
        if tools:
            kwargs["tools"] = list(tools)
        if response_format:
            kwargs["response_format"] = response_format

        started = time.monotonic()
        attempts = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_transient_types(litellm)),
            wait=wait,
            stop=stop_after_attempt(self.config.max_attempts),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async with self._semaphore():
                async for attempt in retrying:
                    with attempt:
                        attempts += 1
                        raw = await litellm.acompletion(**kwargs)
        except _transient_types(litellm) as exc:
            with self._lock:
                self.usage.failed_calls += 1
            raise LLMError(
                "transient",
                f"{model}: gave up after {attempts} attempts: {_one_line(exc)}",
            ) from exc
        except Exception as exc:
            with self._lock:
                self.usage.failed_calls += 1
            raise LLMError("fatal", f"{model}: {_one_line(exc)}") from exc

        message = raw.choices[0].message.model_dump(exclude_none=True)
        message.setdefault("content", None)
        usage = getattr(raw, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        output = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = self._cost(litellm, raw, model, prompt, output)
        with self._lock:
            self.usage.calls += 1
            self.usage.prompt_tokens += prompt
            self.usage.completion_tokens += output
            self.usage.cost_usd += cost
        return LLMResponse(
            message={k: v for k, v in message.items() if k in ("role", "content", "tool_calls")},
            model=model,
            prompt_tokens=prompt,
            completion_tokens=output,
            cost_usd=cost,
            latency_seconds=time.monotonic() - started,
            attempts=attempts,
        )

    async def astructured(
        self, messages: Sequence[dict[str, Any]], schema: type[T], *, model: str | None = None
    ) -> tuple[T, LLMResponse]:
        """A reply parsed into ``schema``; one repair call on invalid output, then LLMError."""
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
        }
        conversation = list(messages)
        problem = ""
        for attempt in range(2):
            response = await self.acomplete(
                conversation, response_format=response_format, model=model
            )
            try:
                return schema.model_validate_json(_strip_fences(response.content)), response
            except ValidationError as exc:
                problem = "; ".join(
                    f"{'.'.join(str(p) for p in error['loc']) or 'reply'}: {error['msg']}"
                    for error in exc.errors()[:5]
                )
            if attempt == 0:
                conversation += [
                    {"role": "assistant", "content": response.content},
                    {
                        "role": "user",
                        "content": "That reply is not valid JSON for the schema "
                        f"{schema.__name__}: {problem}. Answer again with the corrected "
                        "JSON object only.",
                    },
                ]
        raise LLMError(
            "invalid_output",
            f"{model or self.config.model}: no valid {schema.__name__} after one repair: {problem}",
        )

    def structured(
        self, messages: Sequence[dict[str, Any]], schema: type[T], *, model: str | None = None
    ) -> tuple[T, LLMResponse]:
        """:meth:`astructured` from synchronous code (not from inside an event loop)."""
        return asyncio.run(self.astructured(messages, schema, model=model))


def _strip_fences(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence; take what is inside."""
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.S)
    return fenced.group(1) if fenced else text


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)
