"""The per-test hooks: tests parametrized over events, each event simulated and judged for
its test, and outcomes turned into pass, fail, error or xfail.

Registered in every process (controller and xdist workers alike) by
``plugin.pytest_configure`` with ``--agentsim``; what crosses back to the controller is the
record attached to each test report, which :mod:`pytest_agentsim.summary` reads.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Generator
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

import pytest

from pytest_agentsim.core.errors import ConversationError
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import PolicyViolation
from pytest_agentsim.packs.events import starting_db
from pytest_agentsim.reporting.failure import failure_report as render_failure
from pytest_agentsim.reporting.failure import junit_properties
from pytest_agentsim.reporting.failure import wants_traceback
from pytest_agentsim.reporting.results import RESULT_KEY
from pytest_agentsim.reporting.results import result_record
from pytest_agentsim.session import AgentSimSession
from pytest_agentsim.simulation.agent import Agent
from pytest_agentsim.simulation.driver import UserDriver
from pytest_agentsim.simulation.runner import Case
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.tools import ToolDefinitionError
from pytest_agentsim.simulation.tools import ToolLike

EVENT_RESULT = pytest.StashKey[EventResult]()  # what the test sees (one policy's, per policy)
WHOLE_RESULT = pytest.StashKey[EventResult]()  # every policy's: the event's record
VIOLATION_ONLY = pytest.StashKey[bool]()
VIOLATION_ONLY_KEY = "agentsim_violation_only"
#: Set on the report of a test that errored because its event could not be judged
#: (EventRecord.errored): what --agentsim-max-error-rate may tolerate, and only that.
ERROR_ONLY_KEY = "agentsim_error_only"
#: Set on the teardown report of a ``simulated_user`` test: the model calls of the
#: conversations it ran (an LLMTally as JSON), which no event record carries.
DRIVER_LLM_KEY = "agentsim_driver_llm"
USER_DRIVER = pytest.StashKey[UserDriver]()
T = TypeVar("T")


def sandbox_for(tools: Sequence[ToolLike], db: dict[str, Any]) -> ToolSandbox:
    """A sandbox of the user's tools; a tool that cannot be described fails with its source."""
    try:
        return ToolSandbox(tools, db)
    except ToolDefinitionError as exc:
        pytest.fail(f"agentsim_{exc}", pytrace=False)


def focused(result: EventResult, policy: str | None) -> EventResult:
    """The result as a test per (event, ``policy``) sees it: that policy's verdict only."""
    if policy is None:
        return result
    return result.model_copy(
        update={"policies": [r for r in result.policies if r.policy_id == policy]}
    )


def failure_report(result: EventResult, config: pytest.Config) -> str:
    """The failure text, with the error's traceback when pytest was asked for detail."""
    traceback = wants_traceback(
        config.get_verbosity(),
        str(config.getoption("tbstyle", "auto")),
        bool(config.getoption("fulltrace", False)),
    )
    return render_failure(result, traceback=traceback)


def _session_scoped(item: pytest.Item, *fixtures: str) -> bool:
    """Whether the item's fixtures of these names are session-scoped: one value for all."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return all(
        name in definitions and definitions[name][-1].scope == "session" for name in fixtures
    )


def _unstash(item: pytest.Item, key: pytest.StashKey[T]) -> None:
    if key in item.stash:
        del item.stash[key]


def _case_of(item: pytest.Item) -> tuple[Event, int, str | None] | None:
    """The (event, trial, policy) a test is parametrized over, if it is."""
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("agentsim_case") if callspec is not None else None
    return case if isinstance(case, tuple) else None


class ConversationTests:
    """Parametrizes tests over the catalog's events and gives each its judged result."""

    def __init__(self, session: AgentSimSession) -> None:
        self.session = session
        self.settings = session.settings
        self.catalog = session.catalog
        self.planned: list[tuple[pytest.Item, Event, int]] = []
        # Agents whose planned cases were prefetched, kept so that their ids stay theirs.
        self.prefetched: dict[int, Agent] = {}
        # Planned tests still to run per (domain, event, trial): at 0 the runner forgets
        # that conversation, so memory holds what later tests need, not every event's.
        self.pending: Counter[tuple[str, str, int]] = Counter()

    # -- lookups for fixtures ------------------------------------------------------------

    def pack_for(self, event: Event | None, domain: str | None = None) -> PolicyPack:
        """The event's pack, the named domain's, or the only pack loaded."""
        packs = self.catalog.packs
        if event is not None:
            return packs[event.domain]
        if domain is not None:
            if domain not in packs:
                pytest.fail(
                    f"agentsim: no policy pack of domain {domain!r} (loaded: {', '.join(packs)})",
                    pytrace=False,
                )
            return packs[domain]
        if len(packs) == 1:
            return next(iter(packs.values()))
        pytest.fail(
            "agentsim: several policy packs are loaded and this test has no event to choose one "
            f"({', '.join(packs)}); pass domain=... or parametrize it over events",
            pytrace=False,
        )

    def user_model(self, item: pytest.Item) -> str | None:
        """The simulated user's model: the test's agentsim_user_model mark, else the run's."""
        mark = item.get_closest_marker("agentsim_user_model")
        if mark is None:
            return self.settings.llm.user_model
        if len(mark.args) != 1 or not (mark.args[0] is None or isinstance(mark.args[0], str)):
            pytest.fail(
                f"{item.nodeid}: @pytest.mark.agentsim_user_model takes one model string "
                "(or None for the offline user)",
                pytrace=False,
            )
        return mark.args[0] or None

    def user_driver(self, item: pytest.Item, agent: Agent, tools: Sequence[ToolLike]) -> UserDriver:
        """The ``simulated_user`` fixture's value for ``item``."""
        driver = item.stash[USER_DRIVER] = UserDriver(
            self.session.runner,
            agent=agent,
            pack_for=lambda domain: self.pack_for(None, domain),
            sandbox_for=lambda pack, event: sandbox_for(tools, starting_db(pack, event)),
            name=item.name,
            user_model=self.user_model(item),
        )
        return driver

    def selected_events(self, markers: Sequence[pytest.Mark], where: str) -> list[Event]:
        """The events a test runs on, narrowed by its agentsim_policy / agentsim_risk marks."""
        return [event for event, _ in self.selected_cases(markers, where, per_policy=False)]

    def selected_cases(
        self, markers: Sequence[pytest.Mark], where: str, *, per_policy: bool
    ) -> list[tuple[Event, str | None]]:
        """(event, policy) pairs a test runs on: per event (policy None), narrowed by its
        agentsim_policy / agentsim_risk marks to the events that list such policies; or,
        ``per_policy``, every event with every policy of its pack (each is judged on every
        event), the marks narrowing the policies judged."""
        known = {
            "agentsim_policy": self.catalog.policy_ids,
            "agentsim_risk": self.catalog.risk_names,
        }
        wanted_by: list[tuple[str, set[str]]] = []
        for mark in markers:
            wanted = {str(arg) for arg in mark.args}
            unknown = wanted - known[mark.name]
            if not wanted or unknown:
                what = "policies" if mark.name == "agentsim_policy" else "risk categories"
                problem = (
                    f"names unknown {what} {sorted(unknown)}" if wanted else "needs an argument"
                )
                pytest.fail(
                    f"{where}: @pytest.mark.{mark.name} {problem} "
                    f"(known: {', '.join(sorted(known[mark.name]))})",
                    pytrace=False,
                )
            wanted_by.append((mark.name, wanted))
        if not per_policy:
            events = self.catalog.events
            for name, wanted in wanted_by:
                if name == "agentsim_policy":
                    events = self.catalog.with_policies(events, wanted)
                else:
                    events = self.catalog.with_risks(events, wanted)
            return [(event, None) for event in events]
        return [
            (event, policy.id)
            for event in self.catalog.events
            for policy in self.catalog.packs[event.domain].policies
            if all(
                policy.id in wanted
                if name == "agentsim_policy"
                else wanted & self.catalog.risks_of_policy(event.domain, policy.id)
                for name, wanted in wanted_by
            )
        ]

    # -- collection ----------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # Tests over events: those taking the conversation, or asking for the event itself.
        own_args = inspect.signature(metafunc.function).parameters
        if (
            "agentsim_conversation" not in metafunc.fixturenames
            and "agentsim_event" not in own_args
        ):
            return
        markers = [
            *metafunc.definition.iter_markers("agentsim_policy"),
            *metafunc.definition.iter_markers("agentsim_risk"),
        ]
        per_policy = self.settings.test_per == "policy"
        cases = self.selected_cases(markers, metafunc.definition.nodeid, per_policy=per_policy)
        if not cases:
            if self.catalog.events:
                wanted = "; ".join(f"{m.name}({', '.join(map(str, m.args))})" for m in markers)
                reason = f"no agentsim event of the {len(self.catalog.events)} matches {wanted}"
            else:
                reason = "no agentsim events: the events files hold none"
            metafunc.parametrize(
                "agentsim_case",
                [pytest.param(None, id="no-events", marks=pytest.mark.skip(reason=reason))],
                indirect=True,
            )
            return
        several = len(self.catalog.packs) > 1
        repeat = self.settings.repeat
        # Per policy, the id names the one policy judged: `-k refund-window` selects it
        # on every event. Per event, the policies the event lists (not all it is judged on).
        metafunc.parametrize(
            "agentsim_case",
            [
                pytest.param(
                    (event, trial, policy),
                    id=(f"{event.domain}-" if several else "")
                    + (event.test_id if policy is None else f"{event.id}-{policy}")
                    + (f"-r{trial + 1}" if repeat > 1 else ""),
                )
                for event, policy in cases
                for trial in range(repeat)
            ],
            indirect=True,
        )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Remember the (test, event, trial) cases left after selection, for prefetching."""
        self.planned = []
        self.prefetched = {}
        self.pending = Counter()
        for item in items:
            case = _case_of(item)
            if case is not None:
                self.planned.append((item, case[0], case[1]))
                self.pending[(case[0].domain, case[0].id, case[1])] += 1

    # -- running -------------------------------------------------------------------------

    def conversation(
        self,
        item: pytest.Item,
        event: Event,
        trial: int,
        agent: Agent,
        tools: Sequence[ToolLike],
        policy: str | None = None,
    ) -> EventResult:
        """The judged result of ``event`` for the test ``item``; errors fail its setup.

        With ``policy`` (``--agentsim-test-per=policy``) the test sees that policy's
        verdict alone: the result it gets, its pass or fail, and the failure report are
        narrowed to it. The record of the event (summary, JSON) stays whole.
        """
        pack = self.catalog.packs[event.domain]
        runner = self.session.runner
        if (
            self.settings.concurrency > 1
            and id(agent) not in self.prefetched
            and _session_scoped(item, "agentsim_agent", "agentsim_tools")
        ):
            # Once per agent: every planned case is then simulated (or left to raise for its
            # own test), so building their sandboxes again for each test would be waste.
            self.prefetched[id(agent)] = agent
            runner.prefetch(
                [
                    Case(
                        event=planned_event,
                        pack=self.catalog.packs[planned_event.domain],
                        sandbox=sandbox_for(
                            tools,
                            starting_db(self.catalog.packs[planned_event.domain], planned_event),
                        ),
                        trial=planned_trial,
                        user_model=self.user_model(planned_item),
                    )
                    for planned_item, planned_event, planned_trial in self.planned
                ],
                agent,
                self.settings.concurrency,
            )
        sandbox = sandbox_for(tools, starting_db(pack, event))
        if sandbox.tools and (problem := self.catalog.tool_problem(pack, event, sandbox.tools)):
            pytest.fail(problem, pytrace=False)
        whole = runner.result(event, pack, agent, sandbox, trial, user_model=self.user_model(item))
        item.stash[WHOLE_RESULT] = whole
        result = focused(whole, policy)
        item.stash[EVENT_RESULT] = result
        item.user_properties.extend(junit_properties(result))
        item.config.hook.pytest_agentsim_event_judged(
            item=item, event=event, result=result, config=item.config
        )
        inconclusive_is_error = self.settings.llm.inconclusive == "error" and result.with_outcome(
            Outcome.inconclusive
        )
        if result.errors or result.conversation.stop_reason.is_error or inconclusive_is_error:
            # Could not be judged to the end: an error, even if a violation was found first.
            raise ConversationError(failure_report(result, item.config))
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        result = item.stash.get(EVENT_RESULT, None)
        inconclusive = self.settings.llm.inconclusive
        try:
            yield
        except PolicyViolation as exc:
            if exc.result is not None:  # the headline becomes the full report, as a test needs
                exc.args = (failure_report(exc.result, item.config),)
            # A gate may tolerate the failure only if it is a violation and nothing worse
            # (an assert_compliant() without a result to tell is taken at its word).
            failed = exc.result if exc.result is not None else result
            item.stash[VIOLATION_ONLY] = failed is None or failed.kind is FailureKind.violation
            # assert_compliant() in the body: a verdict that is only inconclusive follows
            # agentsim_inconclusive like the automatic check below.
            if (
                result is not None
                and inconclusive == "xfail"
                and result.with_outcome(Outcome.inconclusive)
                and not result.violated
            ):
                pytest.xfail(failure_report(result, item.config))
            raise
        if result is None:
            return
        if result.violated or (
            result.with_outcome(Outcome.inconclusive) and inconclusive == "fail"
        ):
            item.stash[VIOLATION_ONLY] = result.kind is FailureKind.violation
            pytest.fail(failure_report(result, item.config), pytrace=False)
        if result.with_outcome(Outcome.inconclusive):  # agentsim_inconclusive = xfail
            pytest.xfail(failure_report(result, item.config))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        """Once a test is reported, drop what it alone kept: its results (on the item,
        which pytest keeps to the end) and, after the last test of its event, the runner's
        conversation. Its report keeps the record the summary reads."""
        try:
            return (yield)
        finally:
            _unstash(item, WHOLE_RESULT)
            _unstash(item, EVENT_RESULT)
            _unstash(item, VIOLATION_ONLY)
            _unstash(item, USER_DRIVER)
            case = _case_of(item)
            if case is not None:
                event, trial = case[0], case[1]
                key = (event.domain, event.id, trial)
                self.pending[key] -= 1
                if self.pending[key] <= 0:
                    del self.pending[key]
                    self.session.runner.release(event, trial)

    # trylast: the innermost wrapper, so that the report is finished here before any other
    # wrapper reads it (allure-pytest's takes the trace from it, which would otherwise be
    # pytest's traceback, whose argument values show the event unredacted).
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        result = item.stash.get(WHOLE_RESULT, None)
        if result is not None and (call.when == "call" or (call.when == "setup" and report.failed)):
            # Reports are the one channel xdist carries back to the controller: as one JSON
            # string (which execnet sends as one blob, where a nested dict costs it a call
            # per value on either side), validated back into an EventRecord by the summary.
            record = result_record(result, transcript=self.settings.json_path is not None)
            report.__dict__[RESULT_KEY] = record.model_dump_json()
            if record.errored and call.excinfo is not None:
                report.__dict__[ERROR_ONLY_KEY] = call.excinfo.errisinstance(ConversationError)
        driver = item.stash.get(USER_DRIVER, None)
        if driver is not None and call.when == "teardown":
            report.__dict__[DRIVER_LLM_KEY] = driver.llm.model_dump(mode="json")
        if call.excinfo is not None and call.excinfo.errisinstance(ConversationError):
            report.longrepr = str(call.excinfo.value)  # the report says it all: no traceback
        if call.when == "call" and report.failed:
            # Quality gates may tolerate these failures, and only these: a test's own
            # failing assertion never set the flag.
            report.__dict__[VIOLATION_ONLY_KEY] = item.stash.get(VIOLATION_ONLY, False)
        return report
