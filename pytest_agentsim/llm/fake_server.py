"""A fake OpenAI-compatible LLM server on 127.0.0.1, for offline tests of every LLM path.

No model API is reachable in this project's CI, nor in many product teams' CI. Instead of
stubbing litellm out (which leaves the real request/response path untested), tests point
litellm's ``api_base`` at this server: it speaks ``/v1/chat/completions`` over real HTTP
(plain JSON and SSE streaming), answers from scripted replies or a reply function, injects
latency (per reply, or ``latency=`` for every answer, like a slow model) and faults (429
with Retry-After, 5xx, malformed bodies, hangs), can refuse ``response_format`` types the
way llama.cpp's server does (``refuse_response_formats``), and logs every request so
tests can count calls and check what was sent; it also counts the completions in flight
(``max_in_flight``: how many a client really had waiting at once). Users get it, for
their own CI, as the ``agentsim_fake_llm`` fixture.

Standard library only, so it starts in milliseconds on an ephemeral port::

    with FakeLLMServer(["Hello!"]) as server:
        litellm.completion(model="openai/fake-model", api_base=server.base_url, ...)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from typing_extensions import Self

MODEL_NAME = "fake-model"

#: The ``response_format`` types an OpenAI-compatible server may know, in the order
#: llama.cpp's error message lists the ones it accepts.
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")


@dataclass
class Reply:
    """One scripted answer of the fake server."""

    content: str | None = None
    #: items ``{"name": str, "arguments": dict | str}``, optionally with an ``"id"``
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to wait before answering (interrupted by ``stop()``)
    latency: float = 0.0
    #: sent verbatim instead of a completion (an error body, or malformed JSON)
    raw_body: str | None = None
    #: default: the length of the request's message text // 4, at least 1
    prompt_tokens: int | None = None
    #: default: ``len(content) // 4 + 10 * len(tool_calls)``, at least 1
    completion_tokens: int | None = None
    #: default: ``"tool_calls"`` if there are tool calls, else ``"stop"``
    finish_reason: str | None = None

    @classmethod
    def rate_limited(cls, retry_after: float = 0.0) -> Reply:
        """A 429 with a ``Retry-After`` header, as OpenAI sends it."""
        return cls(
            status=429,
            headers={"Retry-After": f"{retry_after:g}"},
            raw_body=_error_body(
                "fake LLM: rate limit reached", "rate_limit_error", "rate_limit_exceeded"
            ),
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        """An OpenAI-shaped server error (500 unless told)."""
        return cls(
            status=status, raw_body=_error_body("fake LLM: the server had an error", "server_error")
        )

    @classmethod
    def malformed(cls) -> Reply:
        """A 200 whose body is not JSON (truncated mid-object)."""
        return cls(raw_body='{"id": "chatcmpl-broken", "choices": [')

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Answers normally, but only after ``seconds``: long enough for a client timeout."""
        return cls(content="(late)", latency=seconds)

    @classmethod
    def json(cls, data: Any) -> Reply:
        """Structured output: ``data`` serialised as the message content."""
        return cls(content=json.dumps(data))


def _error_body(message: str, kind: str, code: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    #: as received, query string included
    path: str
    #: lower-cased names
    headers: dict[str, str]
    #: the parsed JSON body; ``{}`` if there was none or it was not a JSON object
    body: dict[str, Any]

    @property
    def route(self) -> str:
        """The path without query string and trailing slash."""
        return urlsplit(self.path).path.rstrip("/") or "/"

    @property
    def is_completion(self) -> bool:
        return self.method == "POST" and _is_completion_route(self.route)

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages", [])
        return messages if isinstance(messages, list) else []

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None


ReplyFunction = Callable[[RecordedRequest], "Reply | str"]


def _is_completion_route(route: str) -> bool:
    return route.endswith("/chat/completions")


class FakeLLMServer:
    """Serves scripted chat completions on an ephemeral port of 127.0.0.1.

    Each chat request takes the next scripted reply (FIFO); when none is left it asks
    ``reply_function``; without one it answers 500 "no scripted reply left", so a test
    that makes one call too many fails loudly instead of getting a silent default.

    ``refuse_response_formats`` makes it answer like a server without those structured
    output modes: llama.cpp's server (before it learnt ``json_schema``, and its forks) answers
    ``{"type": "json_schema", ...}`` with HTTP 500 ``response_format type must be one of
    "text" or "json_object", but got: json_schema``; ``refusal_status=400`` gives the
    newer servers' answer. A refused request is logged but takes no scripted reply, as a
    server refuses it before generating anything.

    ``latency`` is added to every completion's answer (a reply's own latency on top), so a
    test or benchmark can stand in for a slow model; the server answers any number of
    requests at once (a thread each), so it never limits a client's concurrency.
    """

    def __init__(
        self,
        replies: Iterable[Reply | str] = (),
        reply: ReplyFunction | None = None,
        *,
        refuse_response_formats: Collection[str] = (),
        refusal_status: int = 500,
        latency: float = 0.0,
        keep_alive: bool = False,
    ) -> None:
        self._queue: list[Reply] = [_as_reply(item) for item in replies]
        self.reply_function: ReplyFunction | None = reply
        #: ``response_format`` types answered with an error, e.g. ``{"json_schema"}``
        self.refuse_response_formats: frozenset[str] = frozenset(refuse_response_formats)
        self.refusal_status = refusal_status
        #: seconds every completion waits before its answer
        self.latency = latency
        #: keep connections open between requests, as providers do (a benchmark's choice:
        #: a client's pooled connection then outlives ``stop()``)
        self.keep_alive = keep_alive
        self._in_flight = 0
        self._max_in_flight = 0
        self._first_arrival: float | None = None
        self._last_answer: float | None = None
        self._log: list[RecordedRequest] = []
        self._completions = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port; a no-op if already started."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True  # a hanging handler never keeps the process alive
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; handlers still waiting on latency wake up at once."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=1)
        self._server = self._thread = None

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
        """What litellm takes as ``api_base`` (with a model like ``openai/fake-model``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- script and log ------------------------------------------------------------------

    def script(self, *replies: Reply | str) -> None:
        """Append replies to the queue; a string is ``Reply(content=string)``."""
        with self._lock:
            self._queue.extend(_as_reply(item) for item in replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (faulted ones too), in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        """Only the ``POST .../chat/completions`` requests."""
        return [request for request in self.requests if request.is_completion]

    def reset(self) -> None:
        """Forget the queued replies, the request log, the request count and the in-flight
        record."""
        with self._lock:
            self._queue.clear()
            self._log.clear()
            self._completions = 0
            self._max_in_flight = self._in_flight
            self._first_arrival = self._last_answer = None

    @property
    def in_flight(self) -> int:
        """Completion requests received and not yet answered."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most completion requests ever waiting for their answers at once."""
        with self._lock:
            return self._max_in_flight

    @property
    def busy_seconds(self) -> float:
        """From the first completion request's arrival to the last answer sent (0 before
        any): the time a client spent on its model calls, its start-up left out."""
        with self._lock:
            if self._first_arrival is None or self._last_answer is None:
                return 0.0
            return max(0.0, self._last_answer - self._first_arrival)

    def _arrived(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            if self._first_arrival is None:
                self._first_arrival = time.monotonic()

    def _answered(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_answer = time.monotonic()

    # -- answering (called from handler threads) -----------------------------------------

    def _record(self, request: RecordedRequest) -> int:
        """Log the request; for a completion, return its 1-based number (else 0)."""
        with self._lock:
            self._log.append(request)
            if not request.is_completion:
                return 0
            self._completions += 1
            return self._completions

    def _next_reply(self, request: RecordedRequest, number: int) -> Reply:
        with self._lock:
            scripted = self._queue.pop(0) if self._queue else None
        if scripted is not None:
            return scripted
        function = self.reply_function
        if function is None:
            return _failure(f"fake LLM: no scripted reply left for request #{number}")
        try:
            return _as_reply(function(request))
        except Exception as exc:  # the test's reply function failed: say so over HTTP
            return _failure(f"fake LLM: the reply function raised {type(exc).__name__}: {exc}")

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _refusal(self, request: RecordedRequest) -> Reply | None:
        """The error a server without the request's ``response_format`` type answers, if any."""
        response_format = request.body.get("response_format")
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if not isinstance(kind, str) or kind not in self.refuse_response_formats:
            return None
        accepted = [t for t in RESPONSE_FORMAT_TYPES if t not in self.refuse_response_formats]
        names = " or ".join(f'"{name}"' for name in accepted)
        message = f"response_format type must be one of {names}, but got: {kind}"
        status = self.refusal_status
        kind_name = "server_error" if status >= 500 else "invalid_request_error"
        body = json.dumps({"error": {"code": status, "message": message, "type": kind_name}})
        return Reply(status=status, raw_body=body)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections beyond it when many clients connect at
    # once; each dropped one retries a second later, which would look like a slow client.
    request_queue_size = 1024


def _as_reply(item: Reply | str) -> Reply:
    return item if isinstance(item, Reply) else Reply(content=item)


def _failure(message: str) -> Reply:
    return Reply(status=500, raw_body=_error_body(message, "server_error"))


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tool_call(call: dict[str, Any], number: int, index: int) -> dict[str, Any]:
    arguments = call.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, sort_keys=True)
    return {
        "id": call.get("id") or f"call_fake_{number}_{index}",
        "type": "function",
        "function": {"name": call["name"], "arguments": arguments},
    }


def _completion(reply: Reply, request: RecordedRequest, number: int) -> dict[str, Any]:
    calls = [_tool_call(call, number, index) for index, call in enumerate(reply.tool_calls)]
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if calls:
        message["tool_calls"] = calls
    text = " ".join(_message_text(m) for m in request.messages)
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
        "model": request.model or MODEL_NAME,
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
    """The completion as ``chat.completion.chunk`` deltas, the way OpenAI streams it."""
    choice = completion["choices"][0]
    message = choice["message"]
    base = {key: completion[key] for key in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    content = message.get("content") or ""
    step = max(1, -(-len(content) // 3))  # about three pieces
    chunks += [chunk({"content": content[i : i + step]}) for i in range(0, len(content), step)]
    for index, call in enumerate(message.get("tool_calls", [])):
        # first the id and name, then the arguments, as a separate delta
        head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        args = {"index": index, "function": {"arguments": call["function"]["arguments"]}}
        chunks.append(chunk({"tool_calls": [{"index": index, **head}]}))
        chunks.append(chunk({"tool_calls": [args]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def _handler_for(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 with Content-Length on every answer, and one request per connection
        # unless ``keep_alive``: no keep-alive connection outlives stop() in a client's pool.
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: test output is not the place for an access log."""

        def _send(
            self,
            status: int,
            body: str,
            headers: dict[str, str] | None = None,
            content_type: str = "application/json",
        ) -> None:
            data = body.encode("utf-8")
            self.close_connection = not server.keep_alive
            if getattr(self, "_in_flight", False):
                # Answered once the answer leaves: a client that has read it must not
                # still find its call counted in flight.
                self._in_flight = False
                server._answered()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "keep-alive" if server.keep_alive else "close")
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except OSError:
                pass  # the client gave up (a timeout under test): nothing to tell it

        def _read(self) -> RecordedRequest:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
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

        def _not_found(self, request: RecordedRequest) -> None:
            message = f"fake LLM: no route {request.method} {request.path}"
            self._send(404, _error_body(message, "invalid_request_error", "not_found"))

        def do_GET(self) -> None:
            request = self._read()
            server._record(request)
            if request.route in ("/v1/models", "/models"):
                models = [{"id": MODEL_NAME, "object": "model", "owned_by": "pytest-agentsim"}]
                self._send(200, json.dumps({"object": "list", "data": models}))
            elif request.route == "/health":
                self._send(200, json.dumps({"status": "ok"}))
            else:
                self._not_found(request)

        def do_POST(self) -> None:
            request = self._read()
            number = server._record(request)
            if not request.is_completion:
                self._not_found(request)
                return
            server._arrived()
            self._in_flight = True
            try:
                self._answer(request, number)
            except Exception as exc:  # a bad Reply (e.g. a tool call without a name)
                message = f"fake LLM: could not render the reply: {type(exc).__name__}: {exc}"
                self._send(500, _error_body(message, "server_error"))
            finally:
                if self._in_flight:  # nothing was sent (a hang cut short by stop())
                    self._in_flight = False
                    server._answered()

        def _answer(self, request: RecordedRequest, number: int) -> None:
            reply = server._refusal(request) or server._next_reply(request, number)
            if reply.latency + server.latency > 0:
                server._sleep(reply.latency + server.latency)
            if reply.status != 200 or reply.raw_body is not None:
                self._send(reply.status, reply.raw_body or "", reply.headers)
                return
            completion = _completion(reply, request, number)
            if not request.body.get("stream"):
                self._send(200, json.dumps(completion), reply.headers)
                return
            options = request.body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            events = [
                f"data: {json.dumps(c)}\n\n" for c in _stream_chunks(completion, include_usage)
            ]
            headers = {"Cache-Control": "no-cache", **reply.headers}
            body = "".join(events) + "data: [DONE]\n\n"
            self._send(200, body, headers, content_type="text/event-stream")

        def _other(self) -> None:
            request = self._read()
            server._record(request)
            self._not_found(request)

        do_PUT = do_DELETE = do_PATCH = _other

    return Handler
