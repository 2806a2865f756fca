"""Allure: one result per (event, policy) verdict, filed by risk, beside pytest's own tests.

Registered only when allure-pytest is active with ``--alluredir`` (otherwise allure's
calls are no-ops anyway, and this module is never imported). allure-pytest writes every
result: the tests it records itself, and the verdict results this module hands to its
writer through allure-commons (the same files, attachments and format).

- **Verdict results** (label ``agentsim_result=verdict``): one per policy judged in an
  event and trial, written once however many tests use the event. epic = the AIR level-1
  risk category, feature = the level-2 category, story = the policy, so the behaviors
  tree counts per policy what the terminal's per-policy table counts: compliant is
  passed, violated failed, error broken, not applicable skipped, inconclusive unknown.
  The conversation is replayed as steps (the turn a verdict points at is failed, or broken,
  with its reason); the attachments are the chat (HTML), the verdict table (HTML), tool
  calls, database diff and cost. Title: ``event · policy: scenario``.
- **Test results** (``agentsim_result=test``): every pytest test, under epic "pytest
  tests" > test file > test function, so none sits unlabelled at the root; a test of an
  event is titled ``test · event: scenario`` and carries the same attachments.

``agentsim_outcome`` files verdicts into Allure 3's categories (allurerc.mjs, generated
from :data:`OUTCOME_CATEGORIES`); Allure 2 gets the same table as ``categories.json``,
matching the verdict's message, which starts with its category's name.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import time
from collections.abc import Generator
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyResult
from pytest_agentsim.reporting.allure_html import flags
from pytest_agentsim.reporting.allure_html import shown_verdicts
from pytest_agentsim.reporting.allure_html import tool_calls_json
from pytest_agentsim.reporting.allure_html import transcript_html
from pytest_agentsim.reporting.allure_html import verdict_table_html
from pytest_agentsim.reporting.failure import render_transcript

if TYPE_CHECKING:
    from pytest_agentsim.core.models import Event
    from pytest_agentsim.core.models import EventResult

#: Our risk severity -> Allure's. Allure has five fixed levels and we have four; this keeps
#: the order (Allure's sorting, filters and charts rank them right) and names our
#: ``critical`` Allure's top level. Each verdict also shows ours as ``risk severity``.
SEVERITY = {"low": "minor", "medium": "normal", "high": "critical", "critical": "blocker"}

#: A verdict's Allure status, one per column of the terminal's per-policy table.
STATUS = {
    Outcome.compliant: "passed",
    Outcome.violated: "failed",
    Outcome.error: "broken",
    Outcome.not_applicable: "skipped",
    Outcome.inconclusive: "unknown",
}

#: The label every agentsim result carries: what it is (a verdict or a pytest test).
RESULT_LABEL = "agentsim_result"
#: The label of a verdict: its FailureKind, or its outcome when nothing failed.
OUTCOME_LABEL = "agentsim_outcome"
TESTS_EPIC = "pytest tests"
JUDGED = pytest.StashKey["EventResult"]()


@dataclass(frozen=True)
class OutcomeCategory:
    """One Allure category: the verdicts of one failure kind (None: failed pytest tests)."""

    kind: FailureKind | None
    name: str
    statuses: tuple[str, ...]

    @property
    def matcher_labels(self) -> dict[str, str]:
        if self.kind is None:
            return {RESULT_LABEL: "^test$"}
        return {OUTCOME_LABEL: f"^{self.kind.value}$"}


#: The categories, in the order both Allure versions try them (the first match wins).
OUTCOME_CATEGORIES = (
    OutcomeCategory(FailureKind.violation, "Policy violation", ("failed",)),
    OutcomeCategory(FailureKind.agent_crash, "Agent crash", ("broken",)),
    OutcomeCategory(FailureKind.judge_error, "Judge error", ("broken",)),
    OutcomeCategory(FailureKind.inconclusive, "Inconclusive verdict", ("unknown",)),
    OutcomeCategory(FailureKind.infrastructure, "Infrastructure error", ("broken",)),
    OutcomeCategory(None, "Failed pytest test", ("failed", "broken")),
)
_CATEGORY_NAME = {category.kind: category.name for category in OUTCOME_CATEGORIES}


def verdict_kind(result: EventResult, policy: PolicyResult) -> FailureKind | None:
    """Why one policy's verdict is a problem, in EventResult.kind's terms (None: it is not)."""
    if policy.outcome is Outcome.violated:
        return FailureKind.violation
    if policy.outcome is Outcome.inconclusive:
        return FailureKind.inconclusive
    if policy.outcome is not Outcome.error:
        return None
    if result.conversation.stop_reason.is_error:
        return FailureKind.agent_crash
    if any(v.judge_error for v in policy.verdicts if v.outcome is Outcome.error):
        return FailureKind.judge_error
    return FailureKind.infrastructure


def outcome_label(result: EventResult, policy: PolicyResult) -> str:
    """The ``agentsim_outcome`` of a verdict: its failure kind, or its outcome."""
    kind = verdict_kind(result, policy)
    return policy.outcome.value if kind is None else kind.value


def allure3_categories() -> list[dict[str, Any]]:
    """The ``categories`` of allurerc.mjs: Allure 3 matches labels and statuses.

    Inside a category, results are grouped by story (the policy of a verdict, the
    function of a test), not by message: every verdict's message is its own.
    """
    return [
        {
            "name": category.name,
            "matchers": {"labels": category.matcher_labels, "statuses": list(category.statuses)},
            "groupBy": [{"label": "story"}],
            "groupByMessage": False,
            "expand": True,
        }
        for category in OUTCOME_CATEGORIES
    ]


def allure2_categories() -> list[dict[str, Any]]:
    """``categories.json`` for Allure 2, which matches text: a verdict's message names it."""
    return [
        {"name": category.name, "matchedStatuses": list(category.statuses)}
        | ({} if category.kind is None else {"messageRegex": f"(?s){re.escape(category.name)}: .*"})
        for category in OUTCOME_CATEGORIES
    ]


def verdict_title(result: EventResult, policy_id: str) -> str:
    event = result.event
    trial = f" (trial {result.trial + 1})" if result.trial else ""
    return f"{event.id} · {policy_id}: {event.scenario or ', '.join(event.policies)}{trial}"


def verdict_message(result: EventResult, policy: PolicyResult) -> str | None:
    """'Policy violation: refund-window, turn 9: <reason>' (None when nothing failed)."""
    kind = verdict_kind(result, policy)
    if kind is None:
        return None
    reasons = "; ".join(
        f"{'conversation' if v.turn is None else f'turn {v.turn}'}: {v.reason}"
        for v in shown_verdicts(policy)
    )
    return f"{_CATEGORY_NAME[kind]}: {policy.policy_id}, {reasons or 'no verdict'}"


def _commons(name: str) -> Any:
    """A module of allure-commons, untyped (its functions carry no annotations)."""
    return importlib.import_module(f"allure_commons.{name}")


def _allure() -> Any:
    """The allure module, untyped (it ships no type information)."""
    import allure

    return allure


def _test_path(item: pytest.Item) -> tuple[str, str]:
    """(test file, test function without parameters): where a pytest test sits in the tree."""
    file, _, rest = item.nodeid.partition("::")
    return file, re.sub(r"\[.*\]$", "", rest) or item.name


def _labelled_by_user(item: pytest.Item) -> bool:
    return any(
        mark.kwargs.get("label_type") in ("epic", "feature", "story")
        for mark in item.iter_markers("allure_label")
    )


def _pytest_internal(finalizer: Any) -> bool:
    """pytest's own bookkeeping (FixtureDef's lambda, a partial of FixtureDef.finish), not a
    teardown a fixture's author wrote (a yield fixture's teardown is kept)."""
    function = getattr(finalizer, "func", finalizer)
    return str(getattr(function, "__module__", "")).startswith("_pytest.") and str(
        getattr(function, "__qualname__", "")
    ).startswith("FixtureDef.")


@dataclass(frozen=True)
class Evidence:
    """What every Allure result of one judged event attaches, rendered once."""

    verdicts: str
    tool_calls: str
    diff: str
    cost: str

    @classmethod
    def of(cls, result: EventResult) -> Evidence:
        conversation = result.conversation
        llm = result.llm
        return cls(
            verdicts=verdict_table_html(result.policies),
            tool_calls=tool_calls_json(conversation),
            diff=conversation.db_diff_text() or "no change",
            cost=json.dumps(
                {
                    "usd": llm.cost_usd,
                    "tokens": llm.tokens,
                    "llm_calls": llm.calls,
                    "replayed_calls": llm.replayed_calls,
                }
            ),
        )

    def attachments(
        self, result: EventResult, policies: list[PolicyResult]
    ) -> list[tuple[str, str, str]]:
        """(name, body, type key) of each attachment, the transcript highlighting ``policies``."""
        return [
            ("transcript", transcript_html(result, flags(policies)), "HTML"),
            ("verdicts", self.verdicts, "HTML"),
            ("tool calls", self.tool_calls, "JSON"),
            ("database diff", self.diff, "TEXT"),
            ("cost", self.cost, "JSON"),
        ]


class VerdictWriter:
    """Writes the verdict results of judged events through allure-commons, once each."""

    def __init__(self, *, seed: int, models: str) -> None:
        self.seed = seed
        self.models = models
        self.written: set[tuple[str, int]] = set()
        # A verdict has no moment of its own (conversations are simulated ahead of their
        # tests): it starts with the run, lasting its conversation. That also lists the
        # risk branches above "pytest tests", whose results start later.
        self.run_start = int(time.time() * 1000)

    def write(self, result: EventResult) -> None:
        key = (result.event.id, result.trial)
        if key in self.written:
            return
        self.written.add(key)
        evidence = Evidence.of(result)
        for policy in result.policies:
            self.write_one(result, policy, evidence)

    def write_one(self, result: EventResult, policy: PolicyResult, evidence: Evidence) -> None:
        model, utils = _commons("model2"), _commons("utils")
        event = result.event
        lifecycle = _commons("lifecycle").AllureLifecycle()
        case_id = hashlib.md5(f"agentsim:{event.id}:{policy.policy_id}".encode()).hexdigest()
        result_id = utils.uuid4()
        with lifecycle.schedule_test_case(uuid=result_id) as test:
            test.name = verdict_title(result, policy.policy_id)
            test.fullName = f"agentsim::{event.id}::{policy.policy_id}"
            test.testCaseId = case_id
            # The same file and history id on every xdist worker that judges the event, so
            # Allure shows the verdict once, as the terminal's tables count it.
            test.historyId = hashlib.md5(f"{case_id}:{result.trial}".encode()).hexdigest()
            test.status = STATUS[policy.outcome]
            message = verdict_message(result, policy)
            if message:
                test.statusDetails = model.StatusDetails(message=message)
            test.start = self.run_start + len(self.written)  # in the order tests use them
            test.stop = test.start + int(result.conversation.duration_seconds * 1000)
            labels = {
                RESULT_LABEL: "verdict",
                OUTCOME_LABEL: outcome_label(result, policy),
                "epic": policy.risk_level1 or policy.risk_category,
                "feature": policy.risk_category,
                "story": policy.policy_id,
                "severity": SEVERITY[policy.severity.value],
                "framework": "pytest-agentsim",
            }
            test.labels = [model.Label(name, value) for name, value in labels.items()]
            test.labels += [model.Label("tag", tag) for tag in event.policies]
            parameters = {
                "event": event.id,
                "policy": policy.policy_id,
                "trial": str(result.trial + 1),
                "risk severity": policy.severity.value,
                "seed": str(self.seed),
                "models": self.models,
                **{
                    f"metadata.{key}": json.dumps(value, default=str)
                    for key, value in event.metadata.items()
                },
            }
            test.parameters = [model.Parameter(name=k, value=v) for k, v in parameters.items()]
            # The chat on the Overview tab too: attachments open only on a click.
            test.descriptionHtml = transcript_html(result, flags([policy]))
            self.steps(lifecycle, result_id, result, policy)
            for name, body, kind in evidence.attachments(result, [policy]):
                lifecycle.attach_data(
                    utils.uuid4(),
                    body,
                    name=name,
                    attachment_type=_commons("types").AttachmentType[kind],
                    parent_uuid=result_id,
                )
        lifecycle.write_test_case(uuid=result_id)

    @staticmethod
    def steps(lifecycle: Any, parent: str, result: EventResult, policy: PolicyResult) -> None:
        """A step per message; the turn a problem verdict points at takes the verdict's status."""
        model, utils = _commons("model2"), _commons("utils")
        reasons: dict[int | None, list[str]] = {}
        for flag in flags([policy]):
            reasons.setdefault(flag.turn, []).append(f"{flag.judge}: {flag.reason}")
        lines: dict[int | None, list[str]] = {}
        for line in render_transcript(result.conversation, limit=200):
            lines.setdefault(int(line[1 : line.index("]")]), []).append(line)
        if None in reasons:
            lines[None] = [f"{policy.outcome.value} {policy.policy_id} (whole conversation)"]
        for index, text in lines.items():
            step_id = utils.uuid4()
            with lifecycle.start_step(parent_uuid=parent, uuid=step_id) as step:
                step.name = "; ".join(text)
                step.status = "passed"
                if index in reasons:
                    step.status = STATUS[policy.outcome]
                    step.statusDetails = model.StatusDetails(message="\n".join(reasons[index]))
            lifecycle.stop_step(uuid=step_id)


class AllureReporter:
    """Labels pytest's tests, writes the verdict results, and hides pytest's own finalizers."""

    def __init__(
        self, results_dir: Path, *, seed: int, models: str, environment: Mapping[str, Any]
    ) -> None:
        self.results_dir = results_dir
        self.seed = seed
        self.models = models
        self.environment = dict(environment)
        self.verdicts = VerdictWriter(seed=seed, models=models)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Runs inside allure-pytest's wrapper (its result exists) and before any fixture, so
        # a test whose setup fails is labelled too.
        allure = _allure()
        allure.dynamic.label(RESULT_LABEL, "test")
        if not _labelled_by_user(item):
            file, function = _test_path(item)
            allure.dynamic.epic(TESTS_EPIC)
            allure.dynamic.feature(file)
            allure.dynamic.story(function)

    @pytest.hookimpl
    def pytest_agentsim_event_judged(
        self, item: pytest.Item, event: Event, result: EventResult, config: pytest.Config
    ) -> None:
        # Called while the conversation fixture sets up: the test's own title and
        # attachments wait for its call phase (allure-pytest names the test after setup,
        # and an attachment now would land on the fixture).
        self.verdicts.write(result)
        item.stash[JUDGED] = result

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        self.describe(item)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        if call.when == "setup" and call.excinfo is not None:
            self.describe(item)  # the conversation could not be judged: no call phase

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        # Described by now: the result need not live on with the item to the run's end.
        try:
            return (yield)
        finally:
            if JUDGED in item.stash:
                del item.stash[JUDGED]

    def describe(self, item: pytest.Item) -> None:
        """Title, parameters and attachments of a test that used a judged event."""
        result = item.stash.get(JUDGED, None)
        if result is None:
            return
        allure = _allure()
        event = result.event
        _, function = _test_path(item)
        trial = f" (trial {result.trial + 1})" if result.trial else ""
        allure.dynamic.title(
            f"{function} · {event.id}: {event.scenario or ', '.join(event.policies)}{trial}"
        )
        allure.dynamic.tag(*event.policies)
        allure.dynamic.parameter("event", event.id)
        allure.dynamic.parameter("trial", result.trial + 1)
        for key, value in event.metadata.items():
            allure.dynamic.parameter(f"metadata.{key}", json.dumps(value, default=str))
        for name, body, kind in Evidence.of(result).attachments(result, result.policies):
            allure.attach(body, name=name, attachment_type=getattr(allure.attachment_type, kind))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        """Unwrap pytest's own finalizers from allure-pytest's teardown recording.

        From pytest 9.1 every fixture has an internal finalizer; allure-pytest wraps it
        like a user's, and it shows as an "unknown" ``fixture::<lambda>`` teardown in every
        test (allure-python#918). This wrapper is outermost, so it runs after allure's.
        """
        try:
            return (yield)
        finally:
            finalizers = getattr(fixturedef, "_finalizers", [])
            for index, finalizer in enumerate(finalizers):
                inner = getattr(finalizer, "_fixture_function", None)
                if inner is not None and _pytest_internal(inner):
                    finalizers[index] = inner

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return
        self.results_dir.mkdir(parents=True, exist_ok=True)
        (self.results_dir / "categories.json").write_text(
            json.dumps(allure2_categories(), indent=2)
        )
        (self.results_dir / "environment.properties").write_text(
            "\n".join(f"{key}={value}" for key, value in self.environment.items()) + "\n"
        )
