"""The LLM gateway over real HTTP, through real litellm, against the fake server.

Nothing here mocks litellm: every call leaves through ``litellm.acompletion`` and reaches
:class:`FakeLLMServer` on 127.0.0.1, so retries, Retry-After, timeouts, error mapping and
cost are litellm's real behaviour. Backoff sleeps are recorded instead of slept (the
``sleep`` parameter), except in the one test that shows Retry-After is really waited.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import Severity
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import RecordedRequest
from pytest_agentsim.llm.fake_server import Reply
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.gateway import load_litellm
from pytest_agentsim.llm.gateway import retry_after
from pytest_agentsim.llm.messages import LLMConfig
from pytest_agentsim.llm.messages import LLMError
from pytest_agentsim.llm.messages import LLMRequest
from pytest_agentsim.llm.messages import LLMResponse
from pytest_agentsim.llm.messages import ModelPrice
from pytest_agentsim.llm.messages import RateLimit
from pytest_agentsim.llm.redaction import Redactor
from pytest_agentsim.llm.redaction import redact
from pytest_agentsim.llm.redaction import secret_values

HI = [{"role": "user", "content": "hi"}]
KEY = "sk-live-abcdef123456"

# litellm's streaming types trip a harmless pydantic warning the first time they load.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the .ReadOnly. qualifier:UserWarning"
)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


class Sleeps:
    """Records the backoff waits instead of sleeping them, so tests stay fast."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def gateway(server: FakeLLMServer, sleeps: Sleeps | None = None, **settings: Any) -> Gateway:
    settings.setdefault("model", "openai/fake-model")
    config = LLMConfig(api_base=server.base_url, **settings)
    return Gateway(config, sleep=sleeps if sleeps is not None else Sleeps())


def ask(gw: Gateway, text: str = "hi", **fields: Any) -> LLMResponse:
    return gw.complete(LLMRequest(messages=[{"role": "user", "content": text}], **fields))


# ----------------------------------------------------------------------------- completions


def test_a_plain_completion(server: FakeLLMServer) -> None:
    server.script(Reply(content="hello there", prompt_tokens=7, completion_tokens=3))
    gw = gateway(server)
    response = ask(gw, "hi", purpose="judge", max_tokens=50)
    assert response.message == {"role": "assistant", "content": "hello there"}
    assert response.content == "hello there"
    assert (response.prompt_tokens, response.completion_tokens) == (7, 3)
    assert (response.model, response.attempts, response.replayed) == ("openai/fake-model", 1, False)
    assert response.latency_seconds > 0
    (sent,) = server.completion_requests
    assert sent.model == "fake-model"
    assert sent.messages == HI
    assert sent.body["temperature"] == 0.0
    assert sent.body["max_tokens"] == 50
    assert sent.headers["authorization"] == "Bearer sk-no-key"  # no key configured
    assert (gw.usage.calls, gw.usage.prompt_tokens, gw.usage.completion_tokens) == (1, 7, 3)


def test_max_tokens_is_sent_on_every_call(server: FakeLLMServer) -> None:
    """A looping local model must stop: the config's limit goes out when the request sets
    none, the request's own wins."""
    server.script("one", "two", "three")
    ask(gateway(server))
    ask(gateway(server, max_tokens=300))
    ask(gateway(server, max_tokens=300), max_tokens=20)
    assert [r.body["max_tokens"] for r in server.completion_requests] == [4096, 300, 20]


def test_the_key_is_read_from_the_named_env_var_at_call_time(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script("one", "two")
    gw = gateway(server, api_key_env="AGENTSIM_TEST_API_KEY")
    monkeypatch.setenv("AGENTSIM_TEST_API_KEY", KEY)
    ask(gw)
    monkeypatch.setenv("AGENTSIM_TEST_API_KEY", KEY + "-rotated")
    ask(gw)
    assert [r.headers["authorization"] for r in server.completion_requests] == [
        f"Bearer {KEY}",
        f"Bearer {KEY}-rotated",
    ]
    assert KEY not in gw.config.model_dump_json()


def test_a_tool_call_reply_is_parsed_into_the_message(server: FakeLLMServer) -> None:
    server.script(Reply(tool_calls=[{"name": "lookup", "arguments": {"id": 7}}]))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    response = ask(gateway(server), tools=tools)
    (call,) = response.message["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {"name": "lookup", "arguments": '{"id": 7}'}
    assert call["id"]
    assert response.tool_calls == [call]
    assert server.completion_requests[0].body["tools"] == tools


# ----------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    "fault",
    [
        Reply.rate_limited(0.2),
        Reply.server_error(500),
        Reply.server_error(502),
        Reply.server_error(503),
        Reply.server_error(529),
        # A 200 whose body is not JSON: litellm raises InternalServerError (status 500).
        Reply.malformed(),
    ],
    ids=["429", "500", "502", "503", "529", "malformed"],
)
def test_a_transient_fault_then_success(server: FakeLLMServer, fault: Reply) -> None:
    server.script(fault, "fine")
    sleeps = Sleeps()
    gw = gateway(server, sleeps)
    response = ask(gw)
    assert (response.content, response.attempts) == ("fine", 2)
    assert len(server.completion_requests) == 2
    assert len(sleeps.waits) == 1
    if fault.status == 429:
        assert sleeps.waits == [0.2]  # Retry-After, not the backoff
    else:
        assert 0 < sleeps.waits[0] <= 0.5 + 1  # first backoff step: 0.5 s plus jitter
    assert (gw.usage.calls, gw.usage.failed_calls) == (1, 0)


def test_retry_after_is_waited_for_real(server: FakeLLMServer) -> None:
    arrivals: list[float] = []

    def answer(request: RecordedRequest) -> Reply:
        arrivals.append(time.monotonic())
        return Reply.rate_limited(0.3) if len(arrivals) == 1 else Reply(content="fine")

    server.reply_function = answer
    gw = Gateway(LLMConfig(model="openai/fake-model", api_base=server.base_url))
    assert ask(gw).content == "fine"
    assert len(arrivals) == 2
    # Really slept (test_a_transient_fault_then_success shows the wait is Retry-After's
    # and not the backoff's).
    assert arrivals[1] - arrivals[0] >= 0.3


def test_retry_after_is_capped_by_max_wait(server: FakeLLMServer) -> None:
    server.script(Reply.rate_limited(120), "fine")
    sleeps = Sleeps()
    ask(gateway(server, sleeps, max_wait=2))
    assert sleeps.waits == [2]


def test_a_call_waiting_to_retry_gives_its_slot_to_another(server: FakeLLMServer) -> None:
    """With one call in flight allowed, a call sleeping before its retry lets the next
    call go meanwhile, instead of holding the slot through its backoff."""
    failed: set[str] = set()

    def answer(request: RecordedRequest) -> Reply:
        text = request.messages[-1]["content"]
        if text == "a" and text not in failed:
            failed.add(text)
            return Reply.server_error(503)
        return Reply(content=f"{text} ok")

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0.2)

    server.reply_function = answer
    gw = Gateway(
        LLMConfig(model="openai/fake-model", api_base=server.base_url, concurrency=1), sleep=sleep
    )

    async def both() -> list[LLMResponse]:
        first = asyncio.ensure_future(gw.acomplete([{"role": "user", "content": "a"}]))
        await asyncio.sleep(0)  # "a" takes the slot first
        second = gw.acomplete([{"role": "user", "content": "b"}])
        return list(await asyncio.gather(first, second))

    a, b = asyncio.run(both())
    assert (a.content, a.attempts, b.content) == ("a ok", 2, "b ok")
    assert [r.messages[-1]["content"] for r in server.completion_requests] == ["a", "b", "a"]


def test_a_429_pauses_every_call_to_that_model(server: FakeLLMServer) -> None:
    """Once one call is told to wait (Retry-After), the next calls to the same model wait
    out the rest of that time before they are sent; calls to other models do not."""
    server.script(Reply.rate_limited(20), "fine", "also fine", "other model")
    sleeps = Sleeps()
    gw = gateway(server, sleeps)
    assert ask(gw).content == "fine"
    assert sleeps.waits == [20]
    assert ask(gw).content == "also fine"  # a later call to the same model: waits first
    assert len(sleeps.waits) == 2 and 15 < sleeps.waits[1] <= 20
    assert len(server.completion_requests) == 3  # and was not sent to get a 429 itself
    other = gw.view(config=gw.config.model_copy(update={"model": "openai/other-model"}))
    assert ask(other).content == "other model"
    assert len(sleeps.waits) == 2  # another model is not paused


def test_rate_limits_spread_calls_over_the_minute(server: FakeLLMServer) -> None:
    """Calls wait (their waits recorded here) rather than exceed a model's requests or
    tokens per minute; other models are not limited."""
    server.reply_function = lambda request: "ok"
    sleeps = Sleeps()
    limits = {"openai/fake-model": RateLimit(requests_per_minute=2)}
    gw = gateway(server, sleeps, rate_limits=limits)
    for _ in range(3):
        ask(gw)
    assert len(sleeps.waits) == 1 and 55 < sleeps.waits[0] <= 60  # the third: a minute on
    ask(gw.view(config=gw.config.model_copy(update={"model": "openai/other-model"})))
    assert len(sleeps.waits) == 1

    sleeps = Sleeps()
    # Each call counts its prompt (about 4 characters a token) and its max_tokens: 100.
    limits = {"openai/fake-model": RateLimit(tokens_per_minute=250)}
    gw = gateway(server, sleeps, rate_limits=limits, max_tokens=100)
    ask(gw), ask(gw)
    assert sleeps.waits == []
    ask(gw)
    assert len(sleeps.waits) == 1 and 55 < sleeps.waits[0] <= 60


def test_retry_after_forms() -> None:
    def error(headers: dict[str, str]) -> Exception:
        exc = Exception("x")
        exc.response = SimpleNamespace(headers=headers)  # type: ignore[attr-defined]
        return exc

    assert retry_after(error({"Retry-After": "1.5"})) == 1.5
    assert retry_after(error({"retry-after-ms": "250"})) == 0.25
    assert retry_after(error({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # past
    assert retry_after(error({"retry-after": "soon"})) is None
    assert retry_after(error({})) is None
    assert retry_after(Exception("no response")) is None


def test_giving_up_after_max_attempts(server: FakeLLMServer) -> None:
    server.script(*[Reply.server_error(500)] * 5)
    sleeps = Sleeps()
    gw = gateway(server, sleeps, max_attempts=3)
    with pytest.raises(LLMError) as info:
        ask(gw)
    assert info.value.kind == "transient"
    message = str(info.value)
    assert message == (
        "openai/fake-model: gave up after 3 attempts: InternalServerError: OpenAIException - "
        "fake LLM: the server had an error"
    )
    assert len(server.completion_requests) == 3
    assert len(sleeps.waits) == 2
    assert sleeps.waits[1] > sleeps.waits[0] - 1  # exponential (up to 1 s jitter)
    assert (gw.usage.calls, gw.usage.failed_calls) == (0, 1)


def test_a_timeout_is_retried(server: FakeLLMServer) -> None:
    load_litellm()  # its first import is no part of the call's time
    server.script(Reply.hang(60), "fine")
    started = time.monotonic()
    response = ask(gateway(server, timeout=0.3))
    assert (response.content, response.attempts) == ("fine", 2)
    assert len(server.completion_requests) == 2
    # The 60 s hang was cut by the 0.3 s timeout; the bound is loose for a busy machine.
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    ("status", "exception"),
    [(401, "AuthenticationError"), (400, "BadRequestError"), (404, "NotFoundError")],
)
def test_a_fatal_error_is_not_retried(server: FakeLLMServer, status: int, exception: str) -> None:
    body = '{"error": {"message": "no way", "type": "invalid_request_error"}}'
    server.script(Reply(status=status, raw_body=body), "never")
    sleeps = Sleeps()
    gw = gateway(server, sleeps)
    with pytest.raises(LLMError) as info:
        ask(gw)
    assert info.value.kind == "fatal"
    assert str(info.value).startswith(f"openai/fake-model: {exception}: ")
    assert "no way" in str(info.value)
    assert len(server.completion_requests) == 1
    assert sleeps.waits == []
    assert gw.usage.failed_calls == 1


def test_the_key_never_shows_in_errors_logs_or_output(
    server: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AGENTSIM_TEST_API_KEY", KEY)
    echo = f'{{"error": {{"message": "Incorrect API key provided: {KEY}"}}}}'
    server.script(Reply(status=503, raw_body=echo), Reply(status=401, raw_body=echo))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LLMError) as info:
        ask(gateway(server, api_key_env="AGENTSIM_TEST_API_KEY"))
    assert info.value.kind == "fatal"
    assert "Incorrect API key provided: [REDACTED]" in str(info.value)
    assert "retrying in" in caplog.text  # the 503 was logged...
    out, err = capfd.readouterr()
    for text in (str(info.value), caplog.text, out, err):
        assert KEY not in text  # ...without the key
    assert server.completion_requests[0].headers["authorization"] == f"Bearer {KEY}"


# ----------------------------------------------------------------------------- structured


class Verdict(BaseModel):
    outcome: str
    turn: int


def test_structured_output_valid_the_first_time(server: FakeLLMServer) -> None:
    server.script("```json\n" + '{"outcome": "ok", "turn": 2}' + "\n```")
    parsed, response = gateway(server).structured(HI, Verdict, purpose="judge")
    assert parsed == Verdict(outcome="ok", turn=2)
    assert response.attempts == 1
    (sent,) = server.completion_requests
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Verdict", "schema": Verdict.model_json_schema(), "strict": False},
    }


def test_invalid_output_is_repaired_once(server: FakeLLMServer) -> None:
    server.script(Reply.json({"outcome": "ok"}), Reply.json({"outcome": "ok", "turn": 3}))
    parsed, _ = gateway(server).structured(HI, Verdict, purpose="judge")
    assert parsed.turn == 3
    first, repair = server.completion_requests
    assert repair.messages[: len(HI)] == HI
    assert repair.messages[-2] == {"role": "assistant", "content": '{"outcome": "ok"}'}
    assert repair.messages[-1]["role"] == "user"
    assert "Verdict: turn: Field required" in repair.messages[-1]["content"]
    assert "corrected JSON object only" in repair.messages[-1]["content"]
    assert first.body["response_format"] == repair.body["response_format"]


def test_output_still_invalid_after_the_repair(server: FakeLLMServer) -> None:
    server.script("nope", '{"outcome": "ok", "turn": "two"}', "never asked")
    with pytest.raises(LLMError) as info:
        gateway(server).structured(HI, Verdict, purpose="judge")
    assert info.value.kind == "invalid_output"
    assert str(info.value) == (
        "openai/fake-model: no valid Verdict after one repair: "
        "turn: Input should be a valid integer, unable to parse string as an integer"
    )
    assert len(server.completion_requests) == 2
    assert "Invalid JSON" in server.completion_requests[1].messages[-1]["content"]


# ----------------------------------------------------------------------------- cost, budget


def thousand_tokens(request: RecordedRequest) -> Reply:
    return Reply(content="x", prompt_tokens=1000, completion_tokens=1000)


def test_an_unknown_model_costs_nothing_and_is_listed(server: FakeLLMServer) -> None:
    server.reply_function = thousand_tokens
    gw = gateway(server)
    assert ask(gw).cost_usd == 0.0
    assert gw.usage.unpriced_models == {"openai/fake-model"}
    assert gw.usage.cost_usd == 0.0


def test_configured_prices_give_the_cost(server: FakeLLMServer) -> None:
    server.reply_function = thousand_tokens
    price = ModelPrice(input_per_million=2, output_per_million=6)
    gw = gateway(server, prices={"openai/fake-model": price})
    assert ask(gw).cost_usd == pytest.approx(0.008)
    assert gw.usage.cost_usd == pytest.approx(0.008)
    assert gw.usage.unpriced_models == set()


def test_a_known_model_is_priced_by_litellm(server: FakeLLMServer) -> None:
    server.reply_function = thousand_tokens
    gw = gateway(server, model="openai/gpt-4o-mini")
    cost = ask(gw).cost_usd
    assert 0 < cost < 0.01  # $0.15 / $0.60 per million tokens: 0.00075
    assert gw.usage.unpriced_models == set()
    assert server.completion_requests[0].model == "gpt-4o-mini"


def test_the_budget_stops_new_calls(server: FakeLLMServer) -> None:
    server.reply_function = thousand_tokens
    price = ModelPrice(input_per_million=2, output_per_million=6)
    gw = gateway(server, max_cost=0.001, prices={"openai/fake-model": price})
    ask(gw)
    with pytest.raises(LLMError) as info:
        ask(gw)
    assert info.value.kind == "budget"
    assert str(info.value).startswith("LLM budget spent: $0.008 of $0.001")
    assert len(server.completion_requests) == 1
    assert (gw.usage.calls, gw.usage.budget_refusals) == (1, 1)


def test_calls_queued_behind_the_limit_respect_the_budget(server: FakeLLMServer) -> None:
    def slow(request: RecordedRequest) -> Reply:
        time.sleep(0.1)
        return thousand_tokens(request)

    server.reply_function = slow
    price = ModelPrice(input_per_million=2, output_per_million=6)
    gw = gateway(server, concurrency=1, max_cost=0.001, prices={"openai/fake-model": price})

    async def three() -> list[LLMResponse | BaseException]:
        request = LLMRequest(messages=HI)
        calls = (gw.acomplete(request) for _ in range(3))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(three())
    assert [getattr(o, "kind", "ok") for o in outcomes] == ["ok", "budget", "budget"]
    assert len(server.completion_requests) == 1
    assert gw.usage.budget_refusals == 2


# ----------------------------------------------------------------------------- concurrency


def test_concurrency_is_bounded_in_every_event_loop(server: FakeLLMServer) -> None:
    lock = threading.Lock()
    active = {"now": 0, "most": 0}

    def slow(request: RecordedRequest) -> Reply:
        with lock:
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        time.sleep(0.1)
        with lock:
            active["now"] -= 1
        return Reply(content="done")

    server.reply_function = slow
    gw = gateway(server, concurrency=2)

    async def five() -> list[LLMResponse]:
        request = LLMRequest(messages=HI)
        return await asyncio.gather(*(gw.acomplete(request) for _ in range(5)))

    assert len(asyncio.run(five())) == 5
    assert len(asyncio.run(five())) == 5  # a second loop gets a working semaphore
    assert ask(gw).content == "done"  # and so does the sync wrapper's
    assert active["most"] == 2
    assert gw.usage.calls == 11


def test_sync_calls_leave_no_litellm_work_behind(
    server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reply_function = lambda request: "fine"
    gw = gateway(server)
    caplog.set_level(logging.WARNING)
    for _ in range(4):
        ask(gw)
    assert "event loop changed" not in caplog.text
    assert gw.usage.calls == 4


def test_the_sync_api_refuses_a_running_loop(server: FakeLLMServer) -> None:
    gw = gateway(server)

    async def inside() -> None:
        with pytest.raises(RuntimeError, match=r"await Gateway.acomplete"):
            gw.complete(HI)
        with pytest.raises(RuntimeError, match=r"await Gateway.astructured"):
            gw.structured(HI, Verdict)

    asyncio.run(inside())
    assert server.completion_requests == []


# ----------------------------------------------------------------------------- secrets


def test_secret_values_and_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_KEY", "provider-key-1")
    monkeypatch.setenv("EXTRA_CREDENTIAL", "extra-credential-2")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_token_3")
    monkeypatch.setenv("CLIENT_SECRET_VALUE", "client-secret-4")
    monkeypatch.setenv("SHORT_TOKEN", "abc")
    monkeypatch.setenv("HOME_DIRECTORY", "/home/someone")
    config = LLMConfig(model="m", api_key_env="MY_PROVIDER_KEY", secret_env=["EXTRA_CREDENTIAL"])
    secrets = secret_values(config)
    for value in ("provider-key-1", "extra-credential-2", "ghp_token_3", "client-secret-4"):
        assert value in secrets
    assert "abc" not in secrets
    assert "/home/someone" not in secrets

    text = (
        "key provider-key-1, header Authorization: Bearer abc.def and "
        "raw sk-proj-ABCDEFGH123, order ACME-1234, risk-assessment stays"
    )
    assert redact(text, secrets, [r"ACME-\d+"]) == (
        "key [REDACTED], header Authorization: [REDACTED] and "
        "raw [REDACTED], order [REDACTED], risk-assessment stays"
    )


def test_a_redacted_result_keeps_its_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports see the redacted copy; a test body's assertions on types still hold."""
    from pytest_agentsim.core.models import Conversation
    from pytest_agentsim.core.models import Event
    from pytest_agentsim.core.models import EventResult
    from pytest_agentsim.core.models import Message
    from pytest_agentsim.core.models import PolicyResult
    from pytest_agentsim.core.models import UserProfile
    from pytest_agentsim.core.models import Verdict

    monkeypatch.setenv("SHOP_PASSPHRASE", "open-sesame-4242")
    redactor = Redactor.for_config(
        LLMConfig(model="m", secret_env=["SHOP_PASSPHRASE"], secret_patterns=[r"ACCT-\d+"])
    )
    original = EventResult(
        event=Event(id="ev-1", domain="shop", policies=["p"], user=UserProfile(script=["hi"])),
        conversation=Conversation(
            event_id="ev-1",
            messages=[Message(role="user", content="pass open-sesame-4242, account ACCT-991")],
            final_db={"orders": {1: {"items": ("a", "ACCT-991")}}},
            stop_reason=StopReason.script_done,
        ),
        policies=[
            PolicyResult(
                policy_id="p",
                risk_category="Privacy",
                severity=Severity.high,
                outcome=Outcome.violated,
                listed=True,
                verdicts=[Verdict(policy_id="p", outcome=Outcome.violated, reason="said ACCT-991")],
            )
        ],
    )
    redacted = redactor.result(original)
    assert redacted.conversation.messages[0].content == "pass [REDACTED], account [REDACTED]"
    assert redacted.conversation.final_db == {"orders": {1: {"items": ("a", "[REDACTED]")}}}
    assert redacted.policies[0].verdicts[0].reason == "said [REDACTED]"
    assert redacted.event == original.event
    assert "ACCT-991" in str(original.conversation.messages[0].content)  # judged as it was


def test_a_bad_secret_pattern_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"invalid regex '\('"):
        LLMConfig(model="m", secret_patterns=["("])


# ----------------------------------------------------------------------------- import


def test_litellm_is_imported_lazily_and_offline(tmp_path: Path) -> None:
    # A stand-in litellm package on the path records the environment it was imported
    # in: the real one takes seconds to import, and this is about the order of events.
    stub = tmp_path / "litellm"
    stub.mkdir()
    (stub / "__init__.py").write_text(
        "import os\n"
        "SEEN = (os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP'), os.environ.get('LITELLM_MODE'))\n"
        "telemetry = True\n"
        "suppress_debug_info = False\n"
    )
    code = (
        "import os, sys\n"
        "os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'False'\n"
        "os.environ.pop('LITELLM_MODE', None)\n"
        "import pytest_agentsim.plugin, pytest_agentsim.llm.gateway, pytest_agentsim.llm.cassettes\n"
        "assert 'litellm' not in sys.modules, 'imported too early'\n"
        "from pytest_agentsim.llm.gateway import load_litellm\n"
        "litellm = load_litellm()\n"
        "assert load_litellm() is litellm\n"
        "print(*litellm.SEEN, litellm.telemetry, litellm.suppress_debug_info)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["True", "PRODUCTION", "False", "True"]


def test_importing_the_plugin_does_not_import_litellm() -> None:
    code = "import sys, pytest_agentsim.plugin; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
