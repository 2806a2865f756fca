"""The LLM services of one run: models per role, one budget, a cassette per simulation.

A run may put a model behind three roles: the simulated user (``--agentsim-user-model``),
a judge (``--agentsim-judge-model``) and the agent under test (the built-in
:class:`~pytest_agentsim.simulation.llm_agent.LLMAgent`). They share one
:class:`~pytest_agentsim.llm.messages.Usage` (the run's totals and ``--agentsim-max-cost``
budget). Every simulation gets an :class:`EventLLM` scope: all of its calls, whichever
role makes them, are recorded into and replayed from one cassette,
``<cassettes>/<domain>/<event id>[-r<trial>].yaml``, and counted into the event's own
tally for its report.

The scope is found through a context variable, so the user, judge and agent protocols
stay what they are (``reply(messages)``, ``judge(event, conversation, pack)``,
``respond(messages, sandbox)``): an LLM-backed implementation looks up
:func:`current_scope` and falls back to a gateway of its own outside a simulation.
"""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Literal

from pytest_agentsim.llm.cassettes import RecordMode
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.gateway import Sleep
from pytest_agentsim.llm.messages import DEFAULT_MAX_TOKENS
from pytest_agentsim.llm.messages import LLMConfig
from pytest_agentsim.llm.messages import ModelPrice
from pytest_agentsim.llm.messages import RateLimit
from pytest_agentsim.llm.messages import RoleName
from pytest_agentsim.llm.messages import Usage

if TYPE_CHECKING:
    from pytest_agentsim.llm.cassettes import Cassette

#: The cassette of a domain's event generation (event cassettes are named after event ids).
GENERATION_CASSETTE = "_generation.yaml"

InconclusiveMode = Literal["fail", "xfail", "error"]
INCONCLUSIVE_MODES: tuple[InconclusiveMode, ...] = ("fail", "xfail", "error")


@dataclass(frozen=True)
class LLMSettings:
    """What the command line and ini file say about models (all optional: offline default)."""

    cassette_dir: Path
    record_mode: RecordMode = "none"
    api_base: str | None = None
    api_key_env: str | None = None
    max_cost: float | None = None
    user_model: str | None = None
    judge_model: str | None = None
    judge_samples: int = 1
    #: the judge's instructions read from ``--agentsim-judge-prompt`` (None: the built-in)
    judge_instructions: str | None = None
    agent_model: str | None = None
    agent_prompt: Path | None = None
    generate_model: str | None = None
    inconclusive: InconclusiveMode = "fail"
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()
    secret_patterns: tuple[str, ...] = ()
    #: seconds one HTTP attempt may take (``--agentsim-timeout``)
    timeout: float = 60.0
    #: tries per call, the first included (``--agentsim-attempts``)
    attempts: int = 4
    #: ``max_tokens`` per role (``--agentsim-max-tokens``)
    max_tokens: Mapping[RoleName, int] = field(default_factory=lambda: dict(DEFAULT_MAX_TOKENS))
    #: conversations simulated at a time (``--agentsim-concurrency``)
    concurrency: int = 1

    @property
    def calls_in_flight(self) -> int:
        """The run's cap on model calls at once: each of ``concurrency`` conversations
        waits on one call at a time, except a voting judge, which asks its samples at once."""
        return self.concurrency * max(1, self.judge_samples)

    @property
    def any_model(self) -> bool:
        return bool(self.user_model or self.judge_model or self.agent_model)


class LLMRun:
    """Gateways of a run: one shared usage and budget, a scope per simulation."""

    def __init__(self, settings: LLMSettings, *, sleep: Sleep | None = None) -> None:
        self.settings = settings
        base = LLMConfig(
            model=settings.judge_model or settings.user_model or settings.agent_model or "unset",
            api_base=settings.api_base,
            api_key_env=settings.api_key_env,
            max_cost=settings.max_cost,
            prices=dict(settings.prices),
            rate_limits=dict(settings.rate_limits),
            secret_env=list(settings.secret_env),
            secret_patterns=list(settings.secret_patterns),
            timeout=settings.timeout,
            max_attempts=settings.attempts,
            concurrency=settings.calls_in_flight,
        )
        self.gateway = Gateway(base, sleep=sleep)

    @property
    def usage(self) -> Usage:
        return self.gateway.usage

    def cassette_path(self, domain: str, name: str, trial: int = 0) -> Path:
        """``<cassettes>/<domain>/<name>[-r<trial>].yaml``: each trial records its own calls."""
        suffix = f"-r{trial + 1}" if trial else ""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "unnamed"
        return self.settings.cassette_dir / domain / f"{safe}{suffix}.yaml"

    def scope(self, cassette_path: Path) -> EventLLM:
        return EventLLM(self, cassette_path)

    def generation_gateway(self, domain: str) -> Gateway:
        """The gateway that generates a domain's events: ``generate_model``, recording into
        ``<cassettes>/<domain>/_generation.yaml``, within the run's budget, counting its own
        calls into its ``tally``.

        One cassette per pack: edge scoring and every event's filling replay together, so a
        regeneration from an unchanged pack and unchanged prompts costs no call.
        """
        from pytest_agentsim.llm.cassettes import Cassette

        model = self.settings.generate_model
        if not model:
            raise ValueError("no generate_model is set")
        path = self.settings.cassette_dir / domain / GENERATION_CASSETTE
        config = self.gateway.config.model_copy(
            update={"model": model, "max_tokens": self.settings.max_tokens["generate"]}
        )
        return self.gateway.view(
            config=config, cassette=Cassette(path, self.settings.record_mode), tally=Usage()
        )


class EventLLM:
    """The model calls of one simulation: one cassette, opened on the first call, one tally."""

    def __init__(self, run: LLMRun, cassette_path: Path) -> None:
        self.run = run
        self.cassette_path = cassette_path
        self.tally = Usage()
        self._cassette: Cassette | None = None
        self._gateways: dict[tuple[str, str | None, str | None, RoleName], Gateway] = {}
        self._lock = threading.Lock()

    def gateway(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        role: RoleName = "agent",
    ) -> Gateway:
        """A gateway to ``model`` recording into this scope's cassette, with ``role``'s
        ``max_tokens`` (one gateway per role: a user and a judge may share a model).

        ``api_base`` and ``api_key_env`` default to the run's (``agentsim_api_base``,
        ``agentsim_api_key_env``); an agent served elsewhere passes its own.
        """
        from pytest_agentsim.llm.cassettes import Cassette

        key = (model, api_base, api_key_env, role)
        with self._lock:
            if key not in self._gateways:
                if self._cassette is None:
                    self._cassette = Cassette(self.cassette_path, self.run.settings.record_mode)
                base = self.run.gateway.config
                config = base.model_copy(
                    update={
                        "model": model,
                        "api_base": api_base or base.api_base,
                        "api_key_env": api_key_env or base.api_key_env,
                        "max_tokens": self.run.settings.max_tokens[role],
                    }
                )
                self._gateways[key] = self.run.gateway.view(
                    config=config, cassette=self._cassette, tally=self.tally
                )
            return self._gateways[key]


_CURRENT: contextvars.ContextVar[EventLLM | None] = contextvars.ContextVar(
    "agentsim_event_llm", default=None
)


def current_scope() -> EventLLM | None:
    """The LLM scope of the simulation running in this context, if any."""
    return _CURRENT.get()


@contextmanager
def active(scope: EventLLM | None) -> Iterator[EventLLM | None]:
    """Make ``scope`` the current one for the code (and the tasks it starts) inside."""
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)


class LLMRole:
    """Base of the LLM-backed user, judge and agent: which model, and how to reach it.

    A gateway given explicitly is used as is; otherwise the running simulation's scope
    provides one (its cassette, the run's budget, the role's ``max_tokens``), and outside
    a simulation the role makes a gateway of its own on first use.
    """

    #: which of the run's per-role settings (``max_tokens``) apply to its calls
    role: RoleName = "agent"

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        if not model:
            raise ValueError("a model is required (a litellm model string)")
        self.model = model
        self.api_base = api_base
        self.api_key_env = api_key_env
        self._own_gateway = gateway
        self._explicit = gateway is not None

    def gateway(self) -> Gateway:
        scope = current_scope()
        if scope is not None and not self._explicit:
            return scope.gateway(
                self.model, api_base=self.api_base, api_key_env=self.api_key_env, role=self.role
            )
        if self._own_gateway is None:
            self._own_gateway = Gateway(
                LLMConfig(
                    model=self.model,
                    api_base=self.api_base,
                    api_key_env=self.api_key_env,
                    max_tokens=DEFAULT_MAX_TOKENS[self.role],
                )
            )
        return self._own_gateway
