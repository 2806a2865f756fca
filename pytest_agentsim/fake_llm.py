"""A fake OpenAI-compatible LLM server on 127.0.0.1, for offline tests of every LLM path.

No model API is reachable in this project's CI, nor in many product teams' CI. Instead of
stubbing litellm out (which leaves the real request/response path untested), tests point
litellm's ``api_base`` at this server: it speaks ``/v1/chat/completions`` over real HTTP,
answers from scripted replies or a reply function, injects latency and faults (429 with
Retry-After, 5xx, malformed bodies, hangs), and logs every request so tests can count
calls and grep what was sent. Users get it as the ``agentsim_fake_llm`` fixture.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass
class Reply:
    """One scripted answer of the fake server."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    latency: float = 0.0
    raw_body: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None

    @classmethod
    def rate_limited(cls, retry_after: float = 0.0) -> Reply:
        return cls(
            status=429,
            headers={"Retry-After": f"{retry_after:g}"},
            raw_body=_error_body("Rate limit reached", "rate_limit_error", "rate_limit_exceeded"),
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status=status, raw_body=_error_body("The server had an error", "server_error"))

    @classmethod
    def malformed(cls) -> Reply:
        return cls(raw_body='{"id": "chatcmpl-broken", "choices": [')

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        return cls(content="(late)", latency=seconds)

    @classmethod
    def json(cls, data: Any) -> Reply:
        return cls(content=json.dumps(data))


def _error_body(message: str, kind: str, code: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": kind, "code": code}})


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages", [])
        return messages if isinstance(messages, list) else []

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None


ReplyFunction = Callable[[RecordedRequest], "Reply | str"]


class FakeLLMServer:
    """Serves scripted chat completions on an ephemeral port of 127.0.0.1."""

    def __init__(
        self, replies: Iterable[Reply | str] = (), reply: ReplyFunction | None = None
    ) -> None:
        self._queue: list[Reply] = [_as_reply(item) for item in replies]
        self.reply_function = reply
        self._log: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake LLM server is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What litellm takes as ``api_base`` (with a model like ``openai/fake``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- script and log ------------------------------------------------------------------

    def script(self, *replies: Reply | str) -> None:
        with self._lock:
            self._queue.extend(_as_reply(item) for item in replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._log.clear()

    # -- answering -----------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self._log.append(request)
            return len(self._log)

    def _next_reply(self, request: RecordedRequest, number: int) -> Reply:
        with self._lock:
            scripted = self._queue.pop(0) if self._queue else None
        if scripted is not None:
            return scripted
        if self.reply_function is None:
            return Reply(
                status=500,
                raw_body=_error_body(
                    f"fake LLM: no scripted reply left for request #{number}", "server_error"
                ),
            )
        try:
            return _as_reply(self.reply_function(request))
        except Exception as exc:  # the test's reply function failed: say so over HTTP
            return Reply(
                status=500,
                raw_body=_error_body(f"fake LLM: reply function raised {exc!r}", "server_error"),
            )

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _as_reply(item: Reply | str) -> Reply:
    return item if isinstance(item, Reply) else Reply(content=item)


def _completion(reply: Reply, request: RecordedRequest, number: int) -> dict[str, Any]:
    calls = [
        {
            "id": call.get("id") or f"call_fake_{number}_{index}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": call["arguments"]
                if isinstance(call.get("arguments"), str)
                else json.dumps(call.get("arguments", {}), sort_keys=True),
            },
        }
        for index, call in enumerate(reply.tool_calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if calls:
        message["tool_calls"] = calls
    text = " ".join(str(m.get("content") or "") for m in request.messages)
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else max(1, len(text) // 4)
    completion = (
        reply.completion_tokens
        if reply.completion_tokens is not None
        else max(1, len(reply.content or "") // 4 + 10 * len(calls))
    )
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model or "fake-model",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _stream_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """The completion as ``chat.completion.chunk`` deltas, as OpenAI streams it."""
    choice = completion["choices"][0]
    message = choice["message"]
    base = {key: completion[key] for key in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    content = message.get("content") or ""
    step = max(1, len(content) // 3)
    chunks += [chunk({"content": content[i : i + step]}) for i in range(0, len(content), step)]
    for index, call in enumerate(message.get("tool_calls", [])):
        chunks.append(chunk({"tool_calls": [{"index": index, **call}]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def _handler_for(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: test output is not the place for an access log."""

        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self._write(data)

        def _write(self, data: bytes) -> None:
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout under test): nothing to tell it

        def _read(self) -> RecordedRequest:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            return RecordedRequest(
                method=self.command,
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body if isinstance(body, dict) else {},
            )

        def do_GET(self) -> None:
            request = self._read()
            server._record(request)
            if request.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fake-model"}]}))
            elif request.path == "/health":
                self._send(200, "{}")
            else:
                self._send(404, _error_body(f"no route {request.path}", "invalid_request_error"))

        def do_POST(self) -> None:
            request = self._read()
            number = server._record(request)
            if not request.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, _error_body(f"no route {request.path}", "invalid_request_error"))
                return
            reply = server._next_reply(request, number)
            if reply.latency:
                server._sleep(reply.latency)
            if reply.status != 200 or reply.raw_body is not None:
                self._send(reply.status, reply.raw_body or "", reply.headers)
                return
            completion = _completion(reply, request, number)
            if not request.body.get("stream"):
                self._send(200, json.dumps(completion), reply.headers)
                return
            options = request.body.get("stream_options") or {}
            chunks = _stream_chunks(completion, bool(options.get("include_usage")))
            body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self._write(data)

    return Handler
