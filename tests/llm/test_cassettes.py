"""Cassettes: record/replay of gateway calls, over real HTTP to the fake server via litellm."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_agentsim.llm.cassettes import Cassette
from pytest_agentsim.llm.cassettes import RecordMode
from pytest_agentsim.llm.cassettes import request_key
from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import RecordedRequest
from pytest_agentsim.llm.fake_server import Reply
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.messages import CassetteMiss
from pytest_agentsim.llm.messages import LLMConfig
from pytest_agentsim.llm.messages import LLMError
from pytest_agentsim.llm.messages import LLMRequest
from pytest_agentsim.llm.messages import LLMResponse
from pytest_agentsim.llm.messages import ModelPrice

KEY = "sk-live-abcdef123456"

# litellm's streaming types trip a harmless pydantic warning the first time they load.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the .ReadOnly. qualifier:UserWarning"
)


def echo(request: RecordedRequest) -> Reply:
    """Answers with the last message, so a replay can be told from the request."""
    return Reply(
        content=f"echo: {request.messages[-1]['content']}",
        prompt_tokens=1000,
        completion_tokens=1000,
    )


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(reply=echo) as running:
        yield running


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cassettes" / "test_refunds.yaml"


PRICES = {"openai/fake-model": ModelPrice(input_per_million=2, output_per_million=6)}


def gateway(server: FakeLLMServer, path: Path, mode: RecordMode, **settings: Any) -> Gateway:
    settings.setdefault("api_base", server.base_url)
    config = LLMConfig(model="openai/fake-model", prices=PRICES, **settings)
    return Gateway(config, Cassette(path, mode))


def request(text: str, purpose: str = "user", **fields: Any) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": text}], purpose=purpose, **fields)


def run(gw: Gateway, *texts: str) -> list[LLMResponse]:
    return [gw.complete(request(text)) for text in texts]


def recorded(path: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["version"] == 1
    interactions: list[dict[str, Any]] = document["interactions"]
    return interactions


# ----------------------------------------------------------------------------- modes


def test_mode_none_without_a_recording_is_a_clear_miss(server: FakeLLMServer, path: Path) -> None:
    gw = gateway(server, path, "none")
    with pytest.raises(CassetteMiss) as info:
        gw.complete(request("Where is my   refund\nfor order 42? " + "x" * 80, purpose="judge"))
    assert info.value.kind == "cassette_miss"
    assert isinstance(info.value, LLMError)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))  # outside the working directory: absolute
    assert "no recorded judge call to openai/fake-model" in message
    assert "'Where is my refund for order 42? xxxxxxxxxxxxxxxxxxxxxxxx...'" in message
    assert "record mode 'none'" in message
    assert message.endswith("rerun with --agentsim-record-mode=new_episodes to record it")
    assert server.completion_requests == []
    assert not path.exists()


def test_once_records_a_new_cassette_then_replays_it(server: FakeLLMServer, path: Path) -> None:
    first = gateway(server, path, "once")
    live = run(first, "hello", "where is my refund?")
    assert len(server.completion_requests) == 2
    assert [r.replayed for r in live] == [False, False]
    assert [i["purpose"] for i in recorded(path)] == ["user", "user"]
    assert first.usage.calls == 2

    again = gateway(server, path, "once")  # a new run: the file exists now
    replayed = run(again, "hello", "where is my refund?")
    assert len(server.completion_requests) == 2  # nothing new went out
    assert [r.message for r in replayed] == [r.message for r in live]
    assert [r.content for r in replayed] == ["echo: hello", "echo: where is my refund?"]
    assert all(r.replayed and r.cost_usd == 0 and r.attempts == 0 for r in replayed)
    assert [r.prompt_tokens for r in replayed] == [1000, 1000]  # as recorded, for reports
    usage = again.usage
    assert (usage.calls, usage.replayed_calls, usage.prompt_tokens, usage.cost_usd) == (0, 2, 0, 0)

    with pytest.raises(CassetteMiss, match="record mode 'once'"):
        run(again, "something new")
    assert len(server.completion_requests) == 2


def test_new_episodes_records_only_what_is_new(server: FakeLLMServer, path: Path) -> None:
    run(gateway(server, path, "new_episodes"), "hello")
    assert len(server.completion_requests) == 1

    gw = gateway(server, path, "new_episodes")
    responses = run(gw, "hello", "second question")
    assert [r.replayed for r in responses] == [True, False]
    assert len(server.completion_requests) == 2
    assert server.completion_requests[-1].messages[-1]["content"] == "second question"
    assert [i["request"]["messages"][0]["content"] for i in recorded(path)] == [
        "hello",
        "second question",
    ]
    assert (gw.usage.calls, gw.usage.replayed_calls) == (1, 1)


def test_all_calls_every_time_and_replaces_recordings(server: FakeLLMServer, path: Path) -> None:
    run(gateway(server, path, "new_episodes"), "hello", "bye")
    before = recorded(path)
    server.reply_function = lambda request: Reply(content="a newer answer")

    gw = gateway(server, path, "all")
    responses = run(gw, "hello")
    assert len(server.completion_requests) == 3
    assert responses[0].replayed is False
    after = recorded(path)
    assert [i["key"] for i in after] == [i["key"] for i in before]  # replaced in place
    assert after[0]["response"]["message"]["content"] == "a newer answer"
    assert after[1] == before[1]
    assert gateway(server, path, "none").complete(request("hello")).content == "a newer answer"


# ----------------------------------------------------------------------------- the key


def test_the_key_ignores_purpose_and_connection_but_not_the_question(
    server: FakeLLMServer, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = request("hello", purpose="user")
    assert request_key(base) == request_key(request("hello", purpose="judge"))
    assert len(request_key(base)) == 16
    changed = [
        request("hello!"),
        request("hello", model="openai/other"),
        request("hello", temperature=0.5),
        request("hello", max_tokens=10),
        request("hello", tools=[{"type": "function", "function": {"name": "f"}}]),
        request("hello", response_format={"type": "json_object"}),
    ]
    assert len({request_key(base), *(request_key(r) for r in changed)}) == 7

    gateway(server, path, "once").complete(request("hello", purpose="user"))
    with FakeLLMServer() as elsewhere:  # another api_base, key and timeout
        monkeypatch.setenv("OTHER_PROVIDER_KEY", "another-key-0000")
        gw = gateway(elsewhere, path, "none", api_key_env="OTHER_PROVIDER_KEY", timeout=5)
        hit = gw.complete(request("hello", purpose="judge"))
        assert hit.replayed and hit.content == "echo: hello"
        with pytest.raises(CassetteMiss):
            gw.complete(request("hello!", purpose="judge"))
        assert elsewhere.completion_requests == []


def test_the_configured_max_tokens_is_a_limit_not_part_of_the_key(
    server: FakeLLMServer, path: Path
) -> None:
    gateway(server, path, "once", max_tokens=100).complete(request("hello"))
    assert server.completion_requests[0].body["max_tokens"] == 100
    assert recorded(path)[0]["request"]["max_tokens"] is None
    hit = gateway(server, path, "none", max_tokens=2000).complete(request("hello"))
    assert hit.replayed and len(server.completion_requests) == 1


def test_the_gateways_defaults_are_part_of_the_key(server: FakeLLMServer, path: Path) -> None:
    gateway(server, path, "once").complete(request("hello"))
    assert recorded(path)[0]["request"]["temperature"] == 0.0
    warmer = Gateway(
        LLMConfig(model="openai/fake-model", api_base=server.base_url, temperature=0.7),
        Cassette(path, "none"),
    )
    with pytest.raises(CassetteMiss):
        warmer.complete(request("hello"))


# ----------------------------------------------------------------------------- the file


def test_the_file_is_reviewable_yaml(server: FakeLLMServer, path: Path) -> None:
    server.reply_function = lambda request: Reply(
        tool_calls=[{"name": "refund", "arguments": {"order": 42}}]
    )
    gw = gateway(server, path, "once")
    system = "You are a support agent.\nNever refund twice.\nAlways confirm first."
    gw.complete(
        LLMRequest(
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": "refund order 42"},
            ],
            purpose="agent",
        )
    )
    text = path.read_text(encoding="utf-8")
    assert "content: |-\n" in text
    assert "\n        You are a support agent.\n        Never refund twice.\n" in text
    assert text.startswith("version: 1\ninteractions:\n- key: ")  # then each entry's keys sorted
    (interaction,) = recorded(path)
    assert set(interaction) == {"key", "purpose", "request", "response"}
    assert interaction["purpose"] == "agent"
    assert interaction["request"]["messages"][0]["content"] == system
    assert set(interaction["request"]) == {
        "model",
        "messages",
        "tools",
        "response_format",
        "temperature",
        "max_tokens",
    }
    assert set(interaction["response"]) == {
        "message",
        "model",
        "prompt_tokens",
        "completion_tokens",
    }
    (call,) = interaction["response"]["message"]["tool_calls"]
    assert call["function"] == {"name": "refund", "arguments": '{"order": 42}'}
    assert interaction["response"]["model"] == "openai/fake-model"
    assert "&id" not in text and "*id" not in text  # no YAML anchors


def test_secrets_never_reach_any_file(
    server: FakeLLMServer, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTSIM_TEST_API_KEY", KEY)
    config = LLMConfig(
        model="openai/fake-model",
        api_base=server.base_url,
        api_key_env="AGENTSIM_TEST_API_KEY",
        secret_patterns=[r"ACME-\d{4}"],
    )
    gw = Gateway(config, Cassette(path, "new_episodes"))
    leaky = f"my key is {KEY}, header Authorization: Bearer abc123xyz and order ACME-1234"
    response = gw.complete(request(leaky))
    assert KEY in response.content  # the live answer is untouched...
    assert server.completion_requests[0].headers["authorization"] == f"Bearer {KEY}"

    files = [p for p in path.parent.parent.rglob("*") if p.is_file()]
    assert files == [path]
    text = path.read_text(encoding="utf-8")
    assert KEY not in text  # ...the recording is not
    assert "abc123xyz" not in text
    assert "ACME-1234" not in text
    assert "my key is [REDACTED], header Authorization: [REDACTED] and order [REDACTED]" in text

    # The key is a hash of the real request, so the redacted recording still replays.
    replay = Gateway(config, Cassette(path, "none")).complete(request(leaky))
    assert replay.replayed
    assert replay.content.startswith("echo: my key is [REDACTED]")

    with pytest.raises(CassetteMiss) as info:
        Gateway(config, Cassette(path, "none")).complete(request(f"again {KEY}"))
    assert KEY not in str(info.value)
    assert "'again [REDACTED]'" in str(info.value)


def test_a_cassette_alone_redacts_credential_env_vars(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTSIM_TEST_API_KEY", KEY)
    monkeypatch.setenv("SHOP_TOKEN", "tok-987654321")
    cassette = Cassette(path, "all", secrets=["hunter2-password"], patterns=[r"ACME-\d+"])
    question = request(f"{KEY} tok-987654321 hunter2-password ACME-7 fine")
    response = LLMResponse(
        message={"role": "assistant", "content": "ok"}, model="openai/fake-model"
    )
    cassette.record(question.model_copy(update={"model": "openai/fake-model"}), response)
    text = path.read_text(encoding="utf-8")
    assert "content: '[REDACTED] [REDACTED] [REDACTED] [REDACTED] fine'" in text


def test_every_recorded_call_is_written_at_once_and_whole(
    server: FakeLLMServer, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = gateway(server, path, "new_episodes")
    run(gw, "one")
    assert len(recorded(path)) == 1  # written after the call, not at the end of the run
    run(gw, "two")
    assert len(recorded(path)) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files
    before = path.read_text(encoding="utf-8")
    real_write = os.write

    def half_then_full(handle: int, data: bytes) -> int:
        real_write(handle, bytes(data)[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="disk full"):
        run(gw, "three")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == before  # cut back: no half entry
    run(gw, "four")  # the next call writes the whole file again, the lost entry too
    assert [i["request"]["messages"][0]["content"] for i in recorded(path)] == [
        "one",
        "two",
        "three",
        "four",
    ]

    def crash(source: Any, target: Any) -> None:
        raise OSError("disk full")

    before = path.read_text(encoding="utf-8")
    monkeypatch.setattr(os, "replace", crash)
    cassette = gw.cassette
    assert cassette is not None
    cassette.add_secrets(["four"])  # redacting an earlier entry rewrites the whole file
    with pytest.raises(OSError, match="disk full"):
        run(gw, "five")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == before  # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_new_call_is_appended_not_rewritten(
    server: FakeLLMServer, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = gateway(server, path, "new_episodes")
    renames: list[Any] = []
    real_replace = os.replace

    def replace(*args: Any) -> None:
        renames.append(args)
        real_replace(*args)

    monkeypatch.setattr(os, "replace", replace)
    run(gw, "one")  # a new file: written once, directly
    written = path.read_text(encoding="utf-8")
    run(gw, "two", "three")
    assert renames == []  # no temporary file renamed over it: appended in place
    assert path.read_text(encoding="utf-8").startswith(written)
    assert len(recorded(path)) == 3
    assert len(Cassette(path, "none")) == 3


def test_a_cassette_of_the_older_layout_replays_and_grows(
    server: FakeLLMServer, path: Path
) -> None:
    """Files written before entries were appended end with ``version: 1``: they still
    replay, and the first new entry rewrites them in the current layout."""
    run(gateway(server, path, "new_episodes"), "one", "two")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    old = yaml.safe_dump(document, sort_keys=True, allow_unicode=True)
    assert old.startswith("interactions:\n") and old.endswith("version: 1\n")
    path.write_text(old, encoding="utf-8")
    server.reset()
    replayed = run(gateway(server, path, "none"), "one", "two")
    assert all(response.replayed for response in replayed)
    assert server.completion_requests == []
    run(gateway(server, path, "new_episodes"), "three")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("version: 1\ninteractions:\n")
    assert [i["request"]["messages"][0]["content"] for i in recorded(path)] == [
        "one",
        "two",
        "three",
    ]


def recording(text: str) -> tuple[LLMRequest, LLMResponse]:
    """A request and its response, as the gateway hands them to a cassette."""
    response = LLMResponse(
        message={"role": "assistant", "content": f"answer to:\n{text}"},
        model="openai/fake-model",
        prompt_tokens=3,
        completion_tokens=4,
    )
    return request(f"question\n{text}\n  indented: [1, 2]", model="openai/fake-model"), response


def test_the_file_is_the_canonical_dump_however_it_grew(path: Path) -> None:
    """Each call writes one new chunk; the file stays exactly what writing it whole gives."""
    from pytest_agentsim.llm.cassettes import cassette_text as dump_yaml

    cassette = Cassette(path, "all")
    for n in range(12):
        cassette.record(*recording(f"call {n}"))
    cassette.record(*recording("call 3"))  # re-recorded in place
    text = path.read_text(encoding="utf-8")
    assert dump_yaml(yaml.safe_load(text)) == text
    assert [i["request"]["messages"][0]["content"].split("\n")[1] for i in recorded(path)] == [
        f"call {n}" for n in range(12)
    ]
    # A secret known only now is redacted from what was recorded before it, too.
    cassette.add_secrets(["call 7"])
    cassette.record(*recording("call 12"))
    text = path.read_text(encoding="utf-8")
    assert "call 7" not in text and "call 6" in text
    assert dump_yaml(yaml.safe_load(text)) == text
    # A cassette loaded from the file writes it back the same way.
    again = Cassette(path, "new_episodes")
    again.record(*recording("call 13"))
    assert dump_yaml(yaml.safe_load(path.read_text(encoding="utf-8"))) == path.read_text(
        encoding="utf-8"
    )


def test_concurrent_calls_all_get_recorded(server: FakeLLMServer, path: Path) -> None:
    gw = gateway(server, path, "new_episodes", concurrency=4)

    async def many() -> list[LLMResponse]:
        return await asyncio.gather(*(gw.acomplete(request(f"q{n}")) for n in range(8)))

    asyncio.run(many())
    assert sorted(i["request"]["messages"][0]["content"] for i in recorded(path)) == [
        f"q{n}" for n in range(8)
    ]
    assert len(Cassette(path, "none")) == 8


# ----------------------------------------------------------------------------- corrupt files


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "version: 1\ninteractions:\n  - key: [unclosed\n",
            r"test_refunds.yaml:4: invalid YAML in LLM cassette: ",
        ),
        (
            "version: 1\ninteractions:\n  - key: 0123456789abcdef\n    purpose: user\n"
            "    request: {model: m, messages: []}\n",
            r"test_refunds.yaml:3: invalid LLM cassette: missing required field "
            r"'interactions\[0\].response'",
        ),
        ("version: 2\ninteractions: []\n", r"test_refunds.yaml:1: invalid LLM cassette: version"),
        ("- just a list\n", r"test_refunds.yaml: the LLM cassette must be a mapping"),
    ],
    ids=["yaml", "schema", "version", "not-a-mapping"],
)
def test_a_corrupt_cassette_is_a_one_line_usage_error(path: Path, text: str, error: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(pytest.UsageError, match=error) as info:
        Cassette(path, "new_episodes")
    assert "\n" not in str(info.value)


def test_a_key_recorded_twice_is_an_error(path: Path) -> None:
    entry = (
        "  - key: 0123456789abcdef\n    request: {model: m, messages: []}\n"
        "    response: {message: {role: assistant, content: hi}, model: m}\n"
    )
    path.parent.mkdir(parents=True)
    path.write_text("version: 1\ninteractions:\n" + entry + entry, encoding="utf-8")
    with pytest.raises(pytest.UsageError, match=r"test_refunds.yaml:6: .* recorded twice"):
        Cassette(path, "none")


def test_an_empty_file_is_an_empty_cassette(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("", encoding="utf-8")
    cassette = Cassette(path, "once")
    assert len(cassette) == 0
    assert not cassette.may_record  # it existed: 'once' never records into it
