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
from typing import Any

import pytest

if TYPE_CHECKING:
    from pytest_agentsim.core.models import Event
    from pytest_agentsim.core.models import EventResult
    from pytest_agentsim.core.models import PolicyPack
    from pytest_agentsim.generation.graph import PolicyGraph
    from pytest_agentsim.runtest import ConversationTests
    from pytest_agentsim.simulation.driver import UserDriver
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
    group = parser.getgroup("agentsim", "LLM agent simulation (pytest-agentsim)")
    group.addoption(
        "--agentsim",
        action="store_true",
        dest="agentsim",
        default=False,
        help="Simulate conversations with the agent under test and judge them against the policy packs",
    )
    group.addoption(
        "--agentsim-pack",
        action="append",
        dest="agentsim_packs",
        metavar="PATH",
        default=[],
        help="Policy pack YAML file (repeatable). Default: ini agentsim_packs, else policies/*.yaml",
    )
    group.addoption(
        "--agentsim-events",
        action="append",
        dest="agentsim_events",
        metavar="PATH",
        default=[],
        help="Events snapshot file (repeatable). Default: ini agentsim_events, else fixtures/events/*.yaml",
    )
    group.addoption(
        "--agentsim-generate",
        action="store_true",
        dest="agentsim_generate",
        default=False,
        help="(Re)write each pack's generated events snapshot from its templates (or with "
        "--agentsim-generate-model), then run on it (like a snapshot update: review the diff)",
    )
    group.addoption(
        "--agentsim-seed",
        dest="agentsim_seed",
        metavar="INT",
        default=None,
        help="Seed of the simulated users' choices and of event generation. "
        "Default: ini agentsim_seed, else 0",
    )
    group.addoption(
        "--agentsim-max-turns",
        dest="agentsim_max_turns",
        metavar="N",
        default=None,
        help="User turns before a conversation is stopped. Default: ini agentsim_max_turns, else 20",
    )
    group.addoption(
        "--agentsim-repeat",
        dest="agentsim_repeat",
        metavar="K",
        default=None,
        help="Run each event K times and report pass^k (tau-bench). Default: ini agentsim_repeat, else 1",
    )
    group.addoption(
        "--agentsim-concurrency",
        dest="agentsim_concurrency",
        metavar="N",
        default=None,
        help="Simulate up to N conversations at a time (worth it when models answer). "
        "Default: ini agentsim_concurrency, else 1",
    )
    group.addoption(
        "--agentsim-max-violation-rate",
        dest="agentsim_max_violation_rate",
        metavar="RATE",
        default=None,
        help="Gate: fail the run only if more events than RATE (0-1 or N%%) violate a policy. "
        "Default: ini agentsim_max_violation_rate",
    )
    group.addoption(
        "--agentsim-min-pass-k",
        dest="agentsim_min_pass_k",
        metavar="P",
        default=None,
        help="Gate: fail the run if pass^k is below P (0-1). Default: ini agentsim_min_pass_k",
    )
    group.addoption(
        "--agentsim-baseline",
        dest="agentsim_baseline",
        metavar="PATH",
        default=None,
        help="Gate: compare per-policy violation rates with a results file from --agentsim-json "
        "and fail only on a significant regression. Default: ini agentsim_baseline",
    )
    group.addoption(
        "--agentsim-json",
        dest="agentsim_json",
        metavar="PATH",
        default=None,
        help="Write per-event verdicts and per-policy / per-risk aggregates as JSON. Default: ini agentsim_json",
    )
    llm = parser.getgroup("agentsim-llm", "LLM user, judge and agent (pytest-agentsim)")
    llm.addoption(
        "--agentsim-user-model",
        dest="agentsim_user_model",
        metavar="MODEL",
        default=None,
        help="A model plays the simulated user (litellm model string, e.g. openai/gpt-4o-mini) "
        "instead of the offline agenda user. Default: ini agentsim_user_model",
    )
    llm.addoption(
        "--agentsim-judge-model",
        dest="agentsim_judge_model",
        metavar="MODEL",
        default=None,
        help="Add an LLM judge of every event's policies, beside the rule checks. "
        "Default: ini agentsim_judge_model",
    )
    llm.addoption(
        "--agentsim-judge-samples",
        dest="agentsim_judge_samples",
        metavar="N",
        default=None,
        help="Ask the LLM judge N times; a policy's verdict must be unanimous, else it is "
        "inconclusive. Default: ini agentsim_judge_samples, else 1",
    )
    llm.addoption(
        "--agentsim-agent-model",
        dest="agentsim_agent_model",
        metavar="MODEL",
        default=None,
        help="Model of the built-in LLM agent (with agentsim_agent_prompt), used when your "
        "conftest defines no agentsim_agent. Default: ini agentsim_agent_model",
    )
    llm.addoption(
        "--agentsim-agent-prompt",
        dest="agentsim_agent_prompt",
        metavar="PATH",
        default=None,
        help="System prompt file of the built-in LLM agent. Default: ini agentsim_agent_prompt",
    )
    llm.addoption(
        "--agentsim-generate-model",
        dest="agentsim_generate_model",
        metavar="MODEL",
        default=None,
        help="With --agentsim-generate: the model scores the policy graph's edges and fills "
        "each event (validated against the pack), instead of the pack's templates. "
        "Default: ini agentsim_generate_model",
    )
    llm.addoption(
        "--agentsim-api-base",
        dest="agentsim_api_base",
        metavar="URL",
        default=None,
        help="OpenAI-compatible endpoint for the models (vLLM, Ollama, a proxy). "
        "Default: ini agentsim_api_base, else the provider's",
    )
    llm.addoption(
        "--agentsim-api-key-env",
        dest="agentsim_api_key_env",
        metavar="NAME",
        default=None,
        help="Environment variable holding the API key (never written anywhere). "
        "Default: ini agentsim_api_key_env, else the provider's usual variable",
    )
    llm.addoption(
        "--agentsim-record-mode",
        dest="agentsim_record_mode",
        metavar="MODE",
        default=None,
        help="LLM cassettes: none (replay only; a miss is an error), once, new_episodes or all "
        "(record). Default: ini agentsim_record_mode, else none",
    )
    llm.addoption(
        "--agentsim-cassettes",
        dest="agentsim_cassettes",
        metavar="DIR",
        default=None,
        help="Directory of LLM cassettes (one file per event). Default: ini agentsim_cassettes, "
        "else fixtures/cassettes",
    )
    llm.addoption(
        "--agentsim-max-cost",
        dest="agentsim_max_cost",
        metavar="USD",
        default=None,
        help="Budget of the run's LLM calls; once spent, no new call is made and the events "
        "that needed one are errors. Default: ini agentsim_max_cost",
    )
    llm.addoption(
        "--agentsim-inconclusive",
        dest="agentsim_inconclusive",
        metavar="AS",
        default=None,
        help="What an inconclusive verdict (split judge vote) makes of its test: fail, xfail "
        "or error. Default: ini agentsim_inconclusive, else fail",
    )
    for name, text in (
        ("agentsim_user_model", "Model of the simulated user (default: offline agenda user)"),
        ("agentsim_judge_model", "Model of the LLM judge (default: rule checks only)"),
        ("agentsim_judge_samples", "Samples of the LLM judge per event (default 1)"),
        ("agentsim_agent_model", "Model of the built-in LLM agent"),
        ("agentsim_generate_model", "Model that generates events with --agentsim-generate"),
        ("agentsim_api_base", "OpenAI-compatible endpoint of the models"),
        ("agentsim_api_key_env", "Environment variable holding the API key"),
        ("agentsim_record_mode", "LLM cassette mode: none, once, new_episodes, all (default none)"),
        ("agentsim_max_cost", "USD budget of the run's LLM calls"),
        ("agentsim_inconclusive", "Inconclusive verdicts make tests: fail, xfail, error"),
        ("agentsim_agent_prompt", "System prompt file of the built-in agent, relative to the ini"),
        ("agentsim_cassettes", "Directory of LLM cassettes, relative to the ini file"),
    ):
        parser.addini(name, text, default="")
    parser.addini(
        "agentsim_prices",
        "Lines 'model = input, output': USD per million prompt and completion tokens, for "
        "models litellm does not price (wins over its price map)",
        type="linelist",
    )
    parser.addini(
        "agentsim_secret_env",
        "Environment variables whose values are secrets, redacted from everything written "
        "(besides *_API_KEY, *_TOKEN, *SECRET* and the API key's variable)",
        type="linelist",
    )
    parser.addini(
        "agentsim_secret_patterns",
        "Regexes (one per line) of more text to redact from everything written",
        type="linelist",
    )
    parser.addini("agentsim_packs", "Policy pack files, relative to the ini file", type="paths")
    parser.addini(
        "agentsim_events", "Events snapshot files, relative to the ini file", type="paths"
    )
    parser.addini("agentsim_seed", "Seed of the simulated users' choices (default 0)", default="")
    parser.addini("agentsim_repeat", "Trials per event, for pass^k (default 1)", default="")
    parser.addini(
        "agentsim_concurrency", "Conversations simulated at a time (default 1)", default=""
    )
    parser.addini(
        "agentsim_max_violation_rate",
        "Gate: largest tolerated share of violating events",
        default="",
    )
    parser.addini(
        "agentsim_max_violation_rate_per_risk",
        "Gate lines 'risk category = rate': largest tolerated violation rate per category",
        type="linelist",
    )
    parser.addini(
        "agentsim_max_violation_rate_per_policy",
        "Gate lines 'policy-id = rate': largest tolerated violation rate per policy",
        type="linelist",
    )
    parser.addini("agentsim_min_pass_k", "Gate: smallest tolerated pass^k (0-1)", default="")
    parser.addini(
        "agentsim_baseline", "Baseline results file, relative to the ini file", default=""
    )
    parser.addini(
        "agentsim_baseline_alpha",
        "Significance level of the baseline comparison (default 0.05)",
        default="",
    )
    parser.addini(
        "agentsim_progress_seconds",
        "Seconds between progress lines on long runs (default 10; 0: after every event)",
        default="",
    )
    parser.addini("agentsim_json", "JSON results file, relative to the ini file", default="")
    parser.addini(
        "agentsim_max_turns", "User turns before a conversation is stopped (default 20)", default=""
    )


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
        from pytest_agentsim.summary import SummaryReporter

        register(SummaryReporter(session), "agentsim-summary")
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
def agentsim_agent(request: pytest.FixtureRequest) -> Any:
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
def agentsim_tools() -> Sequence[Any]:
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
    agentsim_tools: Sequence[Any], agentsim_pack: PolicyPack, agentsim_event: Event | None
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
    agentsim_agent: Any,
    agentsim_tools: Sequence[Any],
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
    request: pytest.FixtureRequest, agentsim_agent: Any, agentsim_tools: Sequence[Any]
) -> UserDriver:
    """Drive a conversation yourself: ``simulated_user.run(["Hi", "yes"])`` returns it judged."""
    return _tests(request).user_driver(request.node, agentsim_agent, agentsim_tools)


@pytest.fixture
def agentsim_fake_llm() -> Iterator[Any]:
    """A fake OpenAI-compatible LLM server on 127.0.0.1 with scripted replies, for offline tests."""
    from pytest_agentsim.llm.fake_server import FakeLLMServer

    with FakeLLMServer() as server:
        yield server
