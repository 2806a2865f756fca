"""Driving conversations: simulated user <-> agent under test <-> sandboxed tools.

The agent under test (:data:`Agent`) is anything with a ``respond(messages, sandbox)``
method, or any callable ``agent(messages, sandbox)``; it gets the conversation so far as
OpenAI chat messages and returns the assistant message (:data:`AgentReply`): a string, an
OpenAI-format dict, or a :class:`~pytest_agentsim.core.models.Message`. It may be
``async``. Tool calls it returns are run by the sandbox and fed back until it answers the
user in words.

With a turn timeout (``--agentsim-turn-timeout``), each call of the agent must answer in
time or the conversation ends in ``agent_error`` naming the turn. An async agent is
awaited with the timeout and cancelled past it. A sync agent then runs in a worker thread
of its own, so that the event loop stays free to notice the timeout: Python cannot stop a
thread, so a thread that overruns is abandoned (a daemon thread: it runs on in the
background until the agent returns, its reply ignored, and never keeps the process
alive). Without a timeout, a sync agent is called on the event loop's thread as before.

A failure is reported as one line that says what broke (``agent error: ValueError: ...``,
``LLM error: ...``, ``agent timeout: ...``); the traceback is kept beside it for the
failure report under ``-v`` or ``--tb=long``.

:class:`SimulationRunner` is the session-level owner of simulations: tests ask it for an
event's judged result and it simulates each (event, agent) once. It runs them one at a
time today; because tests only ever see finished results, running many conversations
concurrently later changes nothing in the test API.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import threading
import time
import traceback
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from pytest_agentsim.core.dbstate import plain
from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import FunctionCall
from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import ToolCallRequest
from pytest_agentsim.judging.judges import judge_event
from pytest_agentsim.llm.gateway import run_sync
from pytest_agentsim.llm.messages import LLMError
from pytest_agentsim.llm.redaction import Redactor
from pytest_agentsim.llm.run import LLMRun
from pytest_agentsim.llm.run import active
from pytest_agentsim.simulation.agent import Agent
from pytest_agentsim.simulation.declarations import as_factory
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.users import SimulatedUser
from pytest_agentsim.simulation.users import user_for

if TYPE_CHECKING:
    from pytest_agentsim.judging.judges import Judge


def tool_call(
    name: str, arguments: Mapping[str, Any] | None = None, *, id: str = ""
) -> ToolCallRequest:
    """A tool call for an agent's reply: ``{"role": "assistant", "tool_calls": [tool_call(...)]}``.

    Without an ``id`` the runner gives it one from its position in the conversation, so
    transcripts are the same on every run.
    """
    return ToolCallRequest(
        id=id, function=FunctionCall(name=name, arguments=json.dumps(dict(arguments or {})))
    )


class AgentProtocolError(TypeError):
    """The agent returned something that is not an assistant message."""


def as_assistant_message(reply: object) -> Message:
    """Normalize what an agent returned into an assistant :class:`Message`."""
    if isinstance(reply, Message):
        message = reply
    elif isinstance(reply, str):
        message = Message(role="assistant", content=reply)
    elif isinstance(reply, Mapping):
        data = dict(reply)
        data.setdefault("role", "assistant")
        calls = []
        for call in data.get("tool_calls") or []:
            if isinstance(call, Mapping):
                call = dict(call)
                function = dict(call.get("function") or {})
                if not isinstance(function.get("arguments", ""), str):
                    function["arguments"] = json.dumps(function["arguments"])
                call["function"] = function
                call.setdefault("id", "")
            calls.append(call)
        if calls:
            data["tool_calls"] = calls
        message = Message.model_validate(data)
    else:
        raise AgentProtocolError(
            f"the agent returned {type(reply).__name__}; expected a string, an OpenAI "
            "assistant message dict or a pytest_agentsim Message"
        )
    if message.role != "assistant":
        raise AgentProtocolError(f"the agent returned a {message.role!r} message, not 'assistant'")
    if not message.content and not message.tool_calls:
        raise AgentProtocolError("the agent returned an empty message (no text, no tool calls)")
    return message


class TurnTimeout(Exception):
    """The agent did not answer one call within the turn timeout."""


async def call_agent(
    agent: Agent,
    messages: list[dict[str, Any]],
    sandbox: ToolSandbox,
    *,
    timeout: float | None = None,
    turn: int = 1,
) -> Message:
    """One turn of ``agent``: its reply, awaited if need be, as an assistant :class:`Message`.

    Duck-typed at runtime rather than trusting :data:`Agent`, because the agent comes from
    a user's fixture: anything else is an :class:`AgentProtocolError` that says what an
    agent must be, which the runner reports as the conversation's ``agent_error``. With
    ``timeout``, an agent that takes longer raises :class:`TurnTimeout` naming ``turn``
    (the user turn it answers, counted from 1).
    """
    respond = getattr(agent, "respond", None)
    target = respond if callable(respond) else agent
    if not callable(target):
        raise AgentProtocolError(
            f"{type(agent).__name__} is not an agent: give a callable or an object with a "
            "respond(messages, sandbox) method"
        )
    if timeout is None:
        reply = target(messages, sandbox)
        if inspect.isawaitable(reply):
            reply = await reply
        return as_assistant_message(reply)
    # Not asyncio.wait_for: a TimeoutError the agent itself raises must stay its own.
    task = asyncio.ensure_future(_respond(target, messages, sandbox))
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise TurnTimeout(f"the agent did not answer turn {turn} within {timeout:g} s")
    return as_assistant_message(task.result())


def _is_async(target: Any) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(target):
        return True
    call = inspect.getattr_static(type(target), "__call__", None)
    return not inspect.isroutine(target) and inspect.iscoroutinefunction(call)


async def _respond(target: Any, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> Any:
    """The agent's reply: awaited on this loop if it is async, else from a worker thread."""
    reply = (
        target(messages, sandbox)
        if _is_async(target)
        else await _in_thread(target, messages, sandbox)
    )
    if inspect.isawaitable(reply):  # a sync function may still hand back a coroutine
        reply = await reply
    return reply


def _in_thread(target: Any, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> Any:
    """A future of ``target(messages, sandbox)`` run in a daemon thread of its own.

    Not ``asyncio.to_thread``: its executor is joined when the event loop closes, so a
    hung agent would hang the run at the end; a daemon thread is simply abandoned. The
    caller's context variables (the event's LLM scope) go with it.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # timed out and cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = context.run(target, messages, sandbox)
        except BaseException as exc:  # handed to the awaiting loop, whatever it is
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: the turn was abandoned long ago
            pass

    threading.Thread(target=work, name="agentsim-agent-turn", daemon=True).start()
    return future


def _one_line(text: str, limit: int = 1000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_failure(who: str, exc: BaseException) -> str:
    """The one line that says what broke: what failed, then the exception.

    ``LLM error: <model>: <what the gateway says>`` for a model call that failed (the
    provider's error, a cassette miss, the budget), ``agent timeout: ...`` for a turn that
    took too long, else ``<who> error: <ExceptionName>: <message>``.
    """
    if isinstance(exc, LLMError):
        return _one_line(f"LLM error: {exc}")
    if isinstance(exc, TurnTimeout):
        return _one_line(f"{who} timeout: {exc} (--agentsim-turn-timeout)")
    message = str(exc)
    return _one_line(f"{who} error: {type(exc).__name__}" + (f": {message}" if message else ""))


def format_traceback(exc: BaseException) -> str | None:
    """The whole traceback (chained causes included), or None for our own conditions,
    whose one line says all there is."""
    if isinstance(exc, TurnTimeout):
        return None
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


async def run_conversation(
    *,
    event_id: str,
    user: SimulatedUser,
    agent: Agent,
    sandbox: ToolSandbox,
    max_turns: int = 20,
    max_tool_rounds: int = 16,
    seed: int = 0,
    turn_timeout: float | None = None,
) -> Conversation:
    """Let ``user`` and ``agent`` talk until the user stops, a limit is hit, or one fails.

    ``turn_timeout`` bounds each call of the agent (seconds); see the module's notes.
    """
    started = time.perf_counter()
    messages: list[Message] = []
    stop: StopReason | None = None
    detail: str | None = None
    error: str | None = None
    trace: str | None = None
    abandoned = False
    for user_turn in range(1, max_turns + 1):
        try:
            said = user.reply(messages)
            if inspect.isawaitable(said):
                said = await said
        except Exception as exc:
            stop, error = StopReason.user_error, describe_failure("user", exc)
            trace = format_traceback(exc)
            break
        if said.text is not None:
            messages.append(Message(role="user", content=said.text))
        if said.stop is not None:
            stop, detail = said.stop, said.reason
            break
        for _round in range(max_tool_rounds):
            try:
                reply = await call_agent(
                    agent,
                    [m.to_openai() for m in messages],
                    sandbox,
                    timeout=turn_timeout,
                    turn=user_turn,
                )
            except Exception as exc:
                stop, error = StopReason.agent_error, describe_failure("agent", exc)
                trace = format_traceback(exc)
                abandoned = isinstance(exc, TurnTimeout)
                break
            turn = len(messages)
            messages.append(reply)
            if not reply.tool_calls:
                break
            for number, request in enumerate(reply.tool_calls):
                request.id = request.id or f"call_{turn}_{number}"
                record = sandbox.call(
                    request.function.name, request.function.arguments, turn=turn, call_id=request.id
                )
                messages.append(
                    Message(
                        role="tool",
                        tool_call_id=request.id,
                        name=request.function.name,
                        content=record.result_text(),
                    )
                )
        else:
            stop = StopReason.agent_error
            error = (
                f"agent error: the agent made {max_tool_rounds} replies with tool calls in turn "
                f"{user_turn} without answering the user (the limit: --agentsim-max-tool-rounds)"
            )
        if stop is not None:
            break
    else:
        stop = StopReason.max_turns
    # The sandbox's view, which knows what its tools reached (so the changes are found
    # without a look at the rest); when an abandoned agent thread may still write to it,
    # plain containers of what it holds now (sharing what the tools left untouched).
    return Conversation(
        event_id=event_id,
        messages=messages,
        tool_calls=list(sandbox.calls),
        initial_db=sandbox.initial_db,
        final_db=plain(sandbox.db) if abandoned else sandbox.db,
        stop_reason=stop,
        stop_detail=detail,
        error=error,
        traceback=trace,
        seed=seed,
        duration_seconds=round(time.perf_counter() - started, 6),
    )


class AgentFactoryError(Exception):
    """``agentsim_agent``'s factory failed, or made something that is not an agent."""


def agent_for(agent: object, event: Event) -> Agent:
    """The agent for ``event``: ``agent`` itself, or what it makes when it is a factory
    (:func:`~pytest_agentsim.simulation.declarations.as_factory` tells them apart)."""
    factory = as_factory(agent)
    if factory is None:
        return cast("Agent", agent)
    name = getattr(factory, "__name__", type(factory).__name__)
    try:
        made = factory(event)
    except Exception as exc:
        raise AgentFactoryError(
            f"the agent factory {name} failed for event {event.id}: {type(exc).__name__}: {exc}"
        ) from exc
    if as_factory(made) is not None or not (
        callable(made) or callable(getattr(made, "respond", None))
    ):
        raise AgentFactoryError(
            f"the agent factory {name} returned {type(made).__name__} for event {event.id}; "
            "expected an agent (a callable agent(messages, sandbox) or an object with "
            "respond(messages, sandbox))"
        )
    return cast("Agent", made)


@dataclass(frozen=True)
class Case:
    """One simulation to run: an event's trial, over its own sandbox."""

    event: Event
    pack: PolicyPack
    sandbox: ToolSandbox
    trial: int = 0
    user_model: str | None = None


@dataclass
class SimulationRunner:
    """Owns the simulations of a session (or of one xdist worker): each runs once.

    With ``llm`` set, each simulation runs inside its own LLM scope (one cassette per
    event and trial, a tally of its calls), and a ``user_model`` puts a model in the
    simulated user's place instead of the offline agenda user.
    """

    judges: Sequence[Judge]
    max_turns: int = 20
    seed: int = 0
    llm: LLMRun | None = None
    redactor: Redactor | None = None
    #: seconds each call of the agent may take (``--agentsim-turn-timeout``); None: no limit
    turn_timeout: float | None = None
    #: agent replies with tool calls per user turn before it is stopped (``--agentsim-max-tool-rounds``)
    max_tool_rounds: int = 16
    # The agent is kept beside its result so that its id() cannot be reused by another.
    _results: dict[tuple[str, str, int, int, str | None], tuple[Agent, EventResult]] = field(
        default_factory=dict
    )

    def user_seed(self, event: Event, trial: int = 0) -> str:
        """The simulated user's seed: event seed and id, the trial (repeats), and for a
        generated event the run's seed. A hand-written event keeps its own: its
        conversation is the same whatever ``--agentsim-seed`` (which picks generation)."""
        run = self.seed if event.generated else 0  # 0: as with the default seed
        base = f"{run}:{event.seed if event.seed is not None else ''}:{event.id}"
        return f"{base}:{trial}" if trial else base

    def make_user(self, event: Event, trial: int, user_model: str | None) -> SimulatedUser:
        if user_model:
            from pytest_agentsim.simulation.llm_user import LLMUser

            return LLMUser(event.user, user_model)
        return user_for(event.user, seed=self.user_seed(event, trial))

    async def simulate(
        self,
        event: Event,
        pack: PolicyPack,
        agent: Agent,
        sandbox: ToolSandbox,
        trial: int = 0,
        *,
        user_model: str | None = None,
        user: SimulatedUser | None = None,
        max_turns: int | None = None,
    ) -> EventResult:
        """Simulate one trial of ``event`` and judge it: the one code path of every conversation.

        ``user`` replaces the simulated user the event's profile would make (the
        ``simulated_user`` fixture passes the test's own), ``max_turns`` the run's limit.
        """
        scope = (
            self.llm.scope(self.llm.cassette_path(event.domain, event.id, trial))
            if self.llm is not None
            else None
        )
        with active(scope):
            conversation = await run_conversation(
                event_id=event.id,
                user=user or self.make_user(event, trial, user_model),
                agent=agent_for(agent, event),
                sandbox=sandbox,
                max_turns=max_turns or self.max_turns,
                max_tool_rounds=self.max_tool_rounds,
                seed=self.seed,
                turn_timeout=self.turn_timeout,
            )
            result = await judge_event(event, conversation, pack, self.judges)
        result.conversation.compact()
        result.trial = trial
        if scope is not None:
            result.llm = scope.tally.tally()
        return self.redactor.result(result) if self.redactor is not None else result

    def _key(
        self, event: Event, trial: int, agent: Agent, user_model: str | None
    ) -> tuple[str, str, int, int, str | None]:
        return (event.domain, event.id, trial, id(agent), user_model)

    def prefetch(self, cases: Sequence[Case], agent: Agent, concurrency: int) -> None:
        """Simulate the cases not simulated yet, up to ``concurrency`` at a time.

        Conversations wait on models most of the time, so a run with LLM roles goes
        about ``concurrency`` times faster; each case keeps its own sandbox, user seed and
        cassette, so results are the same as one at a time. A case whose simulation
        raised is left out, to be simulated (and raise) for its own test.
        """
        import asyncio

        todo: dict[tuple[str, str, int, int, str | None], Case] = {}
        for case in cases:
            key = self._key(case.event, case.trial, agent, case.user_model)
            if key not in self._results:
                todo.setdefault(key, case)
        if not todo:
            return

        async def batch() -> list[EventResult | BaseException]:
            limit = asyncio.Semaphore(concurrency)

            async def one(case: Case) -> EventResult:
                async with limit:
                    return await self.simulate(
                        case.event,
                        case.pack,
                        agent,
                        case.sandbox,
                        case.trial,
                        user_model=case.user_model,
                    )

            return await asyncio.gather(
                *(one(case) for case in todo.values()), return_exceptions=True
            )

        for key, outcome in zip(todo, run_sync(batch()), strict=True):
            if isinstance(outcome, EventResult):
                self._results[key] = (agent, outcome)

    def result(
        self,
        event: Event,
        pack: PolicyPack,
        agent: Agent,
        sandbox: ToolSandbox,
        trial: int = 0,
        *,
        user_model: str | None = None,
    ) -> EventResult:
        """The judged result of one trial of ``event`` for ``agent``, simulated on first request."""
        key = self._key(event, trial, agent, user_model)
        if key not in self._results:
            outcome = run_sync(
                self.simulate(event, pack, agent, sandbox, trial, user_model=user_model)
            )
            self._results[key] = (agent, outcome)
        return self._results[key][1]

    def release(self, event: Event, trial: int = 0) -> None:
        """Forget the results of one trial of ``event`` (every agent's, every user model's).

        Called once no test left to run needs them, so that a run holds the conversations
        of the tests still to come rather than of every event it judged; asking again
        simulates again.
        """
        done = [key for key in self._results if key[:3] == (event.domain, event.id, trial)]
        for key in done:
            del self._results[key]
