"""``simulated_user``: a test drives one conversation itself, like a unit test of a dialogue.

The conversation goes through :meth:`SimulationRunner.simulate
<pytest_agentsim.simulation.runner.SimulationRunner.simulate>`, the code path of the
parametrized tests (the same judges, cassette per event, cost tally and redaction); only
the user and the starting database come from the test.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import LLMTally
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.llm.gateway import run_sync
from pytest_agentsim.simulation.agent import Agent
from pytest_agentsim.simulation.runner import SimulationRunner
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.users import ScriptedUser
from pytest_agentsim.simulation.users import SimulatedUser
from pytest_agentsim.simulation.users import user_for

UserSpec = Sequence[str] | UserProfile | SimulatedUser


class UserDriver:
    """Runs conversations with a scripted, profiled or hand-made user and judges them."""

    def __init__(
        self,
        runner: SimulationRunner,
        *,
        agent: Agent,
        pack_for: Callable[[str | None], PolicyPack],
        sandbox_for: Callable[[PolicyPack, Event], ToolSandbox],
        name: str,
        user_model: str | None = None,
    ) -> None:
        self.runner = runner
        self.agent = agent
        self.pack_for = pack_for
        self.sandbox_for = sandbox_for
        self.name = name
        self.user_model = user_model
        self.runs = 0
        #: the model calls of every conversation run so far (the run's summary counts them)
        self.llm = LLMTally()

    def run(
        self,
        user: UserSpec,
        *,
        db: dict[str, Any] | None = None,
        policies: Sequence[str] | None = None,
        domain: str | None = None,
        max_turns: int | None = None,
    ) -> EventResult:
        """Run a conversation with scripted turns, a profile, or any simulated user; judge it.

        ``db`` overrides are merged over the pack's seed database; ``policies`` are the
        ones this dialogue exercises (default: every policy with rule checks). From an
        ``async`` test, ``await simulated_user.arun(...)`` instead.
        """
        return run_sync(
            self.arun(user, db=db, policies=policies, domain=domain, max_turns=max_turns)
        )

    async def arun(
        self,
        user: UserSpec,
        *,
        db: dict[str, Any] | None = None,
        policies: Sequence[str] | None = None,
        domain: str | None = None,
        max_turns: int | None = None,
    ) -> EventResult:
        """:meth:`run` for async tests: the same conversation, awaited on the test's loop."""
        pack = self.pack_for(domain)
        self.runs += 1
        profile, simulated = self.simulated(user)
        chosen = list(policies) if policies else [p.id for p in pack.policies if p.checks]
        event = Event(
            id=f"{self.name}-run{self.runs}",
            domain=pack.domain,
            policies=chosen or pack.policy_ids,
            user=profile,
            db=db or {},
        )
        result = await self.runner.simulate(
            event,
            pack,
            self.agent,
            self.sandbox_for(pack, event),
            user=simulated,
            max_turns=max_turns,
        )
        self.llm = self.llm + result.llm
        return result

    def simulated(self, user: UserSpec) -> tuple[UserProfile, SimulatedUser]:
        """The event's profile and the user that plays it."""
        if isinstance(user, str):
            user = [user]  # one scripted turn, not a script of characters
        if isinstance(user, UserProfile):
            if self.user_model and user.script is None:
                from pytest_agentsim.simulation.llm_user import LLMUser

                return user, LLMUser(user, self.user_model)
            # Seeded by the test alone: a hand-written dialogue is the same whatever the
            # run's seed (which picks generated events and their users).
            return user, user_for(user, seed=f"0:{self.name}")
        if isinstance(user, Sequence):
            return UserProfile(script=list(user)), ScriptedUser(list(user))
        return UserProfile(), user
