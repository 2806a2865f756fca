"""pytest-agentsim's pytest entry point: options, markers, fixtures and thin hooks.

Everything here delegates. Nothing heavy is imported at module level: without
``--agentsim`` a run loads neither pydantic models, YAML, deepdiff nor litellm, and tests
that need the plugin are skipped with a reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_agentsim.options import GROUPS
from pytest_agentsim.options import OPTIONS

if TYPE_CHECKING:
    from pytest_agentsim.core.models import Event
    from pytest_agentsim.core.models import EventResult
    from pytest_agentsim.core.models import PolicyPack
    from pytest_agentsim.generation.graph import PolicyGraph
    from pytest_agentsim.llm.fake_server import FakeLLMServer
    from pytest_agentsim.runtest import ConversationTests
    from pytest_agentsim.simulation.agent import Agent
    from pytest_agentsim.simulation.driver import UserDriver
    from pytest_agentsim.simulation.sandbox import Tool
    from pytest_agentsim.simulation.sandbox import ToolFunction
    from pytest_agentsim.simulation.sandbox import ToolSandbox

TESTS = pytest.StashKey["ConversationTests"]()
REGISTERED = pytest.StashKey[list[str]]()
AGENTSIM_FIXTURES = frozenset(
    {
        "agentsim_conversation",
        "agentsim_event",
        "agentsim_case",
        "agentsim_trial",
        "agentsim_sandbox",
        "simulated_user",
        "agentsim_pack",
        "agentsim_policy_graph",
    }
)
SKIP_REASON = "agentsim: simulated conversations run only with --agentsim"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(importlib.import_module("pytest_agentsim.hookspecs"))


def pytest_addoption(parser: pytest.Parser) -> None:
    for option in OPTIONS:
        if option.flag is not None:
            group = parser.getgroup(option.group, GROUPS[option.group])
            group.addoption(option.flag, **option.cli_attrs())
        if option.ini is not None:
            parser.addini(option.ini, option.ini_help, type=option.ini_type)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "agentsim: a test that simulates conversations; skipped without --agentsim"
    )
    config.addinivalue_line(
        "markers",
        "agentsim_policy(*ids): run this test only on events that exercise these policies",
    )
    config.addinivalue_line(
        "markers",
        "agentsim_risk(*categories): run this test only on events with policies in these risk categories",
    )
    config.addinivalue_line(
        "markers",
        "agentsim_user_model(model): a model plays this test's simulated user (None: the offline user)",
    )
    if not config.getoption("agentsim"):
        for option in ("agentsim_generate", "agentsim_generate_model"):
            if config.getoption(option, None):
                raise pytest.UsageError(
                    f"--{option.replace('_', '-')}: only used with --agentsim (add it)"
                )
    if config.getoption("agentsim"):
        _register_plugins(config)


def _register_plugins(config: pytest.Config) -> None:
    """The run's plugin objects, each registered only where it has work to do."""
    registered = config.stash[REGISTERED] = []

    def register(plugin: object, name: str) -> None:
        config.pluginmanager.register(plugin, name)
        registered.append(name)

    # import_module, not ``from pytest_agentsim import builtins``: the latter returns a
    # stale submodule when sys.modules was restored in between (pytester inline runs).
    register(importlib.import_module("pytest_agentsim.builtins"), "agentsim-builtins")
    from pytest_agentsim.runtest import ConversationTests
    from pytest_agentsim.session import AgentSimSession
    from pytest_agentsim.session import is_worker

    session = AgentSimSession(config)
    tests = config.stash[TESTS] = ConversationTests(session)
    register(tests, "agentsim-tests")
    if not is_worker(config):
        from pytest_agentsim.session import EventsToWorkers
        from pytest_agentsim.summary import SummaryReporter

        register(SummaryReporter(session), "agentsim-summary")
        if config.pluginmanager.hasplugin("xdist"):
            register(EventsToWorkers(session), "agentsim-events-to-workers")
    alluredir = getattr(config.option, "allure_report_dir", None)
    if alluredir and config.pluginmanager.hasplugin("allure_pytest"):
        from pytest_agentsim.reporting.allure import AllureReporter

        reporter = AllureReporter(
            Path(alluredir),
            seed=session.settings.seed,
            models=session.models_description(),
            environment=session.allure_environment(),
        )
        register(reporter, "agentsim-allure")


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in config.stash.get(REGISTERED, []):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin, name)
    if REGISTERED in config.stash:
        del config.stash[REGISTERED]
    if TESTS in config.stash:
        del config.stash[TESTS]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TESTS in config.stash:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & AGENTSIM_FIXTURES or item.get_closest_marker("agentsim"):
            item.add_marker(skip)


def _tests(request: pytest.FixtureRequest) -> ConversationTests:
    tests = request.config.stash.get(TESTS, None)
    if tests is None:
        pytest.skip(SKIP_REASON)
    return tests


@pytest.fixture(scope="session")
def agentsim_agent(request: pytest.FixtureRequest) -> Agent:
    """The agent under test. Override it in your conftest: ``return MyAgent()``.

    Without an override, the built-in LLM agent when ``agentsim_agent_prompt`` and
    ``agentsim_agent_model`` are configured.
    """
    tests = request.config.stash.get(TESTS, None)
    llm = tests.settings.llm if tests is not None else None
    if llm is not None and llm.agent_prompt is not None and llm.agent_model:
        from pytest_agentsim.simulation.llm_agent import LLMAgent

        return LLMAgent(llm.agent_prompt, llm.agent_model)
    pytest.fail(
        "agentsim: define an `agentsim_agent` fixture in your conftest.py that returns the agent "
        "under test (a callable or an object with respond(messages, sandbox)), or set "
        "agentsim_agent_prompt and agentsim_agent_model for the built-in LLM agent",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def agentsim_tools() -> Sequence[Tool | ToolFunction]:
    """The agent's tools, plain functions ``f(db, **kwargs)``. Override it in your conftest."""
    return []


@pytest.fixture
def agentsim_case(request: pytest.FixtureRequest) -> tuple[Event, int] | None:
    """(event, trial) of a test parametrized over events; None otherwise."""
    _tests(request)
    return getattr(request, "param", None)


@pytest.fixture
def agentsim_event(agentsim_case: tuple[Event, int] | None) -> Event | None:
    """The event this test runs on (None for tests that are not parametrized over events)."""
    return agentsim_case[0] if agentsim_case else None


@pytest.fixture
def agentsim_trial(agentsim_case: tuple[Event, int] | None) -> int:
    """Which repeat of the event this test is (0-based; see --agentsim-repeat)."""
    return agentsim_case[1] if agentsim_case else 0


@pytest.fixture
def agentsim_pack(request: pytest.FixtureRequest, agentsim_event: Event | None) -> PolicyPack:
    """The policy pack of the current event's domain (or the only pack loaded)."""
    return _tests(request).pack_for(agentsim_event)


@pytest.fixture
def agentsim_policy_graph(request: pytest.FixtureRequest, agentsim_pack: PolicyPack) -> PolicyGraph:
    """The policy graph of the current pack: ``.sample(n, seed=...)``, ``.coverage(k=...)``."""
    return _tests(request).catalog.policy_graph(agentsim_pack.domain)


@pytest.fixture
def agentsim_sandbox(
    agentsim_tools: Sequence[Tool | ToolFunction],
    agentsim_pack: PolicyPack,
    agentsim_event: Event | None,
) -> ToolSandbox:
    """A fresh sandbox of the agent's tools over the event's (or the pack's seed) database."""
    from pytest_agentsim.packs.events import starting_db
    from pytest_agentsim.runtest import sandbox_for

    db = starting_db(agentsim_pack, agentsim_event) if agentsim_event else agentsim_pack.seed_db
    return sandbox_for(agentsim_tools, db)


@pytest.fixture
def agentsim_conversation(
    request: pytest.FixtureRequest,
    agentsim_event: Event | None,
    agentsim_trial: int,
    agentsim_agent: Agent,
    agentsim_tools: Sequence[Tool | ToolFunction],
) -> EventResult:
    """The judged conversation of the current event; the test fails if a policy is violated.

    Its setup errors when the conversation could not be judged (the agent crashed, a
    judge failed); after the test body, any violated policy fails the test with a report.
    """
    tests = _tests(request)
    if agentsim_event is None:
        pytest.fail("agentsim: agentsim_conversation needs a parametrized event", pytrace=False)
    return tests.conversation(
        request.node, agentsim_event, agentsim_trial, agentsim_agent, agentsim_tools
    )


@pytest.fixture
def simulated_user(
    request: pytest.FixtureRequest,
    agentsim_agent: Agent,
    agentsim_tools: Sequence[Tool | ToolFunction],
) -> UserDriver:
    """Drive a conversation yourself: ``simulated_user.run(["Hi", "yes"])`` returns it judged."""
    return _tests(request).user_driver(request.node, agentsim_agent, agentsim_tools)


@pytest.fixture
def agentsim_fake_llm() -> Iterator[FakeLLMServer]:
    """A fake OpenAI-compatible LLM server on 127.0.0.1 with scripted replies, for offline tests."""
    from pytest_agentsim.llm.fake_server import FakeLLMServer

    with FakeLLMServer() as server:
        yield server
