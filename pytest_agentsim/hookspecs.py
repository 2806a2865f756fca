"""Hook specifications: how plugins and conftests extend pytest-agentsim.

The built-in rule types and the rule judge are registered through these same hooks.
Implement them in a plugin or in a conftest that pytest loads before the session starts
(the rootdir's or the one beside the test paths given on the command line): packs are
validated, and the judges built, once at configuration time. Call hooks with keyword
arguments only.

Every type these hooks pass or expect (:class:`~pytest_agentsim.RuleRegistry`,
:class:`~pytest_agentsim.RuleCheck`, :class:`~pytest_agentsim.Judge`,
:class:`~pytest_agentsim.Verdict`, :class:`~pytest_agentsim.EventResult`...) is imported
from ``pytest_agentsim``, whichever layer defines it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import pytest

if TYPE_CHECKING:
    from pytest_agentsim.core.checks import RuleRegistry
    from pytest_agentsim.core.models import Event
    from pytest_agentsim.core.models import EventResult
    from pytest_agentsim.judging.judges import Judge


@pytest.hookspec
def pytest_agentsim_add_rule_types(registry: RuleRegistry) -> None:
    """Register rule check types that packs and events may use.

    :param registry: call ``registry.add(MyCheck)`` with a subclass of
        :class:`pytest_agentsim.RuleCheck` whose ``type`` field is a ``Literal``
        with a default (the name packs write) and whose ``check(conversation)`` returns a
        :class:`pytest_agentsim.CheckResult`.

    Use in conftest plugins: only in the rootdir's conftest or one next to the given
    test paths, since packs are validated before deeper conftests are collected.
    """


@pytest.hookspec
def pytest_agentsim_make_judges(registry: RuleRegistry) -> list[Judge] | None:
    """Return judges to run on every finished conversation (results are concatenated).

    A judge (:class:`pytest_agentsim.Judge`) has a ``name`` and a
    ``judge(event, conversation, pack)`` method that returns a sequence of
    :class:`pytest_agentsim.Verdict` or an awaitable of one (``async def judge`` works). A
    judge that raises turns the event's policies into ``error`` outcomes, never passes.

    :param registry: the rule types, for judges that run rule checks.
    """


@pytest.hookspec
def pytest_agentsim_event_judged(
    item: pytest.Item, event: Event, result: EventResult, config: pytest.Config
) -> Any:
    """Called when a test receives the judged result of its event (e.g. for reporters).

    :param result: the :class:`pytest_agentsim.EventResult`: the conversation (with the
        :data:`pytest_agentsim.Agent`'s messages and tool calls) and the outcome per policy.
    """
