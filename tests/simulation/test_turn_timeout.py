"""The agent's turn timeout and the one-line cause of a broken conversation.

A hung agent, sync or async, must end its conversation as ``agent_error`` naming the turn,
within about the timeout; the wall-time bounds are loose on purpose (10x the timeout),
so that a slow CI machine does not make them flaky.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import Reply
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.messages import LLMConfig
from pytest_agentsim.simulation.llm_agent import LLMAgent
from pytest_agentsim.simulation.runner import run_conversation
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.users import ScriptedUser

TIMEOUT = 0.3


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test, so that the agent threads it abandoned finish too."""
    event = threading.Event()
    yield event
    event.set()


def converse(agent: Any, turns: int = 1, timeout: float | None = TIMEOUT) -> Conversation:
    script = [f"message {n}" for n in range(1, turns + 1)]
    return asyncio.run(
        run_conversation(
            event_id="ev-1",
            user=ScriptedUser(script),
            agent=agent,
            sandbox=ToolSandbox([], {"notes": {}}),
            turn_timeout=timeout,
        )
    )


def timed(agent: Any, turns: int = 1) -> tuple[Conversation, float]:
    started = time.monotonic()
    conversation = converse(agent, turns)
    return conversation, time.monotonic() - started


def test_a_hung_sync_agent_is_an_error_naming_the_turn(release: threading.Event) -> None:
    calls: list[str] = []

    def agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        calls.append(messages[-1]["content"])
        if len(calls) == 3:
            release.wait(60)  # hangs (until the test ends)
        return "ok"

    conversation, elapsed = timed(agent, turns=4)
    assert conversation.stop_reason is StopReason.agent_error
    assert conversation.error == (
        "agent timeout: the agent did not answer turn 3 within 0.3 s (--agentsim-turn-timeout)"
    )
    assert conversation.traceback is None  # nothing raised: the line says it all
    assert calls == ["message 1", "message 2", "message 3"]
    assert [m.content for m in conversation.messages] == [
        "message 1",
        "ok",
        "message 2",
        "ok",
        "message 3",
    ]
    # Turns 1 and 2 answer at once; turn 3 is abandoned after the timeout (loose bound).
    assert elapsed < 10 * TIMEOUT


def test_a_hung_async_agent_is_cancelled_and_an_error(release: threading.Event) -> None:
    cancelled = threading.Event()

    class SlowAgent:
        async def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "late"

    conversation, elapsed = timed(SlowAgent())
    assert conversation.stop_reason is StopReason.agent_error
    assert conversation.error is not None
    assert "the agent did not answer turn 1 within 0.3 s" in conversation.error
    assert cancelled.is_set()
    assert elapsed < 10 * TIMEOUT


def test_an_agent_in_time_is_unaffected_and_a_sync_one_sees_the_context() -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    seen: list[tuple[str, bool]] = []

    def agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        seen.append((marker.get(), threading.current_thread() is threading.main_thread()))
        return "fine"

    async def main() -> Conversation:
        marker.set("the event's scope")
        return await run_conversation(
            event_id="ev-1",
            user=ScriptedUser(["hi", "bye"]),
            agent=agent,
            sandbox=ToolSandbox([]),
            turn_timeout=5,
        )

    conversation = asyncio.run(main())
    assert conversation.stop_reason is StopReason.script_done
    assert conversation.error is None
    # In a worker thread, with the caller's context variables (the LLM scope is one).
    assert seen == [("the event's scope", False)] * 2


def test_without_a_timeout_a_sync_agent_runs_on_the_loops_thread() -> None:
    threads: list[bool] = []

    def agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        threads.append(threading.current_thread() is threading.main_thread())
        return "fine"

    converse(agent, timeout=None)
    assert threads == [True]


def test_a_timeout_error_of_the_agents_own_is_not_a_turn_timeout() -> None:
    def agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        raise TimeoutError("the CRM did not answer")

    conversation = converse(agent)
    assert conversation.error == "agent error: TimeoutError: the CRM did not answer"
    assert conversation.traceback is not None


def test_an_exception_in_the_agents_thread_is_the_agents_error() -> None:
    def agent(messages: list[dict[str, Any]], sandbox: ToolSandbox) -> str:
        raise ValueError("no such\n   order")

    conversation = converse(agent)
    assert conversation.stop_reason is StopReason.agent_error
    assert conversation.error == "agent error: ValueError: no such order"  # one line
    assert conversation.traceback is not None
    assert conversation.traceback.splitlines()[-2:] == ["ValueError: no such", "   order"]
    assert 'raise ValueError("no such\\n   order")' in conversation.traceback


def test_a_model_error_of_the_built_in_agent_leads_with_the_llm_error() -> None:
    with FakeLLMServer([Reply.server_error(503)]) as server:
        gateway = Gateway(
            LLMConfig(model="openai/fake-model", api_base=server.base_url, max_attempts=1)
        )
        agent = LLMAgent("You help.", "openai/fake-model", gateway=gateway)
        conversation = converse(agent, timeout=None)
    assert conversation.stop_reason is StopReason.agent_error
    assert conversation.error is not None
    assert conversation.error.startswith(
        "LLM error: openai/fake-model: gave up after 1 attempts: ServiceUnavailableError: "
    )
    assert "\n" not in conversation.error
    # litellm's internals stay in the traceback, for -v / --tb=long.
    assert conversation.traceback is not None and "litellm" in conversation.traceback
