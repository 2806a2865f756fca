"""The errors of pytest-agentsim: a configuration mistake, an event that could not be
judged, a test failed by policy violations."""

from __future__ import annotations

import pytest

# A user file or option is wrong; the message names where and what was expected.
# It is pytest's UsageError (a final class, so not subclassed): pytest prints it as one
# ``ERROR:`` line and exits with code 4 instead of a traceback.
ConfigError = pytest.UsageError


class ConversationError(Exception):
    """An event could not be judged to the end (agent or user crashed, a judge failed).

    Not an AssertionError: pytest reports it as an error and Allure as broken, never as a
    plain failure and never as a pass.
    """


class UnknownRuleType(ValueError):
    pass
