"""Tell pytest-agentsim what to test: the agent and its tools."""

from __future__ import annotations

from typing import Any

import pytest
from airline_agent import AirlineAgent
from airline_tools import TOOLS


@pytest.fixture(scope="session")
def agentsim_agent() -> AirlineAgent:
    return AirlineAgent()


@pytest.fixture(scope="session")
def agentsim_tools() -> list[Any]:
    return TOOLS
