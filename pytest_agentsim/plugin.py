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
    from pytest_agentsim.simulation.sandbox import ToolSandbox
    from pytest_agentsim.simulation.tools import ToolLike

TESTS = pytest.StashKey["ConversationTests"]()
REGISTERED = pytest.StashKey[list[str]]()
AGENTSIM_FIXTURES = frozenset(
    {
        "agentsim_conversation",
        "agentsim_event",
        "agentsim_case",
        "agentsim_trial",
        "agentsim_test_policy",
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
    config.addinivalue_line(
        "markers",
        "agentsim_calibration: a judge's calibration test (--agentsim-calibrate); select with "
        "-m agentsim_calibration",
    )
    if not config.getoption("agentsim"):
        for option in ("agentsim_generate", "agentsim_generate_model", "agentsim_calibrate"):
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
    from pytest_agentsim.session import LongLivedHeap
    from pytest_agentsim.session import freeze_heap_at_exit
    from pytest_agentsim.session import is_worker

    freeze_heap_at_exit()
    session = AgentSimSession(config)
    register(LongLivedHeap(config), "agentsim-long-lived-heap")
    tests = config.stash[TESTS] = ConversationTests(session)
    register(tests, "agentsim-tests")
    if session.settings.calibration is not None:
        from pytest_agentsim.calibrate import CalibrationTests

        register(CalibrationTests(session, session.settings.calibration), "agentsim-calibration")
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
    """The agent under test. Override it in your conftest: ``return MyAgent()``, or a
    factory of one per event: ``return pytest_agentsim.agent_factory(lambda event: ...)``.

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
        "under test (a callable or an object with respond(messages, sandbox), or "
        "pytest_agentsim.agent_factory(make) making one per event), or set "
        "agentsim_agent_prompt and agentsim_agent_model for the built-in LLM agent",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def agentsim_tools() -> Sequence[ToolLike]:
    """The agent's tools. Override it in your conftest: functions ``f(db, **kwargs)``, bound
    methods, objects with ``invoke``/``__call__``, classes with a static ``invoke``, or
    ``pytest_agentsim.tool(f, name=..., schema=...)``."""
    return []


@pytest.fixture
def agentsim_case(request: pytest.FixtureRequest) -> tuple[Event, int, str | None] | None:
    """(event, trial, policy) of a test parametrized over events (policy: the one it
    judges with --agentsim-test-per=policy, else None); None for other tests."""
    _tests(request)
    return getattr(request, "param", None)


@pytest.fixture
def agentsim_event(agentsim_case: tuple[Event, int, str | None] | None) -> Event | None:
    """The event this test runs on (None for tests that are not parametrized over events)."""
    return agentsim_case[0] if agentsim_case else None


@pytest.fixture
def agentsim_trial(agentsim_case: tuple[Event, int, str | None] | None) -> int:
    """Which repeat of the event this test is (0-based; see --agentsim-repeat)."""
    return agentsim_case[1] if agentsim_case else 0


@pytest.fixture
def agentsim_test_policy(agentsim_case: tuple[Event, int, str | None] | None) -> str | None:
    """The policy this test judges with --agentsim-test-per=policy (None: every policy)."""
    return agentsim_case[2] if agentsim_case else None


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
    agentsim_tools: Sequence[ToolLike],
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
    agentsim_test_policy: str | None,
    agentsim_agent: Agent,
    agentsim_tools: Sequence[ToolLike],
) -> EventResult:
    """The judged conversation of the current event; the test fails if a policy is violated.

    Its setup errors when the conversation could not be judged (the agent crashed, a
    judge failed); after the test body, any violated policy fails the test with a report.
    """
    tests = _tests(request)
    if agentsim_event is None:
        pytest.fail("agentsim: agentsim_conversation needs a parametrized event", pytrace=False)
    return tests.conversation(
        request.node,
        agentsim_event,
        agentsim_trial,
        agentsim_agent,
        agentsim_tools,
        agentsim_test_policy,
    )


@pytest.fixture
def simulated_user(
    request: pytest.FixtureRequest,
    agentsim_agent: Agent,
    agentsim_tools: Sequence[ToolLike],
) -> UserDriver:
    """Drive a conversation yourself: ``simulated_user.run(["Hi", "yes"])`` returns it judged."""
    return _tests(request).user_driver(request.node, agentsim_agent, agentsim_tools)


@pytest.fixture
def agentsim_fake_llm() -> Iterator[FakeLLMServer]:
    """A fake OpenAI-compatible LLM server on 127.0.0.1 with scripted replies, for offline tests."""
    from pytest_agentsim.llm.fake_server import FakeLLMServer

    with FakeLLMServer() as server:
        yield server
