"""pytest-agentsim's public API: import what you write against from here, and only here.

    from pytest_agentsim import EventResult, ToolSandbox, tool_call

The package is built in layers (``core``, ``packs``, ``llm``, ``generation``, ``judging``,
``simulation``, ``reporting``, then the pytest glue); where a name lives inside them is an
implementation detail that may move. The names in :data:`__all__` are the promise.

The facade is lazy (PEP 562): pytest imports this package whenever the plugin loads, also
in a plain ``pytest`` run without ``--agentsim``, so importing it must not pull in pydantic
models, YAML, deepdiff or litellm. Each name is imported from its module on first access
and then cached here. Type checkers and IDEs read the ``TYPE_CHECKING`` imports below,
which name the same objects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it: what ``__getattr__`` imports at run time.
#: ``__all__`` and the ``TYPE_CHECKING`` imports repeat it as literals (tools read them
#: without running code); tests/test_public_api.py keeps the three in agreement.
_EXPORTS: dict[str, str] = {
    # core: the vocabulary (pydantic models of packs, events, conversations, results)
    "Conversation": "pytest_agentsim.core.models",
    "DialogueAct": "pytest_agentsim.core.models",
    "Event": "pytest_agentsim.core.models",
    "EventResult": "pytest_agentsim.core.models",
    "EventSet": "pytest_agentsim.core.models",
    "FunctionCall": "pytest_agentsim.core.models",
    "GoalRequest": "pytest_agentsim.core.models",
    "LLMTally": "pytest_agentsim.core.models",
    "Message": "pytest_agentsim.core.models",
    "Outcome": "pytest_agentsim.core.models",
    "Policy": "pytest_agentsim.core.models",
    "PolicyPack": "pytest_agentsim.core.models",
    "PolicyResult": "pytest_agentsim.core.models",
    "EventRecord": "pytest_agentsim.core.models",
    "PolicyRecord": "pytest_agentsim.core.models",
    "RecordedTranscript": "pytest_agentsim.core.models",
    "FailureKind": "pytest_agentsim.core.models",
    "Evidence": "pytest_agentsim.core.models",
    "PolicyViolation": "pytest_agentsim.core.models",
    "Severity": "pytest_agentsim.core.models",
    "StopReason": "pytest_agentsim.core.models",
    "ToolCall": "pytest_agentsim.core.models",
    "ToolCallRequest": "pytest_agentsim.core.models",
    "UserGoal": "pytest_agentsim.core.models",
    "UserProfile": "pytest_agentsim.core.models",
    "Verdict": "pytest_agentsim.core.models",
    "ConfigError": "pytest_agentsim.core.errors",
    "ConversationError": "pytest_agentsim.core.errors",
    "CheckResult": "pytest_agentsim.core.checks",
    "RuleCheck": "pytest_agentsim.core.checks",
    "RuleRegistry": "pytest_agentsim.core.checks",
    "RiskTaxonomy": "pytest_agentsim.core.taxonomy",
    # packs: reading packs and event files
    "load_events": "pytest_agentsim.packs.events",
    "load_pack": "pytest_agentsim.packs.loading",
    # llm: the gateway, record/replay and the fake server for offline tests
    "Cassette": "pytest_agentsim.llm.cassettes",
    "FakeLLMServer": "pytest_agentsim.llm.fake_server",
    "RecordedRequest": "pytest_agentsim.llm.fake_server",
    "Reply": "pytest_agentsim.llm.fake_server",
    "Gateway": "pytest_agentsim.llm.gateway",
    "LLMConfig": "pytest_agentsim.llm.messages",
    "LLMError": "pytest_agentsim.llm.messages",
    "LLMRequest": "pytest_agentsim.llm.messages",
    "LLMResponse": "pytest_agentsim.llm.messages",
    # generation: the policy graph and event snapshots
    "PolicyGraph": "pytest_agentsim.generation.graph",
    "llm_edge_weights": "pytest_agentsim.generation.graph",
    "random_graph": "pytest_agentsim.generation.graph",
    "regenerate": "pytest_agentsim.generation.snapshots",
    # judging: judges and the built-in rule types
    "Judge": "pytest_agentsim.judging.judges",
    "RuleJudge": "pytest_agentsim.judging.judges",
    "LLMJudge": "pytest_agentsim.judging.llm_judge",
    "default_registry": "pytest_agentsim.judging.rules",
    # simulation: the agent under test, its tools, simulated users
    "Agent": "pytest_agentsim.simulation.agent",
    "AgentReply": "pytest_agentsim.simulation.agent",
    "CallableAgent": "pytest_agentsim.simulation.agent",
    "RespondingAgent": "pytest_agentsim.simulation.agent",
    "tool_call": "pytest_agentsim.simulation.runner",
    "LLMAgent": "pytest_agentsim.simulation.llm_agent",
    "OpenAICompatibleAgent": "pytest_agentsim.simulation.llm_agent",
    "LLMUser": "pytest_agentsim.simulation.llm_user",
    "STOP_SIGNAL": "pytest_agentsim.simulation.llm_user",
    "ToolSandbox": "pytest_agentsim.simulation.sandbox",
    "Tool": "pytest_agentsim.simulation.tools",
    "tool": "pytest_agentsim.simulation.declarations",
    "tools_from_schemas": "pytest_agentsim.simulation.declarations",
    "ToolSpec": "pytest_agentsim.simulation.declarations",
    "agent_factory": "pytest_agentsim.simulation.declarations",
    "AgentFactory": "pytest_agentsim.simulation.declarations",
    "AgendaUser": "pytest_agentsim.simulation.users",
    "ScriptedUser": "pytest_agentsim.simulation.users",
    "SimulatedUser": "pytest_agentsim.simulation.users",
    "UserReply": "pytest_agentsim.simulation.users",
    # the pytest glue: what the ``simulated_user`` fixture gives a test
    "UserDriver": "pytest_agentsim.simulation.driver",
}

#: The public API: ``_EXPORTS``' names and ``__version__``, sorted as ruff's RUF022 wants.
__all__ = [
    "STOP_SIGNAL",
    "AgendaUser",
    "Agent",
    "AgentFactory",
    "AgentReply",
    "CallableAgent",
    "Cassette",
    "CheckResult",
    "ConfigError",
    "Conversation",
    "ConversationError",
    "DialogueAct",
    "Event",
    "EventRecord",
    "EventResult",
    "EventSet",
    "Evidence",
    "FailureKind",
    "FakeLLMServer",
    "FunctionCall",
    "Gateway",
    "GoalRequest",
    "Judge",
    "LLMAgent",
    "LLMConfig",
    "LLMError",
    "LLMJudge",
    "LLMRequest",
    "LLMResponse",
    "LLMTally",
    "LLMUser",
    "Message",
    "OpenAICompatibleAgent",
    "Outcome",
    "Policy",
    "PolicyGraph",
    "PolicyPack",
    "PolicyRecord",
    "PolicyResult",
    "PolicyViolation",
    "RecordedRequest",
    "RecordedTranscript",
    "Reply",
    "RespondingAgent",
    "RiskTaxonomy",
    "RuleCheck",
    "RuleJudge",
    "RuleRegistry",
    "ScriptedUser",
    "Severity",
    "SimulatedUser",
    "StopReason",
    "Tool",
    "ToolCall",
    "ToolCallRequest",
    "ToolSandbox",
    "ToolSpec",
    "UserDriver",
    "UserGoal",
    "UserProfile",
    "UserReply",
    "Verdict",
    "__version__",
    "agent_factory",
    "default_registry",
    "llm_edge_weights",
    "load_events",
    "load_pack",
    "random_graph",
    "regenerate",
    "tool",
    "tool_call",
    "tools_from_schemas",
]

if TYPE_CHECKING:
    from pytest_agentsim.core.checks import CheckResult as CheckResult
    from pytest_agentsim.core.checks import RuleCheck as RuleCheck
    from pytest_agentsim.core.checks import RuleRegistry as RuleRegistry
    from pytest_agentsim.core.errors import ConfigError as ConfigError
    from pytest_agentsim.core.errors import ConversationError as ConversationError
    from pytest_agentsim.core.models import Conversation as Conversation
    from pytest_agentsim.core.models import DialogueAct as DialogueAct
    from pytest_agentsim.core.models import Event as Event
    from pytest_agentsim.core.models import EventRecord as EventRecord
    from pytest_agentsim.core.models import EventResult as EventResult
    from pytest_agentsim.core.models import EventSet as EventSet
    from pytest_agentsim.core.models import Evidence as Evidence
    from pytest_agentsim.core.models import FailureKind as FailureKind
    from pytest_agentsim.core.models import FunctionCall as FunctionCall
    from pytest_agentsim.core.models import GoalRequest as GoalRequest
    from pytest_agentsim.core.models import LLMTally as LLMTally
    from pytest_agentsim.core.models import Message as Message
    from pytest_agentsim.core.models import Outcome as Outcome
    from pytest_agentsim.core.models import Policy as Policy
    from pytest_agentsim.core.models import PolicyPack as PolicyPack
    from pytest_agentsim.core.models import PolicyRecord as PolicyRecord
    from pytest_agentsim.core.models import PolicyResult as PolicyResult
    from pytest_agentsim.core.models import PolicyViolation as PolicyViolation
    from pytest_agentsim.core.models import RecordedTranscript as RecordedTranscript
    from pytest_agentsim.core.models import Severity as Severity
    from pytest_agentsim.core.models import StopReason as StopReason
    from pytest_agentsim.core.models import ToolCall as ToolCall
    from pytest_agentsim.core.models import ToolCallRequest as ToolCallRequest
    from pytest_agentsim.core.models import UserGoal as UserGoal
    from pytest_agentsim.core.models import UserProfile as UserProfile
    from pytest_agentsim.core.models import Verdict as Verdict
    from pytest_agentsim.core.taxonomy import RiskTaxonomy as RiskTaxonomy
    from pytest_agentsim.generation.graph import PolicyGraph as PolicyGraph
    from pytest_agentsim.generation.graph import llm_edge_weights as llm_edge_weights
    from pytest_agentsim.generation.graph import random_graph as random_graph
    from pytest_agentsim.generation.snapshots import regenerate as regenerate
    from pytest_agentsim.judging.judges import Judge as Judge
    from pytest_agentsim.judging.judges import RuleJudge as RuleJudge
    from pytest_agentsim.judging.llm_judge import LLMJudge as LLMJudge
    from pytest_agentsim.judging.rules import default_registry as default_registry
    from pytest_agentsim.llm.cassettes import Cassette as Cassette
    from pytest_agentsim.llm.fake_server import FakeLLMServer as FakeLLMServer
    from pytest_agentsim.llm.fake_server import RecordedRequest as RecordedRequest
    from pytest_agentsim.llm.fake_server import Reply as Reply
    from pytest_agentsim.llm.gateway import Gateway as Gateway
    from pytest_agentsim.llm.messages import LLMConfig as LLMConfig
    from pytest_agentsim.llm.messages import LLMError as LLMError
    from pytest_agentsim.llm.messages import LLMRequest as LLMRequest
    from pytest_agentsim.llm.messages import LLMResponse as LLMResponse
    from pytest_agentsim.packs.events import load_events as load_events
    from pytest_agentsim.packs.loading import load_pack as load_pack
    from pytest_agentsim.simulation.agent import Agent as Agent
    from pytest_agentsim.simulation.agent import AgentReply as AgentReply
    from pytest_agentsim.simulation.agent import CallableAgent as CallableAgent
    from pytest_agentsim.simulation.agent import RespondingAgent as RespondingAgent
    from pytest_agentsim.simulation.declarations import AgentFactory as AgentFactory
    from pytest_agentsim.simulation.declarations import ToolSpec as ToolSpec
    from pytest_agentsim.simulation.declarations import agent_factory as agent_factory
    from pytest_agentsim.simulation.declarations import tool as tool
    from pytest_agentsim.simulation.declarations import tools_from_schemas as tools_from_schemas
    from pytest_agentsim.simulation.driver import UserDriver as UserDriver
    from pytest_agentsim.simulation.llm_agent import LLMAgent as LLMAgent
    from pytest_agentsim.simulation.llm_agent import OpenAICompatibleAgent as OpenAICompatibleAgent
    from pytest_agentsim.simulation.llm_user import STOP_SIGNAL as STOP_SIGNAL
    from pytest_agentsim.simulation.llm_user import LLMUser as LLMUser
    from pytest_agentsim.simulation.runner import tool_call as tool_call
    from pytest_agentsim.simulation.sandbox import ToolSandbox as ToolSandbox
    from pytest_agentsim.simulation.tools import Tool as Tool
    from pytest_agentsim.simulation.users import AgendaUser as AgendaUser
    from pytest_agentsim.simulation.users import ScriptedUser as ScriptedUser
    from pytest_agentsim.simulation.users import SimulatedUser as SimulatedUser
    from pytest_agentsim.simulation.users import UserReply as UserReply
else:
    # Only at runtime: a module ``__getattr__`` visible to type checkers would type every
    # misspelt ``pytest_agentsim.X`` as its return value instead of reporting it.

    def __getattr__(name: str) -> Any:
        """Import a public name from its module on first access (PEP 562), then cache it."""
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The public names, imported or not yet: what completion and ``help()`` should offer."""
    return list(__all__)
