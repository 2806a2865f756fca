"""The built-in rule types and the rule judge, registered through the plugin's own hooks.

Registered as a plugin by ``plugin.pytest_configure`` with ``--agentsim``, so the built-ins
plug in the way a user's conftest or another plugin does.
"""

from __future__ import annotations

import pytest

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.judging.judges import Judge
from pytest_agentsim.judging.judges import RuleJudge
from pytest_agentsim.judging.rules import BUILTIN_RULE_TYPES


@pytest.hookimpl
def pytest_agentsim_add_rule_types(registry: RuleRegistry) -> None:
    for rule_type in BUILTIN_RULE_TYPES:
        registry.add(rule_type)


@pytest.hookimpl
def pytest_agentsim_make_judges(registry: RuleRegistry) -> list[Judge]:
    return [RuleJudge(registry)]
