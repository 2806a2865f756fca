"""Tell pytest-agentsim what to test: the agent and its tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airline_agent import AirlineAgent
from airline_tools import TOOLS

from pytest_agentsim import Agent
from pytest_agentsim import LLMAgent

PROMPT = Path(__file__).parent / "prompts" / "airline_agent.md"


@pytest.fixture(scope="session")
def agentsim_agent(pytestconfig: pytest.Config) -> Agent:
    # With --agentsim-agent-model, the prompt + model agent a prompt change would ship;
    # otherwise the deterministic Python agent, which needs no model.
    model = pytestconfig.getoption("agentsim_agent_model")
    if model:
        return LLMAgent(PROMPT, model)
    return AirlineAgent()


@pytest.fixture(scope="session")
def agentsim_tools() -> list[Any]:
    return TOOLS
