"""The catalog of packs and events answers a test's questions without pytest running."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_agentsim import ConfigError
from pytest_agentsim import default_registry
from pytest_agentsim.catalog import Catalog
from pytest_agentsim.catalog import load_event_files
from pytest_agentsim.catalog import load_packs

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policies" / "airline.yaml"
EVENTS = ROOT / "fixtures" / "events" / "airline.yaml"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    registry = default_registry()
    packs = load_packs([PACK], registry)
    return Catalog(packs, load_event_files([EVENTS], packs, registry))


def test_marks_narrow_events_by_policy_and_by_either_risk_level(catalog: Catalog) -> None:
    refunds = catalog.with_policies(catalog.events, {"refund-window"})
    assert refunds and all("refund-window" in event.policies for event in refunds)
    by_level2 = catalog.with_risks(catalog.events, {"Economic Harm"})
    by_level1 = catalog.with_risks(catalog.events, {"Societal Risks"})
    assert {e.id for e in refunds} <= {e.id for e in by_level2} <= {e.id for e in by_level1}
    assert "Privacy" in catalog.risk_names
    assert "Legal & Rights-Related Risks" in catalog.risk_names


def test_a_check_naming_a_missing_tool_is_reported_with_its_pack_line(catalog: Catalog) -> None:
    pack = catalog.packs["airline"]
    event = catalog.events[0]
    every_tool = frozenset(
        {
            "verify_identity",
            "get_reservation",
            "cancel_reservation",
            "update_baggage",
            "transfer_to_human",
            "get_user_details",
        }
    )
    assert catalog.unknown_tool(pack, event, every_tool) is None
    problem = catalog.unknown_tool(pack, event, every_tool - {"verify_identity"})
    assert problem is not None
    assert "policies/airline.yaml:" in problem
    assert "names tool 'verify_identity', which agentsim_tools does not provide" in problem


def test_a_gate_naming_an_unknown_policy_is_a_usage_error(catalog: Catalog) -> None:
    catalog.check_gate_names(["Privacy"], ["refund-window"])
    with pytest.raises(ConfigError, match=r"agentsim_max_violation_rate_per_policy: unknown"):
        catalog.check_gate_names([], ["refund-windw"])


def test_an_event_id_twice_in_a_domain_names_both_files(tmp_path: Path) -> None:
    copy = tmp_path / "again.yaml"
    copy.write_text(EVENTS.read_text().replace("../../policies", str(ROOT / "policies")))
    registry = default_registry()
    packs = load_packs([PACK], registry)
    with pytest.raises(ConfigError, match=r"again\.yaml:\d+: event 'ev-0001' is also in"):
        load_event_files([EVENTS, copy], packs, registry)


def test_a_missing_events_file_says_how_to_write_it(tmp_path: Path) -> None:
    registry = default_registry()
    packs = load_packs([PACK], registry)
    with pytest.raises(ConfigError, match=r"events file not found; write it with"):
        load_event_files([tmp_path / "none.yaml"], packs, registry)
