"""Structured output against servers that refuse ``response_format: json_schema``.

llama.cpp's server (and its forks) answers a ``json_schema`` response format with HTTP 500
naming it; the fake server does the same with ``refuse_response_formats``. Everything goes
through real litellm over real HTTP: the gateway must not retry the refusal as a
transient 5xx, must fall back to ``json_object`` and then to the schema in the prompt,
must remember what worked, and cassettes must replay whichever mode was recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from pytest_agentsim.llm.cassettes import Cassette
from pytest_agentsim.llm.cassettes import RecordMode
from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import RecordedRequest
from pytest_agentsim.llm.fake_server import Reply
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.gateway import is_transient
from pytest_agentsim.llm.gateway import load_litellm
from pytest_agentsim.llm.gateway import refuses_response_format
from pytest_agentsim.llm.messages import LLMConfig
from pytest_agentsim.llm.messages import LLMError
from pytest_agentsim.llm.messages import LLMRequest

HI = [{"role": "system", "content": "You grade things."}, {"role": "user", "content": "hi"}]

pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the .ReadOnly. qualifier:UserWarning"
)


class Grade(BaseModel):
    outcome: str
    turn: int


GOOD = Reply.json({"outcome": "ok", "turn": 1})


class NoSleep:
    """Records backoff waits: a refusal must cause none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def llama() -> Iterator[FakeLLMServer]:
    """A server that answers ``json_schema`` the way llama.cpp's does: 500 naming it."""
    with FakeLLMServer(refuse_response_formats={"json_schema"}) as running:
        yield running


def gateway(
    server: FakeLLMServer,
    cassette: Cassette | None = None,
    sleep: NoSleep | None = None,
    **settings: Any,
) -> Gateway:
    config = LLMConfig(model="openai/fake-model", api_base=server.base_url, **settings)
    return Gateway(config, cassette, sleep=sleep or NoSleep())


def response_type(request: RecordedRequest) -> str | None:
    response_format = request.body.get("response_format")
    return response_format.get("type") if isinstance(response_format, dict) else None


def test_the_fake_server_refuses_like_llama_cpp(llama: FakeLLMServer) -> None:
    litellm = load_litellm()  # offline: no fetch of the price map
    with pytest.raises(litellm.InternalServerError) as info:
        litellm.completion(
            model="openai/fake-model",
            api_base=llama.base_url,
            api_key="sk-no-key",
            messages=HI,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            max_retries=0,
        )
    assert info.value.status_code == 500
    assert (
        'response_format type must be one of "text" or "json_object", but got: json_schema'
        in str(info.value)
    )
    assert refuses_response_format(info.value)
    assert is_transient(info.value)  # a 5xx: only the gateway knows it sent response_format
    llama.script("not consumed by the refusal")
    assert len(llama.completion_requests) == 1


def test_json_schema_refused_falls_back_to_json_object_and_is_remembered(
    llama: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    llama.script(GOOD, GOOD)
    sleeps = NoSleep()
    gw = gateway(llama, sleep=sleeps)
    parsed, _ = gw.structured(HI, Grade, purpose="judge")
    assert parsed == Grade(outcome="ok", turn=1)
    refused, accepted = llama.completion_requests
    assert response_type(refused) == "json_schema"
    assert response_type(accepted) == "json_object"
    # The schema travels in the (first, system) prompt instead.
    system = accepted.messages[0]
    assert system["role"] == "system" and system["content"].startswith("You grade things.\n\n")
    assert json.dumps(Grade.model_json_schema(), sort_keys=True) in system["content"]
    assert accepted.messages[1:] == HI[1:]
    assert sleeps.waits == []  # the 500 was not retried as transient
    assert (gw.usage.calls, gw.usage.failed_calls) == (1, 0)
    assert "asking with response_format json_object" in caplog.text

    # The rest of the run (views share it) asks with json_object at once.
    view = gw.view()
    view.structured(HI, Grade)
    assert [response_type(r) for r in llama.completion_requests] == [
        "json_schema",
        "json_object",
        "json_object",
    ]


def test_both_refused_falls_back_to_the_schema_in_the_prompt() -> None:
    with FakeLLMServer(
        [GOOD, GOOD], refuse_response_formats={"json_schema", "json_object"}, refusal_status=400
    ) as server:
        gw = gateway(server)
        parsed, _ = gw.structured([{"role": "user", "content": "hi"}], Grade)
        assert parsed.turn == 1
        gw.structured([{"role": "user", "content": "again"}], Grade)
        kinds = [response_type(r) for r in server.completion_requests]
        assert kinds == ["json_schema", "json_object", None, None]
        plain = server.completion_requests[2]
        assert "response_format" not in plain.body
        # No system message to extend: one is added, first.
        assert plain.messages[0]["role"] == "system"
        assert "valid against this JSON Schema" in plain.messages[0]["content"]
        assert plain.messages[1] == {"role": "user", "content": "hi"}


def test_the_learnt_mode_is_per_endpoint_and_model(llama: FakeLLMServer) -> None:
    llama.script(GOOD, GOOD, GOOD)
    gw = gateway(llama)
    gw.structured(HI, Grade)
    with FakeLLMServer([GOOD]) as capable:
        other = gw.view(config=gw.config.model_copy(update={"api_base": capable.base_url}))
        other.structured(HI, Grade)
        assert [response_type(r) for r in capable.completion_requests] == ["json_schema"]
    another_model = gw.view(config=gw.config.model_copy(update={"model": "openai/other"}))
    another_model.structured(HI, Grade)
    assert [response_type(r) for r in llama.completion_requests][2:] == [
        "json_schema",
        "json_object",
    ]


def test_an_invalid_reply_is_repaired_in_the_fallback_mode(llama: FakeLLMServer) -> None:
    llama.script("not json", GOOD)
    parsed, _ = gateway(llama).structured(HI, Grade)
    assert parsed.turn == 1
    _, first, repair = llama.completion_requests
    assert response_type(first) == response_type(repair) == "json_object"
    assert repair.messages[: len(first.messages)] == first.messages
    assert "corrected JSON object only" in repair.messages[-1]["content"]


def test_a_server_error_naming_nothing_is_still_retried(llama: FakeLLMServer) -> None:
    llama.script(Reply.server_error(), GOOD)
    sleeps = NoSleep()
    gw = gateway(llama, sleep=sleeps, max_attempts=3)
    gw._structured_modes[(llama.base_url, "openai/fake-model")] = "json_object"
    parsed, response = gw.structured(HI, Grade)
    assert parsed.turn == 1 and response.attempts == 2
    assert len(sleeps.waits) == 1


def test_a_refusal_of_a_plain_request_is_an_error_not_a_fallback(llama: FakeLLMServer) -> None:
    llama.refuse_response_formats = frozenset({"json_object"})
    gw = gateway(llama)
    with pytest.raises(LLMError) as info:
        gw.complete(LLMRequest(messages=HI, response_format={"type": "json_object"}))
    assert info.value.kind == "fatal"
    assert "but got: json_object" in str(info.value)
    assert len(llama.completion_requests) == 1  # not retried
    assert gw.usage.failed_calls == 1  # no fallback here: a failed call


# ----------------------------------------------------------------------------- cassettes


def recorded_types(path: Path) -> list[str | None]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        (item["request"]["response_format"] or {}).get("type") for item in document["interactions"]
    ]


def cassette_gateway(server: FakeLLMServer | str, path: Path, mode: RecordMode) -> Gateway:
    """A gateway recording into (or replaying) ``path``; a stopped server is given by URL."""
    base = server if isinstance(server, str) else server.base_url
    config = LLMConfig(model="openai/fake-model", api_base=base)
    return Gateway(config, Cassette(path, mode), sleep=NoSleep())


def test_a_cassette_recorded_in_a_fallback_mode_replays_offline(
    llama: FakeLLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "judge.yaml"
    llama.script(GOOD)
    first, _ = cassette_gateway(llama, path, "once").structured(HI, Grade, purpose="judge")
    # Only the call that was answered is recorded, with what it really sent.
    assert recorded_types(path) == ["json_object"]
    made = len(llama.completion_requests)
    base = llama.base_url
    llama.stop()
    # A fresh gateway (a new run: nothing learnt) replays it, asking no server.
    replayed, response = cassette_gateway(base, path, "none").structured(HI, Grade, purpose="judge")
    assert replayed == first and response.replayed
    assert len(llama.completion_requests) == made


def test_a_json_schema_recording_replays_where_json_schema_is_now_refused(
    llama: FakeLLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "judge.yaml"
    with FakeLLMServer([GOOD]) as capable:
        cassette_gateway(capable, path, "once").structured(HI, Grade)
    assert recorded_types(path) == ["json_schema"]
    gw = cassette_gateway(llama, path, "new_episodes")
    gw._structured_modes[(llama.base_url, "openai/fake-model")] = "json_object"
    parsed, response = gw.structured(HI, Grade)
    assert response.replayed and parsed.turn == 1
    assert llama.completion_requests == []


def test_a_miss_in_replay_only_mode_names_the_first_mode(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        path = tmp_path / "empty.yaml"
        path.write_text("version: 1\ninteractions: []\n", encoding="utf-8")
        with pytest.raises(LLMError) as info:
            cassette_gateway(server, path, "none").structured(HI, Grade, purpose="judge")
        assert info.value.kind == "cassette_miss"
        assert server.completion_requests == []


# ----------------------------------------------------------------------------- reply checks


def no_turn_zero(grade: Grade) -> str | None:
    return "turn: 0 is not a turn of the conversation" if grade.turn == 0 else None


def test_a_failed_check_is_repaired_like_invalid_json() -> None:
    with FakeLLMServer([Reply.json({"outcome": "ok", "turn": 0}), GOOD]) as server:
        parsed, _ = gateway(server).structured(HI, Grade, check=no_turn_zero)
        assert parsed.turn == 1
        repair = server.completion_requests[1]
        assert "turn: 0 is not a turn of the conversation" in repair.messages[-1]["content"]


def test_a_check_still_failing_after_the_repair_is_an_error() -> None:
    zero = Reply.json({"outcome": "ok", "turn": 0})
    with FakeLLMServer([zero, zero, GOOD]) as server:
        with pytest.raises(LLMError) as info:
            gateway(server).structured(HI, Grade, check=no_turn_zero)
        assert info.value.kind == "invalid_output"
        assert str(info.value) == (
            "openai/fake-model: no valid Grade after one repair: "
            "turn: 0 is not a turn of the conversation"
        )
        assert len(server.completion_requests) == 2
