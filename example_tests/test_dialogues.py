"""Scripted dialogues: unit tests of one conversation, driven turn by turn."""

from __future__ import annotations

from pytest_agentsim import Outcome
from pytest_agentsim import UserDriver


def test_wrong_zip_code_is_not_verified(simulated_user: UserDriver) -> None:
    result = simulated_user.run(
        ["I need to cancel a reservation.", "My user id is mia_li_3668 and my zip code is 00000."]
    )
    assert [call.name for call in result.conversation.tool_calls] == ["verify_identity"]
    assert (
        result.conversation.tool_calls[0].error == "PermissionError: identity could not be verified"
    )
    assert not result.conversation.called("cancel_reservation")


def test_cancellation_asks_before_acting(simulated_user: UserDriver) -> None:
    result = simulated_user.run(
        [
            "Please cancel reservation ZFA04Y.",
            "User id mia_li_3668, zip code 94110.",
            "Yes, go ahead.",
        ],
        policies=["confirm-before-write", "verify-identity"],
    )
    assert result.conversation.final_db["reservations"]["ZFA04Y"]["status"] == "cancelled"
    assert result.outcome("confirm-before-write") is Outcome.compliant
    result.assert_compliant()
