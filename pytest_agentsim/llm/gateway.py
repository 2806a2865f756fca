"""The LLM gateway: the one module that talks to models (through litellm).

Every model call of pytest-agentsim (edge scoring, policy extraction, the LLM user, judge
and agent) goes through :class:`Gateway`, so retries, structured output, record/replay,
token and cost accounting and the run's budget are decided in one place:

- litellm is imported lazily, with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` set first (no
  network fetch of the price map at import) and telemetry off, so a plain ``pytest``
  never pays for it; no other module imports litellm;
- transient failures (429, 5xx, timeouts, connection errors, an unreadable response body)
  are retried by tenacity, honouring Retry-After, else with exponential backoff and
  jitter, a bounded number of times; litellm's own retries are off, so there is exactly
  one retry layer and the attempt count is ours;
- at most ``concurrency`` calls are in flight (per event loop, shared by every view); a
  call sleeping before its retry gives its slot up meanwhile, and a 429 pauses every call
  to that model (endpoint and model) for as long as the rate-limited one waits, since
  they would only be refused too; with ``rate_limits`` for a model, its calls wait
  (without a slot) rather than exceed its requests or tokens per minute;
- structured output is parsed into a pydantic model, with one repair call on invalid
  output; what still fails is an :class:`LLMError`, never a silent default. It is asked
  as ``response_format: json_schema``; a server that refuses that (llama.cpp's answers
  500 naming it) is asked with ``json_object`` and the schema in the prompt, then with the
  schema in the prompt alone, and the mode that worked is remembered per endpoint and
  model for the rest of the run;
- a :class:`~pytest_agentsim.llm.cassettes.Cassette` replays recorded calls (free, offline)
  and records new ones;
- every call sends ``max_tokens`` (the request's, else the config's limit for its role), so
  a local model that loops stops; the config's limit, like the timeout, is not part of a
  cassette's key;
- cost comes from the ``prices`` setting, else litellm's price map, else 0 with the model
  listed as unpriced (an unknown model never crashes the run);
- with ``max_cost`` set, a call that would start after the budget is spent is refused;
- API keys are read from the environment at call time and never stored, logged or
  recorded: :func:`redact` scrubs them (and anything that looks like a key) from error
  messages and cassettes.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from datetime import timezone
from types import ModuleType
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal
from typing import TypeVar

from pydantic import BaseModel
from pydantic import ValidationError

from pytest_agentsim.llm.messages import LLMConfig
from pytest_agentsim.llm.messages import LLMError
from pytest_agentsim.llm.messages import LLMRequest
from pytest_agentsim.llm.messages import LLMResponse
from pytest_agentsim.llm.messages import RateLimit
from pytest_agentsim.llm.messages import ResponseFormatRefused
from pytest_agentsim.llm.messages import Usage
from pytest_agentsim.llm.redaction import redact
from pytest_agentsim.llm.redaction import secret_values

if TYPE_CHECKING:
    from tenacity import AsyncRetrying
    from tenacity import RetryCallState

    from pytest_agentsim.llm.cassettes import Cassette

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")
Sleep = Callable[[float], Awaitable[None]]
#: A check of a parsed reply beyond its schema: a problem to repair, or None if it is fine.
ReplyCheck = Callable[[T], "str | None"]

#: How structured output is asked, best first: the server enforces the schema
#: (``json_schema``), the server enforces JSON and the prompt gives the schema
#: (``json_object``), or only the prompt asks (``prompt``); the reply is validated always.
StructuredMode = Literal["json_schema", "json_object", "prompt"]
STRUCTURED_MODES: tuple[StructuredMode, ...] = ("json_schema", "json_object", "prompt")

logger = logging.getLogger(__name__)

_NO_KEY = "sk-no-key"  # local servers (Ollama, vLLM, the fake server) accept any key

_litellm: ModuleType | None = None
_import_lock = threading.Lock()


def load_litellm() -> ModuleType:
    """Import litellm on first use, offline-safe and quiet.

    ``LITELLM_LOCAL_MODEL_COST_MAP`` is forced: otherwise the import fetches the price map
    over HTTP (seconds of timeout on an offline CI runner). ``LITELLM_MODE=PRODUCTION``
    stops litellm from loading a ``.env`` file into our process.
    """
    global _litellm
    with _import_lock:
        if _litellm is None:
            os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
            os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
            import litellm

            litellm.telemetry = False
            litellm.suppress_debug_info = True
            _litellm = litellm
    return _litellm


_frozen = False


def _freeze_once() -> None:
    """Move what the process holds after its first model call out of the garbage
    collector's sight (:func:`gc.freeze`), once.

    litellm is hundreds of thousands of long-lived objects, some imported only by the
    first call; every full collection rescans them all (about 100 ms each, several a
    minute in a run making model calls), about a fifth of the client's CPU per call. Frozen,
    they are never scanned again; what was alive then stays alive, as litellm does anyway.
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    import gc

    gc.freeze()


# --------------------------------------------------------------------------- errors from litellm


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After``), if it said.

    litellm keeps the provider's httpx response on the exception (``exc.response``) and
    its headers also as ``exc.litellm_response_headers``. Both the delay-seconds and the
    HTTP-date forms are understood, and OpenAI's ``retry-after-ms``.
    """
    headers: Any = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        headers = getattr(exc, "litellm_response_headers", None)
    if not headers:
        return None
    lower = {str(name).lower(): str(value) for name, value in headers.items()}
    try:
        if "retry-after-ms" in lower:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
        if "retry-after" not in lower:
            return None
        return max(0.0, float(lower["retry-after"]))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(lower.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same request may succeed.

    A 200 whose body is not JSON reaches us as ``litellm.InternalServerError`` (litellm's
    OpenAI client wraps the decode error and maps it to status 500), so it is retried
    like any 5xx. Connection refused is also an ``InternalServerError``/
    ``APIConnectionError``; a 504 is a ``litellm.Timeout``.
    """
    litellm = load_litellm()
    transient = (
        litellm.RateLimitError,
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.ServiceUnavailableError,
        litellm.InternalServerError,
        litellm.BadGatewayError,
    )
    if isinstance(exc, transient):
        return True
    status = getattr(exc, "status_code", None)
    # Other 5xx (520, 529 "overloaded") arrive as a plain litellm.APIError.
    return isinstance(exc, litellm.APIError) and isinstance(status, int) and status >= 500


_RESPONSE_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object", re.IGNORECASE)


def refuses_response_format(exc: BaseException) -> bool:
    """Whether an error says the server cannot do the request's ``response_format``.

    llama.cpp's server answers ``json_schema`` with HTTP 500 ``response_format type must
    be one of "text" or "json_object", but got: json_schema`` (newer servers, 400): retrying
    that cannot help, and a 5xx would otherwise be retried as transient. Only meaningful
    for a request that sent a ``response_format``; rate limits and timeouts never are.
    """
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not 400 <= status < 600 or status in (408, 429):
        return False
    return bool(_RESPONSE_FORMAT_WORDS.search(str(exc)))


def _one_line(exc: BaseException, redact_text: Callable[[str], str] | None = None) -> str:
    """``Name: message`` on one line; litellm's own ``litellm.Name: Name:`` prefixes of
    the message are dropped (they only repeat the name).

    ``redact_text`` applies to the whole message first: once joined onto one line and
    cut at 300 characters, a secret with a newline, or cut in two, is no longer found.
    """
    name = type(exc).__name__
    message = str(exc) if redact_text is None else redact_text(str(exc))
    text = " ".join(message.split())
    for prefix in (f"litellm.{name}: ", f"{name}: "):
        while text.startswith(prefix):
            text = text[len(prefix) :]
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{name}: {text}"


def _plain(value: Any) -> Any:
    """A litellm object (pydantic v2 or v1 style) as JSON-like builtins."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "dict"):
        return value.dict()
    return value


def _assistant_message(raw: Any) -> dict[str, Any]:
    """The first choice's message in OpenAI format: role, content, tool_calls (JSON args)."""
    message = _plain(raw.choices[0].message)
    result: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = []
    for call in message.get("tool_calls") or []:
        call = _plain(call)
        function = _plain(call.get("function") or {})
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, sort_keys=True)
        calls.append(
            {
                "id": str(call.get("id") or ""),
                "type": "function",
                "function": {"name": str(function.get("name") or ""), "arguments": arguments},
            }
        )
    if calls:
        result["tool_calls"] = calls
    return result


def _schema_name(schema: type[BaseModel]) -> str:
    """OpenAI wants ``^[a-zA-Z0-9_-]{1,64}$``; generic models have brackets in the name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64] or "Output"


def _strip_fences(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence; take what is inside."""
    fenced = re.fullmatch(r"\s*```[A-Za-z]*\s*(.*?)\s*```\s*", text, re.S)
    return fenced.group(1) if fenced else text


@functools.lru_cache(maxsize=256)
def _json_schema_text(schema: type[BaseModel]) -> str:
    return json.dumps(schema.model_json_schema(), ensure_ascii=False)


def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """``schema.model_json_schema()``, built once per model class (pydantic builds it anew
    each time, a millisecond or more, and structured output needs it on every call); a
    fresh copy each time, as the request that carries it may be changed downstream."""
    schema_dict: dict[str, Any] = json.loads(_json_schema_text(schema))
    return schema_dict


def _schema_instruction(schema: type[BaseModel]) -> str:
    """The schema in words, for servers that will not take it as ``response_format``."""
    text = json.dumps(_json_schema(schema), sort_keys=True, ensure_ascii=False)
    return (
        "Reply with one JSON object only, no other text and no code fence. It must be "
        f"valid against this JSON Schema:\n{text}"
    )


def _in_mode(request: LLMRequest, schema: type[BaseModel], mode: StructuredMode) -> LLMRequest:
    """``request`` asking for ``schema`` in ``mode``.

    ``json_schema`` sends the schema as ``response_format`` (not strict: OpenAI's strict
    mode rejects most pydantic schemas, with optional fields and defaults, and validation
    happens here anyway). The other modes put the schema in the first system message
    (one is added if there is none: local chat templates often accept only one, first).
    """
    if mode == "json_schema":
        response_format: dict[str, Any] | None = {
            "type": "json_schema",
            "json_schema": {
                "name": _schema_name(schema),
                "schema": _json_schema(schema),
                "strict": False,
            },
        }
        return request.model_copy(update={"response_format": response_format})
    messages = [dict(message) for message in request.messages]
    instruction = _schema_instruction(schema)
    first = messages[0] if messages else None
    if (
        first is not None
        and first.get("role") == "system"
        and isinstance(first.get("content"), str)
    ):
        first["content"] = f"{first['content']}\n\n{instruction}"
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    response_format = {"type": "json_object"} if mode == "json_object" else None
    return request.model_copy(update={"messages": messages, "response_format": response_format})


def _validation_problem(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'reply'}: {error['msg']}"
        for error in exc.errors(include_url=False)[:5]
    )


# --------------------------------------------------------------------------- gateway


def _completion_kwargs(
    request: LLMRequest, config: LLMConfig, model: str, api_key: str
) -> dict[str, Any]:
    """litellm's arguments for one request; only the values that are set."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": request.messages,
        "api_key": api_key,
        "timeout": config.timeout,
        # One retry layer (tenacity): litellm's and the OpenAI SDK's are off.
        "num_retries": 0,
        "max_retries": 0,
    }
    optional = {
        "api_base": config.api_base,
        "temperature": request.temperature,
        # The request's own limit (part of its cassette key), else the role's safety limit.
        "max_tokens": request.max_tokens or config.max_tokens,
        "tools": request.tools or None,
        "response_format": request.response_format,
    }
    kwargs.update({name: value for name, value in optional.items() if value is not None})
    return kwargs


def is_rate_limit(exc: BaseException) -> bool:
    """A 429: the provider's limit for the model, not a fault of this one request."""
    return getattr(exc, "status_code", None) == 429 or isinstance(
        exc, load_litellm().RateLimitError
    )


def _retrying(
    config: LLMConfig,
    model: str,
    sleep: Sleep,
    redact_text: Callable[[str], str],
    retryable: Callable[[BaseException], bool] = is_transient,
    on_rate_limit: Callable[[float], None] | None = None,
) -> AsyncRetrying:
    """The retry policy of one call: transient errors only, Retry-After honoured (capped at
    ``max_wait``), else exponential backoff with jitter; each retry logged, redacted;
    ``on_rate_limit`` is told the wait after a 429."""
    from tenacity import AsyncRetrying
    from tenacity import retry_if_exception
    from tenacity import stop_after_attempt
    from tenacity import wait_exponential_jitter

    backoff = wait_exponential_jitter(multiplier=0.5, max=config.max_wait)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after(exc) if exc is not None else None
        if asked is not None:
            return min(asked, config.max_wait)
        return float(backoff(state))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        seconds = state.next_action.sleep if state.next_action is not None else 0.0
        if on_rate_limit is not None and exc is not None and is_rate_limit(exc):
            on_rate_limit(seconds)
        logger.warning(
            "%s: attempt %d failed (%s); retrying in %.2fs",
            model,
            state.attempt_number,
            _one_line(exc, redact_text) if exc is not None else "?",
            seconds,
        )

    return AsyncRetrying(
        retry=retry_if_exception(retryable),
        wait=wait,
        stop=stop_after_attempt(config.max_attempts),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def _cost(
    litellm: ModuleType,
    raw: Any,
    model: str,
    tokens: tuple[int, int],
    config: LLMConfig,
    usage: Usage,
) -> float:
    """USD of one call: the configured price, else litellm's map, else 0 (noted as unpriced).

    litellm prices each response already (its ``response_cost``), and a model missing
    from its map is searched for at length (milliseconds a call): that cost is taken as
    is, and a model found unpriced once is not looked up again.
    """
    prompt, output = tokens
    price = config.prices.get(model)
    if price is not None:
        return (prompt * price.input_per_million + output * price.output_per_million) / 1e6
    if usage.is_unpriced(model):
        return 0.0
    known = (getattr(raw, "_hidden_params", None) or {}).get("response_cost")
    if isinstance(known, (int, float)) and not isinstance(known, bool):
        return float(known)
    try:
        return float(litellm.completion_cost(completion_response=raw, model=model))
    except Exception:  # ModelNotMappedError, or a plain Exception in older versions
        usage.add_unpriced(model)
        return 0.0


class Pauses:
    """Until when calls to each (endpoint, model) wait: a 429 for one is a 429 for all.

    Shared by every view of a gateway, and across threads and event loops, so it keeps
    ``time.monotonic()`` deadlines rather than asyncio objects.
    """

    def __init__(self) -> None:
        self._until: dict[tuple[str | None, str], float] = {}
        self._lock = threading.Lock()

    def hold(self, key: tuple[str | None, str], seconds: float) -> float:
        """Pause ``key`` for ``seconds`` from now (never shortening a longer pause); the
        deadline it is paused until."""
        with self._lock:
            until = max(self._until.get(key, 0.0), time.monotonic() + seconds)
            self._until[key] = until
            return until

    def until(self, key: tuple[str | None, str]) -> float:
        with self._lock:
            return self._until.get(key, 0.0)


class RateLimiter:
    """Books each call's start within its model's per-minute limits (a sliding minute).

    A call asks when it may start; the answer is booked at once, so calls asking together
    are spread over the minute instead of all waiting for the same moment. Shared by
    every view of a gateway, across threads and event loops.
    """

    WINDOW = 60.0

    def __init__(self) -> None:
        self._booked: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def reserve(self, model: str, limit: RateLimit, tokens: int) -> float:
        """Seconds from now until a call of ``tokens`` to ``model`` may start (0: now)."""
        with self._lock:
            now = time.monotonic()
            booked = self._booked.setdefault(model, deque())
            while booked and booked[0][0] <= now - self.WINDOW:
                booked.popleft()
            start = max(now, booked[-1][0]) if booked else now
            if limit.tokens_per_minute is not None:
                tokens = min(tokens, limit.tokens_per_minute)  # else it could never start
            while True:
                window = [entry for entry in booked if entry[0] > start - self.WINDOW]
                too_many = (
                    limit.requests_per_minute is not None
                    and len(window) >= limit.requests_per_minute
                )
                too_much = (
                    limit.tokens_per_minute is not None
                    and sum(used for _, used in window) + tokens > limit.tokens_per_minute
                )
                if not (too_many or too_much):
                    break
                start = window[0][0] + self.WINDOW  # when the oldest booking leaves the minute
            booked.append((start, tokens))
            return start - now


def _estimated_tokens(request: LLMRequest, config: LLMConfig) -> int:
    """What a provider counts against tokens per minute before the call: the prompt
    (about four characters a token) plus the most the reply may take."""
    prompt = len(json.dumps(request.messages, default=str)) // 4
    return prompt + (request.max_tokens or config.max_tokens or 0)


class Gateway:
    """Calls the configured model; shares retries, replay, accounting and the budget.

    ``sleep`` replaces ``asyncio.sleep`` for the backoff waits (tests record them instead
    of sleeping). One gateway may be used from many tasks, threads and successive
    ``asyncio.run`` calls. ``usage`` is shared by every :meth:`view` of a gateway: the
    run's budget and totals; a view's ``tally`` counts only the calls made through it
    (one event's).
    """

    def __init__(
        self,
        config: LLMConfig,
        cassette: Cassette | None = None,
        *,
        sleep: Sleep | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.config = config
        self.cassette = cassette
        self.usage = usage if usage is not None else Usage()
        self.tally: Usage | None = None
        self._sleep: Sleep = sleep or asyncio.sleep
        self._lock = threading.Lock()
        # An asyncio.Semaphore belongs to the loop it is first awaited in, and every
        # asyncio.run makes a new loop: one semaphore per live loop.
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._semaphores = weakref.WeakKeyDictionary()
        # (api_base, model) -> the structured-output mode that server accepts, shared by
        # every view: learnt once per run, not once per event.
        self._structured_modes: dict[tuple[str | None, str], StructuredMode] = {}
        self._pauses = Pauses()
        self._limiter = RateLimiter()
        if cassette is not None:
            cassette.add_secrets(secret_values(config), config.secret_patterns)

    def view(
        self,
        *,
        config: LLMConfig | None = None,
        cassette: Cassette | None = None,
        tally: Usage | None = None,
    ) -> Gateway:
        """A gateway sharing this one's usage, budget and concurrency limit.

        It may call another model or endpoint (``config``), record into another cassette
        (one per event) and count its own calls into ``tally`` as well.
        """
        view = Gateway(config or self.config, cassette, sleep=self._sleep, usage=self.usage)
        view.tally = tally
        view._lock = self._lock
        view._semaphores = self._semaphores
        view._structured_modes = self._structured_modes
        view._pauses = self._pauses
        view._limiter = self._limiter
        return view

    def _counters(self) -> list[Usage]:
        return [self.usage] if self.tally is None else [self.usage, self.tally]

    # -- plumbing ------------------------------------------------------------------------

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            semaphore = self._semaphores.get(loop)
            if semaphore is None:
                semaphore = asyncio.Semaphore(self.config.concurrency)
                self._semaphores[loop] = semaphore
            return semaphore

    async def _take_slot(self, key: tuple[str | None, str], slept_until: float) -> None:
        """A place among the calls in flight, once no 429 pauses ``key``.

        The pause is slept without a slot (others keep their calls going), and checked
        again once a slot is had: a 429 may have come while this call queued. Each pause
        is slept once (``slept_until``), so a test's instant ``sleep`` cannot spin.
        """
        semaphore = self._semaphore()
        while True:
            until = self._pauses.until(key)
            delay = until - time.monotonic()
            if until > slept_until and delay > 0:
                await self._sleep(delay)
                slept_until = until
                continue
            await semaphore.acquire()
            until = self._pauses.until(key)
            if until > slept_until and until > time.monotonic():
                semaphore.release()
                continue
            return

    def _api_key(self) -> str:
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if key:
                return key
        return _NO_KEY

    def _redact(self, text: str) -> str:
        return redact(text, secret_values(self.config), self.config.secret_patterns)

    def _resolve(self, request: LLMRequest) -> LLMRequest:
        """The request with the config's model and temperature filled in (what is keyed)."""
        update: dict[str, Any] = {}
        if request.model is None:
            update["model"] = self.config.model
        if request.temperature is None and self.config.temperature is not None:
            update["temperature"] = self.config.temperature
        return request.model_copy(update=update) if update else request

    # -- calls ---------------------------------------------------------------------------

    async def acomplete(self, request: LLMRequest | Sequence[Mapping[str, Any]]) -> LLMResponse:
        """One chat completion: replayed, or made with retries; raises LLMError otherwise.

        A plain list of messages is accepted as ``LLMRequest(messages=...)``.
        """
        return await self._complete(request, fallback=False)

    async def _complete(
        self, request: LLMRequest | Sequence[Mapping[str, Any]], *, fallback: bool
    ) -> LLMResponse:
        """:meth:`acomplete`; with ``fallback`` (structured output, which asks again in
        another mode) a refused ``response_format`` is not counted as a failed call."""
        if not isinstance(request, LLMRequest):
            request = LLMRequest(messages=[dict(message) for message in request])
        request = self._resolve(request)
        self.usage.refuse_if_spent(self.config.max_cost)
        cassette = self.cassette
        if cassette is not None:
            replayed = cassette.lookup(request)
            if replayed is not None:
                for counter in self._counters():
                    counter.add_replay()
                return replayed
            if not cassette.may_record:
                raise cassette.miss(request)
        response = await self._call(request, fallback=fallback)
        if cassette is not None:
            cassette.record(request, response)
        return response

    def complete(self, request: LLMRequest | Sequence[Mapping[str, Any]]) -> LLMResponse:
        """:meth:`acomplete` from synchronous code (not from inside an event loop)."""
        _no_running_loop("complete")
        return run_sync(self.acomplete(request))

    async def _call(self, request: LLMRequest, *, fallback: bool = False) -> LLMResponse:
        # The first import takes seconds: in a thread, so the event loop (every other
        # conversation of a concurrent run) is not stopped meanwhile.
        litellm = _litellm if _litellm is not None else await asyncio.to_thread(load_litellm)
        model = request.model or self.config.model
        kwargs = _completion_kwargs(request, self.config, model, self._api_key())
        attempts = 0

        def retryable(exc: BaseException) -> bool:
            refused = request.response_format is not None and refuses_response_format(exc)
            return is_transient(exc) and not refused

        key = (self.config.api_base, model)
        slept_until = 0.0  # the end of the last 429 pause this call itself slept

        def rate_limited(seconds: float) -> None:
            nonlocal slept_until
            slept_until = self._pauses.hold(key, seconds)

        retrying = _retrying(self.config, model, self._sleep, self._redact, retryable, rate_limited)
        started: float | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    limit = self.config.rate_limits.get(model)
                    if limit is not None:
                        delay = self._limiter.reserve(
                            model, limit, _estimated_tokens(request, self.config)
                        )
                        if delay > 0:
                            await self._sleep(delay)
                    # A slot per attempt: the backoff between attempts is slept without one.
                    await self._take_slot(key, slept_until)
                    try:
                        # Calls queued for a slot must not overrun a budget that the calls
                        # ahead of them spent.
                        self.usage.refuse_if_spent(self.config.max_cost)
                        if started is None:
                            started = time.monotonic()
                        raw = await litellm.acompletion(**kwargs)
                    finally:
                        self._semaphore().release()
        except LLMError:
            raise
        except Exception as exc:
            if request.response_format is not None and refuses_response_format(exc):
                if not fallback:  # structured output asks again in another mode: no failure
                    for counter in self._counters():
                        counter.add_failure()
                refused = str(request.response_format.get("type"))
                raise ResponseFormatRefused(
                    self._redact(f"{model}: {_one_line(exc, self._redact)}"), refused
                ) from exc
            for counter in self._counters():
                counter.add_failure()
            if retryable(exc):
                gave_up = (
                    f"{model}: gave up after {attempts} attempts: {_one_line(exc, self._redact)}"
                )
                raise LLMError("transient", self._redact(gave_up)) from exc
            raise LLMError(
                "fatal", self._redact(f"{model}: {_one_line(exc, self._redact)}")
            ) from exc
        latency = time.monotonic() - started if started is not None else 0.0
        _freeze_once()

        try:
            message = _assistant_message(raw)
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            for counter in self._counters():
                counter.add_failure()
            raise LLMError("fatal", f"{model}: no message in the response: {exc}") from exc
        usage = getattr(raw, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        output = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = _cost(litellm, raw, model, (prompt, output), self.config, self.usage)
        for counter in self._counters():
            counter.add_call(prompt, output, cost)
        return LLMResponse(
            message=message,
            model=model,
            prompt_tokens=prompt,
            completion_tokens=output,
            cost_usd=cost,
            replayed=False,
            latency_seconds=latency,
            attempts=attempts,
        )

    async def astructured(
        self,
        messages: Sequence[Mapping[str, Any]],
        schema: type[T],
        *,
        purpose: str = "structured",
        model: str | None = None,
        check: ReplyCheck[T] | None = None,
    ) -> tuple[T, LLMResponse]:
        """A reply parsed into ``schema``; one repair call on invalid output, then LLMError.

        The repair call shows the model its own reply and the validation error: most
        invalid replies are a missing field or a stray sentence, which one round fixes.
        ``check`` judges a reply that fits the schema (a duplicate, a name that was not
        asked about); a problem it names is repaired like invalid JSON.
        """
        request = LLMRequest(
            model=model, messages=[dict(message) for message in messages], purpose=purpose
        )
        return await self.astructured_request(request, schema, check=check)

    async def astructured_request(
        self, request: LLMRequest, schema: type[T], *, check: ReplyCheck[T] | None = None
    ) -> tuple[T, LLMResponse]:
        """:meth:`astructured` for a full request (temperature, sample...).

        Asked in the endpoint's remembered mode (``json_schema`` first); a refused
        ``response_format`` moves to the next mode, for this call and the rest of the run.
        With a cassette, a recording of the call in any mode is replayed first, so a
        cassette recorded against a server that refused ``json_schema`` replays without one.
        """
        model = request.model or self.config.model
        modes = self._mode_order(model)
        mode = self._recorded_mode(request, schema, modes) or modes[0]
        while True:
            try:
                return await self._structured_in_mode(request, schema, mode, check)
            except ResponseFormatRefused as exc:
                if mode == STRUCTURED_MODES[-1]:  # pragma: no cover - prompt mode sends none
                    raise
                mode = STRUCTURED_MODES[STRUCTURED_MODES.index(mode) + 1]
                self._remember_mode(model, mode, exc)

    def _mode_key(self, model: str) -> tuple[str | None, str]:
        return (self.config.api_base, model)

    def _mode_order(self, model: str) -> list[StructuredMode]:
        """The modes to try, the one learnt for this endpoint and model first."""
        with self._lock:
            learnt = self._structured_modes.get(self._mode_key(model), STRUCTURED_MODES[0])
        return list(STRUCTURED_MODES[STRUCTURED_MODES.index(learnt) :])

    def _remember_mode(self, model: str, mode: StructuredMode, refusal: LLMError) -> None:
        """Only ever move down the list: a refusal does not become acceptance later."""
        key = self._mode_key(model)
        with self._lock:
            known = self._structured_modes.get(key, STRUCTURED_MODES[0])
            if STRUCTURED_MODES.index(mode) <= STRUCTURED_MODES.index(known):
                return
            self._structured_modes[key] = mode
        logger.warning(
            "%s refused the structured output mode (%s); asking with %s for the rest of the run",
            model,
            refusal,
            "response_format json_object and the schema in the prompt"
            if mode == "json_object"
            else "the schema in the prompt",
        )

    def _recorded_mode(
        self, request: LLMRequest, schema: type[BaseModel], modes: Sequence[StructuredMode]
    ) -> StructuredMode | None:
        """A mode whose first call this gateway's cassette can replay: the ones to try
        first, then the others (a recording made where ``json_schema`` worked replays
        in a run that learnt it does not)."""
        cassette = self.cassette
        if cassette is None or cassette.mode == "all" or not len(cassette):
            return None
        for mode in [*modes, *(m for m in STRUCTURED_MODES if m not in modes)]:
            if cassette.lookup(self._resolve(_in_mode(request, schema, mode))) is not None:
                return mode
        return None

    async def _structured_in_mode(
        self,
        request: LLMRequest,
        schema: type[T],
        mode: StructuredMode,
        check: ReplyCheck[T] | None,
    ) -> tuple[T, LLMResponse]:
        asked = _in_mode(request, schema, mode)
        conversation = list(asked.messages)
        problem = ""
        for attempt in range(2):
            response = await self._complete(
                asked.model_copy(update={"messages": conversation}), fallback=True
            )
            try:
                parsed = schema.model_validate_json(_strip_fences(response.content))
            except ValidationError as exc:
                problem = _validation_problem(exc)
            else:
                problem = (check(parsed) if check is not None else None) or ""
                if not problem:
                    return parsed, response
            if attempt == 0:
                conversation = [
                    *conversation,
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
            self._redact(
                f"{request.model or self.config.model}: no valid {schema.__name__} after one "
                f"repair: {problem}"
            ),
        )

    def structured(
        self,
        messages: Sequence[Mapping[str, Any]],
        schema: type[T],
        *,
        purpose: str = "structured",
        model: str | None = None,
        check: ReplyCheck[T] | None = None,
    ) -> tuple[T, LLMResponse]:
        """:meth:`astructured` from synchronous code (not from inside an event loop)."""
        _no_running_loop("structured")
        return run_sync(
            self.astructured(messages, schema, purpose=purpose, model=model, check=check)
        )


async def _settle_litellm_logging() -> None:
    """Let litellm's background logging worker finish before its event loop closes.

    Every ``acompletion`` queues a success-logging coroutine on litellm's global worker,
    which is bound to the running loop. A sync call's loop ends right after the answer,
    so the next ``asyncio.run`` would find the queue left behind and warn ("LoggingWorker:
    event loop changed; carried N pending"), with N growing over a run. Best effort: it is
    litellm's internal API, and nothing of ours depends on those callbacks.
    """
    module = sys.modules.get("litellm.litellm_core_utils.logging_worker")
    worker = getattr(module, "GLOBAL_LOGGING_WORKER", None)
    if worker is None:
        return
    try:
        for _ in range(3):  # the enqueue itself runs in a task spawned by acompletion
            await asyncio.sleep(0)
        await asyncio.wait_for(worker.flush(), timeout=2)
        await worker.stop(timeout=1)
    except Exception as exc:  # pragma: no cover - depends on litellm's internals
        logger.debug("could not settle litellm's logging worker: %s", _one_line(exc))


def run_sync(coroutine: Coroutine[Any, Any, R]) -> R:
    """``asyncio.run``, leaving no litellm task behind on the loop (for sync callers)."""

    async def main() -> R:
        try:
            return await coroutine
        finally:
            await _settle_litellm_logging()

    return asyncio.run(main())


def _no_running_loop(method: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"Gateway.{method}() was called inside a running event loop; "
        f"use 'await Gateway.a{method}(...)' there"
    )
