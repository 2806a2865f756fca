"""The fake OpenAI-compatible server: protocol over real HTTP, and through real litellm."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest

from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import RecordedRequest
from pytest_agentsim.llm.fake_server import Reply

HI = [{"role": "user", "content": "hi"}]
BODY = {"model": "gpt-test", "messages": HI}

# litellm's streaming types trip a harmless pydantic warning the first time they load.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the .ReadOnly. qualifier:UserWarning"
)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    """litellm, imported offline (no fetch of the remote model cost map)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        yield litellm


def call(
    server: FakeLLMServer,
    body: dict[str, Any] | None = BODY,
    path: str = "/chat/completions",
    method: str = "POST",
    timeout: float = 5,
    headers: dict[str, str] | None = None,
) -> tuple[int, Message, str]:
    """One request to the server; returns status, headers and body text."""
    request = urllib.request.Request(
        server.base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def content(text: str) -> Any:
    return json.loads(text)["choices"][0]["message"]["content"]


def sse_chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


# ----------------------------------------------------------------------------- protocol


def test_scripted_replies_are_served_in_order_then_a_clear_500() -> None:
    with FakeLLMServer(["one"]) as server:
        server.script("two", Reply(content="three"))
        answers = [json.loads(call(server)[2]) for _ in range(3)]
        status, _, text = call(server)

    assert [a["choices"][0]["message"]["content"] for a in answers] == ["one", "two", "three"]
    first = answers[0]
    assert first["id"] == "chatcmpl-fake-1"
    assert first["object"] == "chat.completion"
    assert first["model"] == "gpt-test"
    assert first["choices"][0]["finish_reason"] == "stop"
    assert first["choices"][0]["message"]["role"] == "assistant"
    assert first["usage"] == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    assert status == 500
    error = json.loads(text)["error"]
    assert error["message"] == "fake LLM: no scripted reply left for request #4"
    assert error["type"] == "server_error"


def test_the_v1_less_path_is_served_too(server: FakeLLMServer) -> None:
    server.script("plain")
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/chat/completions", data=json.dumps(BODY).encode()
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert content(response.read().decode()) == "plain"
    assert [r.path for r in server.completion_requests] == ["/chat/completions"]


def test_the_reply_function_answers_when_the_queue_is_empty(server: FakeLLMServer) -> None:
    seen: list[RecordedRequest] = []

    def reply(request: RecordedRequest) -> Reply | str:
        seen.append(request)
        if request.messages[-1]["content"] == "boom":
            raise ValueError("no idea")
        return f"echo {request.messages[-1]['content']}"

    server.reply_function = reply
    server.script("scripted first")
    assert content(call(server)[2]) == "scripted first"
    assert content(call(server)[2]) == "echo hi"
    status, _, text = call(server, {"messages": [{"role": "user", "content": "boom"}]})

    assert status == 500
    assert "no idea" in json.loads(text)["error"]["message"]
    assert [r.messages[-1]["content"] for r in seen] == ["hi", "boom"]


def test_tool_calls_are_rendered_openai_style(server: FakeLLMServer) -> None:
    server.script(
        Reply(
            tool_calls=[
                {"name": "lookup", "arguments": {"z": 1, "a": [2]}},
                {"name": "raw", "arguments": '{"x": 1}', "id": "call_given"},
            ]
        )
    )
    answer = json.loads(call(server)[2])
    choice = answer["choices"][0]

    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_fake_1_0",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"a": [2], "z": 1}'},
        },
        {
            "id": "call_given",
            "type": "function",
            "function": {"name": "raw", "arguments": '{"x": 1}'},
        },
    ]
    assert answer["usage"]["completion_tokens"] == 20


def test_token_counts_and_finish_reason_can_be_scripted(server: FakeLLMServer) -> None:
    server.script(Reply("cut", prompt_tokens=7, completion_tokens=3, finish_reason="length"))
    answer = json.loads(call(server)[2])
    assert answer["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert answer["choices"][0]["finish_reason"] == "length"


def test_structured_output_is_json_content(server: FakeLLMServer) -> None:
    server.script(Reply.json({"verdict": "pass", "score": 1}))
    body = {**BODY, "response_format": {"type": "json_object"}}
    assert json.loads(content(call(server, body)[2])) == {"verdict": "pass", "score": 1}
    assert server.requests[0].body["response_format"] == {"type": "json_object"}


def test_a_rate_limit_carries_retry_after(server: FakeLLMServer) -> None:
    server.script(Reply.rate_limited(retry_after=1.5))
    status, headers, text = call(server)
    assert (status, headers["Retry-After"]) == (429, "1.5")
    error = json.loads(text)["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")


def test_server_errors_and_malformed_bodies(server: FakeLLMServer) -> None:
    server.script(Reply.server_error(), Reply.server_error(503), Reply.malformed())
    statuses = []
    for _ in range(2):
        status, _, text = call(server)
        statuses.append(status)
        assert json.loads(text)["error"]["type"] == "server_error"
    status, _, text = call(server)

    assert statuses == [500, 503]
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(text)
    assert len(server.completion_requests) == 3  # faulted requests are logged too


def test_streaming_sends_chunks_then_done(server: FakeLLMServer) -> None:
    server.script(
        "streamed words", Reply("let me look", tool_calls=[{"name": "f", "arguments": {}}])
    )
    status, headers, text = call(server, {**BODY, "stream": True})
    chunks = sse_chunks(text)

    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert text.endswith("data: [DONE]\n\n")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert len(pieces) > 1
    assert "".join(pieces) == "streamed words"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in chunks[-1]

    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    chunks = sse_chunks(call(server, body)[2])
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert "".join(d.get("content") or "" for d in deltas) == "let me look"
    assert calls[0]["index"] == 0
    assert (calls[0]["id"], calls[0]["function"]["name"]) == ("call_fake_2_0", "f")
    assert "".join(c["function"]["arguments"] for c in calls) == "{}"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_faults_apply_to_streaming_requests(server: FakeLLMServer) -> None:
    server.script(Reply.rate_limited(2))
    status, headers, text = call(server, {**BODY, "stream": True})
    assert (status, headers["Retry-After"]) == (429, "2")
    assert json.loads(text)["error"]["code"] == "rate_limit_exceeded"


def test_a_hang_times_the_client_out_and_stop_does_not_wait_for_it() -> None:
    server = FakeLLMServer([Reply.hang(20)]).start()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        call(server, timeout=0.2)
    timed_out = time.monotonic() - started
    server.stop()
    stopped = time.monotonic() - started

    # Bounds loose enough for a busy machine, far from the hang's 20 s.
    assert 0.15 < timed_out < 5
    assert stopped < 6
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


def test_stop_wakes_a_handler_sleeping_on_latency() -> None:
    server = FakeLLMServer([Reply.hang(5)]).start()
    answers: list[str] = []
    client = threading.Thread(target=lambda: answers.append(content(call(server)[2])))
    client.start()
    started = time.monotonic()
    while not server.requests and time.monotonic() - started < 2:
        time.sleep(0.01)
    server.stop()
    client.join(timeout=1)

    assert not client.is_alive()  # answered at stop(), not after the 5 s
    assert answers == ["(late)"]


def test_latency_does_not_block_a_concurrent_request(server: FakeLLMServer) -> None:
    server.reply_function = lambda request: (
        Reply("slow", latency=4) if request.messages[-1]["content"] == "slow" else "fast"
    )
    slow: list[str] = []
    thread = threading.Thread(
        target=lambda: slow.append(
            content(call(server, {"messages": [{"role": "user", "content": "slow"}]})[2])
        )
    )
    started = time.monotonic()
    thread.start()
    while not server.requests and time.monotonic() - started < 2:
        time.sleep(0.01)
    assert content(call(server)[2]) == "fast"
    fast_done = time.monotonic() - started
    thread.join(timeout=10)
    slow_done = time.monotonic() - started

    assert fast_done < 3  # not queued behind the slow one's 4 s
    assert slow == ["slow"]
    assert slow_done >= 3.9


def test_the_request_log_records_headers_and_body(server: FakeLLMServer) -> None:
    server.script("ok")
    call(server, {**BODY, "temperature": 0}, headers={"Authorization": "Bearer sk-secret-123"})
    call(server, None, path="/models", method="GET")
    [logged] = server.completion_requests

    assert logged.method == "POST"
    assert logged.path == "/v1/chat/completions"
    assert logged.headers["authorization"] == "Bearer sk-secret-123"
    assert logged.body == {**BODY, "temperature": 0}
    assert logged.messages == HI
    assert logged.model == "gpt-test"
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
    ]

    server.script("left over")
    server.reset()
    assert server.requests == []
    status, _, text = call(server)
    assert status == 500  # the queue was cleared too, and the count restarts
    assert json.loads(text)["error"]["message"].endswith("request #1")


def test_models_health_and_unknown_routes(server: FakeLLMServer) -> None:
    status, _, text = call(server, None, path="/models", method="GET")
    assert status == 200
    assert [m["id"] for m in json.loads(text)["data"]] == ["fake-model"]

    health = f"http://127.0.0.1:{server.port}/health"
    with urllib.request.urlopen(health, timeout=5) as response:
        assert response.status == 200

    for method, path in [("GET", "/nowhere"), ("POST", "/embeddings"), ("DELETE", "/models")]:
        status, _, text = call(server, None, path=path, method=method)
        assert status == 404, (method, path)
        assert path in json.loads(text)["error"]["message"]
    assert server.completion_requests == []


def test_start_is_idempotent_and_ports_are_ephemeral() -> None:
    started = time.monotonic()
    with FakeLLMServer() as one, FakeLLMServer() as two:
        assert time.monotonic() - started < 3
        port = one.port
        assert one.start() is one
        assert one.port == port
        assert one.port != two.port
        assert one.base_url == f"http://127.0.0.1:{port}/v1"
    one.stop()  # a second stop is harmless


# ----------------------------------------------------------------------------- litellm


def ask(litellm: Any, server: FakeLLMServer, **options: Any) -> Any:
    return litellm.completion(
        model="openai/fake-model",
        api_base=server.base_url,
        api_key="sk-test",
        messages=HI,
        num_retries=0,
        max_retries=0,
        **options,
    )


def test_litellm_gets_a_scripted_completion(litellm: Any, server: FakeLLMServer) -> None:
    server.script(Reply("Hello from the fake", prompt_tokens=5, completion_tokens=4))
    response = ask(litellm, server)

    assert response.choices[0].message.content == "Hello from the fake"
    assert response.usage.total_tokens == 9
    [request] = server.completion_requests
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.model == "fake-model"
    assert request.messages == HI


def test_litellm_parses_tool_calls(litellm: Any, server: FakeLLMServer) -> None:
    server.script(Reply(tool_calls=[{"name": "lookup", "arguments": {"id": 7}}]))
    response = ask(litellm, server)
    [tool_call] = response.choices[0].message.tool_calls

    assert response.choices[0].finish_reason == "tool_calls"
    assert tool_call.id == "call_fake_1_0"
    assert tool_call.function.name == "lookup"
    assert json.loads(tool_call.function.arguments) == {"id": 7}


def test_litellm_streams(litellm: Any, server: FakeLLMServer) -> None:
    server.script("a streamed answer")
    chunks = list(ask(litellm, server, stream=True))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]

    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces) == "a streamed answer"
    assert server.completion_requests[0].body["stream"] is True


def test_litellm_sees_a_rate_limit_and_a_timeout(litellm: Any, server: FakeLLMServer) -> None:
    server.script(Reply.rate_limited(3), Reply.hang(20))
    with pytest.raises(litellm.RateLimitError):
        ask(litellm, server)
    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        ask(litellm, server, timeout=0.2)
    assert time.monotonic() - started < 5
    assert len(server.completion_requests) == 2  # no retries behind our back


# ----------------------------------------------------------------------------- fixture


def test_the_fixture_serves_a_users_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json
        import urllib.request

        import pytest

        seen = []

        def test_scripted(agentsim_fake_llm):
            seen.append(agentsim_fake_llm)
            agentsim_fake_llm.script("scripted")
            request = urllib.request.Request(
                agentsim_fake_llm.base_url + "/chat/completions",
                data=json.dumps({"model": "m", "messages": []}).encode(),
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.loads(response.read())
            assert answer["choices"][0]["message"]["content"] == "scripted"
            assert len(agentsim_fake_llm.completion_requests) == 1

        def test_fresh_per_test(agentsim_fake_llm):
            assert agentsim_fake_llm.requests == []
            assert agentsim_fake_llm is not seen[0]
            with pytest.raises(RuntimeError, match="not started"):
                seen[0].port  # stopped at the previous test's teardown
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_latency_and_the_calls_in_flight_are_counted() -> None:
    """``latency`` slows every answer; ``max_in_flight`` counts the completions waiting
    at once (20 clients at once, well past the default listen backlog of 5)."""
    together = threading.Barrier(20, timeout=30)

    def reply(request: RecordedRequest) -> str:
        together.wait()  # answers only once all 20 are in, however slowly they start
        return "ok"

    with FakeLLMServer(reply=reply, latency=0.5) as slow:
        assert (slow.in_flight, slow.max_in_flight, slow.busy_seconds) == (0, 0, 0.0)
        threads = [threading.Thread(target=call, args=(slow,)) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(slow.completion_requests) == 20
        assert slow.max_in_flight == 20
        assert slow.in_flight == 0
        assert slow.busy_seconds >= 0.5
        call(slow, path="/models", method="GET", body=None)
        assert slow.max_in_flight == 20  # only completions count
        slow.reset()
        assert (slow.max_in_flight, slow.busy_seconds) == (0, 0.0)


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    import http.client

    with FakeLLMServer(reply=lambda request: "ok", keep_alive=True) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        answers = []
        for _ in range(3):
            connection.request("POST", "/v1/chat/completions", json.dumps(BODY))
            response = connection.getresponse()
            answers.append((response.getheader("Connection"), content(response.read().decode())))
        connection.close()
    assert answers == [("keep-alive", "ok")] * 3
    assert len(server.completion_requests) == 3
