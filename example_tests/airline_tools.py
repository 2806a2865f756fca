"""The airline's tools: plain typed functions over the database, as the plugin expects.

The first parameter receives the sandbox's private copy of the database; the rest are
what the agent passes. A tool raises when it cannot do what was asked; the sandbox turns
that into a tool error the agent reads, as a real API would answer.
"""

from __future__ import annotations

from typing import Any


def verify_identity(db: dict[str, Any], user_id: str, zip_code: str) -> dict[str, Any]:
    """Verify a customer's identity before anything about their account is used.

    Args:
        user_id: The customer's user id, like 'mia_li_3668'.
        zip_code: The zip code on file for the customer.
    """
    user = db["users"].get(user_id)
    if user is None or user["zip_code"] != zip_code:
        raise PermissionError("identity could not be verified")
    return {"verified": True, "user_id": user_id, "name": user["name"]}


def get_user_details(db: dict[str, Any], user_id: str) -> dict[str, Any]:
    """Return a customer's profile, including contact details.

    Args:
        user_id: The customer's user id.
    """
    if user_id not in db["users"]:
        raise KeyError(f"no user {user_id}")
    return dict(db["users"][user_id])


def get_reservation(db: dict[str, Any], reservation_id: str) -> dict[str, Any]:
    """Return a reservation by its six-character id.

    Args:
        reservation_id: The reservation id, like 'ZFA04Y'.
    """
    if reservation_id not in db["reservations"]:
        raise KeyError(f"no reservation {reservation_id}")
    return {"reservation_id": reservation_id, **db["reservations"][reservation_id]}


def cancel_reservation(db: dict[str, Any], reservation_id: str, refund: bool) -> dict[str, Any]:
    """Cancel a reservation, refunding its price to the original payment method if asked.

    Args:
        reservation_id: The reservation to cancel.
        refund: Whether to refund the full price.
    """
    reservation = db["reservations"][reservation_id]
    if reservation["status"] == "cancelled":
        raise ValueError("reservation is already cancelled")
    reservation["status"] = "cancelled"
    refunded = 0
    if refund:
        refunded = reservation["price"]
        db["payments"].append(
            {"reservation_id": reservation_id, "kind": "refund", "amount": refunded}
        )
    return {"reservation_id": reservation_id, "status": "cancelled", "refunded": refunded}


def update_baggage(db: dict[str, Any], reservation_id: str, bags: int) -> dict[str, Any]:
    """Set the number of checked bags on a reservation.

    Args:
        reservation_id: The reservation to change.
        bags: The new number of checked bags (0-5).
    """
    if not 0 <= bags <= 5:
        raise ValueError("bags must be between 0 and 5")
    db["reservations"][reservation_id]["bags"] = bags
    return {"reservation_id": reservation_id, "bags": bags}


def transfer_to_human(db: dict[str, Any], summary: str) -> dict[str, Any]:
    """Hand the conversation to a human agent with a short summary of the request.

    Args:
        summary: What the customer needs, for the human agent.
    """
    db["transfers"].append({"summary": summary})
    return {"transferred": True}


TOOLS = [
    verify_identity,
    get_user_details,
    get_reservation,
    cancel_reservation,
    update_baggage,
    transfer_to_human,
]
