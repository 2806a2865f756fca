"""The LLM gateway over real HTTP, through real litellm, against the fake server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest
from pydantic import BaseModel

from pytest_agentsim.fake_llm import FakeLLMServer
from pytest_agentsim.fake_llm import RecordedRequest
from pytest_agentsim.fake_llm import Reply
from pytest_agentsim.llm import Gateway
from pytest_agentsim.llm import LLMConfig
from pytest_agentsim.llm import LLMError
from pytest_agentsim.llm import ModelPrice

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server() -> Any:
    with FakeLLMServer() as running:
        yield running


class Sleeps:
    """Records the backoff waits instead of sleeping them, so tests stay fast."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def gateway(server: FakeLLMServer, sleeps: Sleeps | None = None, **settings: Any) -> Gateway:
    config = LLMConfig(model="openai/fake-model", api_base=server.base_url, **settings)
    return Gateway(config, sleep=sleeps)


def complete(gw: Gateway, messages: list[dict[str, Any]] = HI) -> Any:
    return asyncio.run(gw.acomplete(messages))


# ----------------------------------------------------------------------------- the gateway


def test_a_completion_with_tool_calls_through_litellm(server: FakeLLMServer) -> None:
    server.script(Reply(tool_calls=[{"name": "lookup", "arguments": {"id": 7}}]))
    response = complete(gateway(server))
    (call,) = response.message["tool_calls"]
    assert call["function"] == {"name": "lookup", "arguments": '{"id": 7}'}
    assert response.attempts == 1
    assert server.completion_requests[0].model == "fake-model"


@pytest.mark.parametrize(
    "fault",
    [Reply.rate_limited(0.3), Reply.server_error(500), Reply.server_error(503), Reply.malformed()],
    ids=["429", "500", "503", "malformed"],
)
def test_transient_faults_are_retried(server: FakeLLMServer, fault: Reply) -> None:
    server.script(fault, "fine")
    sleeps = Sleeps()
    response = complete(gateway(server, sleeps))
    assert (response.content, response.attempts) == ("fine", 2)
    assert len(server.completion_requests) == 2
    assert len(sleeps.waits) == 1
    if fault.status == 429:
        assert sleeps.waits == [0.3]  # Retry-After, not the backoff


def test_retry_after_is_slept_for_real(server: FakeLLMServer) -> None:
    server.script(Reply.rate_limited(0.4), "fine")
    started = time.monotonic()
    complete(gateway(server))
    first, second = server.completion_requests
    assert time.monotonic() - started >= 0.4
    del first, second


def test_a_timeout_is_retried(server: FakeLLMServer) -> None:
    server.script(Reply.hang(3), "fine")
    response = complete(gateway(server, Sleeps(), timeout=0.5))
    assert (response.content, response.attempts) == ("fine", 2)


def test_giving_up_after_max_attempts_is_an_error(server: FakeLLMServer) -> None:
    server.script(*[Reply.server_error()] * 5)
    gw = gateway(server, Sleeps(), max_attempts=3)
    with pytest.raises(LLMError) as info:
        complete(gw)
    assert info.value.kind == "transient"
    assert str(info.value).startswith("openai/fake-model: gave up after 3 attempts: ")
    assert len(server.completion_requests) == 3
    assert gw.usage.failed_calls == 1


def test_an_auth_error_is_not_retried(server: FakeLLMServer) -> None:
    server.script(Reply(status=401, raw_body='{"error": {"message": "bad key"}}'), "never")
    with pytest.raises(LLMError) as info:
        complete(gateway(server, Sleeps()))
    assert info.value.kind == "fatal"
    assert "bad key" in str(info.value)
    assert len(server.completion_requests) == 1


class Verdict(BaseModel):
    outcome: str
    turn: int


def test_structured_output_is_parsed_and_repaired_once(server: FakeLLMServer) -> None:
    server.script("```json\n" + '{"outcome": "ok", "turn": 2}' + "\n```")
    parsed, _ = gateway(server).structured(HI, Verdict)
    assert parsed == Verdict(outcome="ok", turn=2)

    server.script('{"outcome": "ok"}', '{"outcome": "ok", "turn": 3}')
    parsed, _ = gateway(server).structured(HI, Verdict)
    assert parsed.turn == 3
    repair = server.completion_requests[-1]
    assert "turn: Field required" in repair.messages[-1]["content"]
    assert repair.body["response_format"]["json_schema"]["name"] == "Verdict"


def test_output_invalid_after_the_repair_is_an_error(server: FakeLLMServer) -> None:
    server.script("nope", "still nope")
    with pytest.raises(LLMError) as info:
        gateway(server).structured(HI, Verdict)
    assert info.value.kind == "invalid_output"
    assert "no valid Verdict after one repair" in str(info.value)


def test_cost_for_known_unknown_and_priced_models(server: FakeLLMServer) -> None:
    server.reply_function = lambda request: Reply(
        content="x", prompt_tokens=1000, completion_tokens=1000
    )
    unknown = gateway(server)
    assert complete(unknown).cost_usd == 0.0
    assert unknown.usage.unpriced_models == {"openai/fake-model"}

    priced = gateway(
        server, prices={"openai/fake-model": ModelPrice(input_per_million=2, output_per_million=6)}
    )
    assert complete(priced).cost_usd == pytest.approx(0.008)

    known = Gateway(LLMConfig(model="openai/gpt-4o-mini", api_base=server.base_url))
    assert complete(known).cost_usd > 0
    assert known.usage.unpriced_models == set()


def test_the_budget_stops_new_calls(server: FakeLLMServer) -> None:
    server.reply_function = lambda request: Reply(
        content="x", prompt_tokens=1000, completion_tokens=1000
    )
    gw = gateway(
        server,
        max_cost=0.001,
        prices={"openai/fake-model": ModelPrice(input_per_million=2, output_per_million=6)},
    )
    complete(gw)
    with pytest.raises(LLMError) as info:
        complete(gw)
    assert info.value.kind == "budget"
    assert str(info.value).startswith("LLM budget spent: $0.0080 of $0.0010")
    assert len(server.completion_requests) == 1
    assert gw.usage.budget_refusals == 1


def test_concurrency_is_bounded_across_event_loops(server: FakeLLMServer) -> None:
    import threading

    lock = threading.Lock()
    active = {"now": 0, "most": 0}

    def slow(request: RecordedRequest) -> Reply:
        with lock:
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        time.sleep(0.15)
        with lock:
            active["now"] -= 1
        return Reply(content="done")

    server.reply_function = slow
    gw = gateway(server, concurrency=2)

    async def many() -> list[Any]:
        return await asyncio.gather(*(gw.acomplete(HI) for _ in range(5)))

    assert len(asyncio.run(many())) == 5
    assert len(asyncio.run(many())) == 5  # a second loop gets a working semaphore
    assert active["most"] == 2


def test_importing_the_plugin_does_not_import_litellm() -> None:
    code = "import sys, pytest_agentsim.plugin; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
