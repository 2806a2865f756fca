"""Allure: each judged conversation labelled by risk and policy, with its evidence attached.

Registered only when allure-pytest is active with ``--alluredir`` (otherwise allure's
calls are no-ops anyway, and this module is never imported). Labels follow the risk
taxonomy so the behaviors tree reads risk -> category -> policy:

- epic = the AIR level-1 risk category, feature = the level-2 category, story = policy;
- a failing test carries the policies that failed (each violated policy's story, not
  only the first); a passing test carries the policies its event exercises that share
  the risk category of the event's first policy (one branch, no mixed combinations);
- severity = the most severe of those policies; tags = every policy of the event;
- ``agentsim_outcome`` = why the event failed (its FailureKind) or ``compliant``: Allure 3's
  categories (allurerc.mjs) match it, and Allure 2's the same table's text regexes.

Allure groups a test under every combination of its epic, feature and story labels, so a
test whose *failing* policies lie in different risk categories also appears under the
mixed combinations; one Allure result per (event, policy) verdict would avoid it. Steps replay the conversation turn by turn; attachments hold the
transcript, tool calls, database diff, verdicts and cost. At the end of the run the
controller writes ``categories.json`` and ``environment.properties``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.reporting.failure import render_transcript

if TYPE_CHECKING:
    from pytest_agentsim.core.models import Event
    from pytest_agentsim.core.models import EventResult

SEVERITY = {"low": "minor", "medium": "normal", "high": "critical", "critical": "blocker"}
SEVERITY_ORDER = ["low", "medium", "high", "critical"]

#: The label every judged test carries: its event's FailureKind, or ``compliant``.
OUTCOME_LABEL = "agentsim_outcome"
COMPLIANT = "compliant"


@dataclass(frozen=True)
class OutcomeCategory:
    """One Allure category: the tests of one failure kind, in the statuses it can have.

    Allure 3 matches the ``agentsim_outcome`` label (see :func:`allure3_categories`, the
    ``categories`` of allurerc.mjs); Allure 2 can only match text, so ``allure2_message``
    is a regex over the failure report that finds the same tests (None: any test in
    those statuses, agentsim's or not).
    """

    kind: FailureKind
    name: str
    statuses: tuple[str, ...]
    allure2_message: str | None


#: The categories, in the order both Allure versions try them (the first match wins).
#: The statuses follow the outcome: a violation fails its test, an error breaks it
#: (ConversationError), an inconclusive verdict may also xfail it (skipped in Allure).
OUTCOME_CATEGORIES = (
    OutcomeCategory(
        FailureKind.agent_crash,
        "Agent crash",
        ("broken", "failed"),
        "(?s).*stop reason: (agent_error|user_error).*",
    ),
    OutcomeCategory(
        FailureKind.judge_error,
        "Judge error",
        ("broken", "failed"),
        # A judge raised; no judge covers the policy; a rule check raised (its verdict
        # has no turn, so its line reads "conversation: check ... raised ...").
        r"(?s).*(judge '.*' failed|no judge could judge|\n    conversation: check [^\n]* raised ).*",
    ),
    OutcomeCategory(
        FailureKind.inconclusive,
        "Inconclusive verdict",
        ("broken", "failed", "skipped"),
        "(?s).*INCONCLUSIVE .*",
    ),
    OutcomeCategory(
        FailureKind.violation,
        "Policy violation",
        ("failed",),
        "(?s).*VIOLATED .*",
    ),
    OutcomeCategory(FailureKind.infrastructure, "Infrastructure error", ("broken",), None),
)


def outcome_label(result: EventResult) -> str:
    """The ``agentsim_outcome`` label of a judged test: its event's kind, or compliant."""
    kind = result.kind
    return COMPLIANT if kind is None else kind.value


def allure3_categories() -> list[dict[str, Any]]:
    """The ``categories`` of allurerc.mjs: Allure 3 matches the ``agentsim_outcome`` label.

    Tests no category takes (a test's own failing assertion, a fixture error) fall to
    Allure 3's defaults, "Product errors" and "Test errors".
    """
    return [
        {
            "name": category.name,
            "matchers": {
                "labels": {OUTCOME_LABEL: f"^{category.kind.value}$"},
                "statuses": list(category.statuses),
            },
        }
        for category in OUTCOME_CATEGORIES
    ]


def allure2_categories() -> list[dict[str, Any]]:
    """``categories.json`` for Allure 2, which matches text: the failure report's words."""
    return [
        {"name": category.name, "matchedStatuses": list(category.statuses)}
        | ({"messageRegex": category.allure2_message} if category.allure2_message else {})
        for category in OUTCOME_CATEGORIES
    ]


JUDGED = pytest.StashKey["EventResult"]()


def _allure() -> Any:
    """The allure module, untyped (it ships no type information)."""
    import allure

    return allure


class AllureReporter:
    """Adds agentsim's labels, steps and attachments to allure-pytest's results."""

    def __init__(
        self, results_dir: Path, *, seed: int, models: str, environment: Mapping[str, Any]
    ) -> None:
        self.results_dir = results_dir
        self.seed = seed
        self.models = models
        self.environment = dict(environment)

    @pytest.hookimpl
    def pytest_agentsim_event_judged(
        self, item: pytest.Item, event: Event, result: EventResult, config: pytest.Config
    ) -> None:
        # Called while the conversation fixture sets up: labels stick from here on.
        allure = _allure()
        bad = [
            r
            for r in result.policies
            if r.outcome in (Outcome.violated, Outcome.error, Outcome.inconclusive)
        ]
        listed = [r for r in result.policies if r.listed]
        # A passing test sits under one risk category (its first policy's), so the tree has
        # no mixed branches; a failing one under every failed policy, as QA needs.
        focus = bad or [r for r in listed if r.risk_category == listed[0].risk_category]
        allure.dynamic.epic(*sorted({r.risk_level1 for r in focus}))
        allure.dynamic.feature(*sorted({r.risk_category for r in focus}))
        allure.dynamic.story(*[r.policy_id for r in focus])
        allure.dynamic.tag(*event.policies)
        allure.dynamic.label(OUTCOME_LABEL, outcome_label(result))
        worst = max((r.severity.value for r in focus), key=SEVERITY_ORDER.index, default="medium")
        allure.dynamic.severity(SEVERITY[worst])
        allure.dynamic.parameter("agentsim_case", event.id, mode=allure.parameter_mode.HIDDEN)
        allure.dynamic.parameter("event", event.id)
        allure.dynamic.parameter("seed", self.seed)
        allure.dynamic.parameter("trial", result.trial + 1)
        allure.dynamic.parameter("models", self.models)
        item.stash[JUDGED] = result
        if result.errors or result.conversation.stop_reason.is_error:
            self.evidence(result)  # setup will fail: there is no call phase to attach to

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        result = item.stash.get(JUDGED, None)
        if result is not None:
            self.evidence(result)

    def evidence(self, result: EventResult) -> None:
        """Title, a step per message, and the attachments a reviewer needs."""
        allure = _allure()
        event, conversation = result.event, result.conversation
        allure.dynamic.title(f"{event.id}: {event.scenario or ', '.join(event.policies)}")
        for line in render_transcript(conversation, limit=200):
            with allure.step(line):
                pass
        allure.attach(
            "\n".join(render_transcript(conversation, limit=100_000)),
            name="transcript",
            attachment_type=allure.attachment_type.TEXT,
        )
        allure.attach(
            json.dumps(
                [call.model_dump(mode="json") for call in conversation.tool_calls], indent=2
            ),
            name="tool calls",
            attachment_type=allure.attachment_type.JSON,
        )
        allure.attach(
            conversation.db_diff_text() or "no change",
            name="database diff",
            attachment_type=allure.attachment_type.TEXT,
        )
        allure.attach(
            json.dumps([r.model_dump(mode="json") for r in result.policies], indent=2),
            name="verdicts",
            attachment_type=allure.attachment_type.JSON,
        )
        allure.attach(
            json.dumps(
                {
                    "usd": result.llm.cost_usd,
                    "tokens": result.llm.tokens,
                    "llm_calls": result.llm.calls,
                    "replayed_calls": result.llm.replayed_calls,
                },
            ),
            name="cost",
            attachment_type=allure.attachment_type.JSON,
        )

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
