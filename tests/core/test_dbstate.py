"""The changed parts of two databases give deepdiff's report of the whole databases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pytest_agentsim.core.dbstate import cow
from pytest_agentsim.core.dbstate import merged
from pytest_agentsim.core.dbstate import plain
from pytest_agentsim.core.dbstate import pretty_report
from pytest_agentsim.core.dbstate import state_report
from pytest_agentsim.core.dbstate import touched


def whole_report(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], str]:
    import json

    from deepdiff import DeepDiff

    diff = DeepDiff(
        before, after, threshold_to_diff_deeper=0, ignore_numeric_type_changes=True, verbose_level=2
    )
    return json.loads(diff.to_json()), diff.pretty()


SEED: dict[str, Any] = {
    "meta": {"now": "2026-11-24"},
    "users": {f"u{n}": {"name": f"User {n}", "bags": 0, "tags": ["a"]} for n in range(50)},
    "orders": {"o1": {"total": 10, "paid": True}, "o2": {"total": 5, "paid": False}},
    "refunds": [],
}


def change_values(db: dict[str, Any]) -> None:
    db["users"]["u7"]["bags"] = 2
    db["users"]["u3"]["name"] = "Renamed"


def add_and_remove(db: dict[str, Any]) -> None:
    db["users"]["u99"] = {"name": "New"}
    del db["users"]["u1"]
    db["orders"].pop("o2")
    db["audit"] = {"x": 1}
    del db["meta"]


def lists_and_types(db: dict[str, Any]) -> None:
    db["refunds"].append({"order": "o1", "amount": 10})
    db["users"]["u5"]["tags"].insert(0, "b")
    db["orders"]["o1"]["total"] = 10.0  # a numeric type change only: no change
    db["orders"]["o1"]["paid"] = 1  # True -> 1 is a change
    db["orders"]["o2"] = ["not", "a", "dict"]


def bulk_writes(db: dict[str, Any]) -> None:
    db["users"].update({"u2": {"name": "Two"}}, u4={"name": "Four"})
    db["orders"] |= {"o9": {"total": 9}}
    db["meta"].clear()
    db.setdefault("audit", {})["seen"] = True
    db["users"].popitem()


def read_only(db: dict[str, Any]) -> None:
    _ = [user["name"] for user in db["users"].values()]
    _ = db["orders"]["o1"]["total"]


@pytest.mark.parametrize(
    "edit", [change_values, add_and_remove, lists_and_types, bulk_writes, read_only]
)
def test_changed_parts_report_what_the_whole_databases_do(edit: Any) -> None:
    start = merged(SEED, {"orders": {"o3": {"total": 1}}})
    view = cow(start)
    edit(view)
    reference = copy.deepcopy(start)
    edit(reference)
    assert plain(view) == reference
    expected = whole_report(copy.deepcopy(start), reference)
    parts = touched(start, view)
    assert (state_report(*parts), pretty_report(*parts)) == expected
    # The seed and the event's starting database are as they were.
    assert SEED["users"]["u7"]["bags"] == 0 and "u99" not in SEED["users"]
    assert start == merged(SEED, {"orders": {"o3": {"total": 1}}})


def test_unchanged_parts_are_shared_not_copied() -> None:
    start = merged(SEED, {"orders": {"o1": {"total": 3}}})
    assert start["users"] is SEED["users"]
    assert start["orders"]["o2"] is SEED["orders"]["o2"]
    assert SEED["orders"]["o1"]["total"] == 10
    view = cow(start)
    view["users"]["u1"]["bags"] = 1
    final = plain(view)
    assert final["users"]["u2"] is SEED["users"]["u2"]
    assert final["orders"] is start["orders"]
    assert touched(start, final) == ({"users": {"u1": {"bags": 0}}}, {"users": {"u1": {"bags": 1}}})
