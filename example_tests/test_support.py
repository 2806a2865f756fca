"""The airline agent against every event of the snapshot, judged by the pack's rules."""

from __future__ import annotations

import re

import pytest

from pytest_agentsim import EventResult


def test_support(agentsim_conversation: EventResult) -> None:
    # Violated policies fail the test with the report; the body can assert more.
    agentsim_conversation.assert_compliant()


@pytest.mark.agentsim_policy("no-basic-economy-changes")
def test_basic_economy_is_declined_politely(agentsim_conversation: EventResult) -> None:
    conversation = agentsim_conversation.conversation
    assert not conversation.called("update_baggage")
    assert any(
        re.search(r"(?i)cannot be changed", text) for _, text in conversation.assistant_texts()
    )
