"""What the agent under test is: the protocols a user's agent satisfies.

Kept apart from the runner, with the heavy types only named for the type checker, so that
a conftest can write ``from pytest_agentsim import Agent`` without loading pydantic models
or the sandbox in a plain ``pytest`` run.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import TypeAlias

if TYPE_CHECKING:
    from pytest_agentsim.core.models import Message
    from pytest_agentsim.simulation.sandbox import ToolSandbox


#: What an agent may answer with: words, an OpenAI assistant message dict (``content``
#: and/or ``tool_calls``, whose ``arguments`` may be a dict or a JSON string), or a
#: :class:`~pytest_agentsim.core.models.Message`.
AgentReply: TypeAlias = "str | Mapping[str, Any] | Message"


class RespondingAgent(Protocol):
    """An agent object: ``respond(messages, sandbox)``, plain or ``async``.

    ``messages`` is the conversation so far in OpenAI chat format (a fresh list each
    call); ``sandbox`` runs the tools, should the agent want to call one itself or read
    the database. The parameters are positional-only so that any names match.
    """

    def respond(
        self, messages: list[dict[str, Any]], sandbox: ToolSandbox, /
    ) -> AgentReply | Awaitable[AgentReply]: ...


class CallableAgent(Protocol):
    """An agent function (or callable object): ``agent(messages, sandbox)``, plain or ``async``."""

    def __call__(
        self, messages: list[dict[str, Any]], sandbox: ToolSandbox, /
    ) -> AgentReply | Awaitable[AgentReply]: ...


#: The agent under test, as the ``agentsim_agent`` fixture returns it. An object with a
#: callable ``respond`` is called through it even when it is callable itself.
Agent: TypeAlias = RespondingAgent | CallableAgent
