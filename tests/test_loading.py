"""Pack and events loading: every kind of mistake is one line naming file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_agentsim.events import deep_merge
from pytest_agentsim.events import load_events
from pytest_agentsim.events import starting_db
from pytest_agentsim.models import PolicyPack
from pytest_agentsim.packs import load_pack
from pytest_agentsim.rules import default_registry

ROOT = Path(__file__).resolve().parent.parent

GOOD_POLICY = """\
  - id: refund-window
    description: Refund only within 24 hours.
    category: refunds
    risk_category: Economic Harm
    severity: high
    complexity: 5
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def pack_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, "pack.yaml", text)
    with pytest.raises(pytest.UsageError) as info:
        load_pack(path, registry=default_registry())
    message = str(info.value)
    prefix = f"{path}:"
    # Paths outside the working directory are shown as given.
    return message.replace(prefix, "pack.yaml:")


def pack_with(policy: str) -> str:
    return "domain: shop\npolicies:\n" + policy


def test_misspelt_severity_names_line_policy_and_choices(tmp_path: Path) -> None:
    message = pack_error(
        tmp_path, pack_with(GOOD_POLICY.replace("severity: high", "severity: hgih"))
    )
    assert message == (
        "pack.yaml:7: policy 'refund-window': severity must be one of low, medium, high, "
        "critical, got 'hgih'"
    )


def test_unknown_key_is_an_error_listing_the_allowed_keys(tmp_path: Path) -> None:
    message = pack_error(tmp_path, pack_with(GOOD_POLICY + "    severty: high\n"))
    assert message.startswith(
        "pack.yaml:9: policy 'refund-window': unknown key 'severty' (expected one of: id, "
    )
    assert "severity" in message


def test_missing_field(tmp_path: Path) -> None:
    message = pack_error(tmp_path, pack_with(GOOD_POLICY.replace("    category: refunds\n", "")))
    assert message == "pack.yaml:3: policy 'refund-window': missing required field 'category'"


@pytest.mark.parametrize(("value", "bound"), [("0", ">= 1"), ("11", "<= 10")])
def test_complexity_out_of_range(tmp_path: Path, value: str, bound: str) -> None:
    message = pack_error(
        tmp_path, pack_with(GOOD_POLICY.replace("complexity: 5", f"complexity: {value}"))
    )
    assert (
        message == f"pack.yaml:8: policy 'refund-window': complexity must be {bound}, got {value}"
    )


def test_complexity_not_a_number(tmp_path: Path) -> None:
    message = pack_error(
        tmp_path, pack_with(GOOD_POLICY.replace("complexity: 5", "complexity: hard"))
    )
    assert message.startswith(
        "pack.yaml:8: policy 'refund-window': complexity: input should be a valid integer"
    )
    assert message.endswith("got 'hard'")


def test_policy_id_must_be_a_slug(tmp_path: Path) -> None:
    message = pack_error(
        tmp_path, pack_with(GOOD_POLICY.replace("id: refund-window", "id: Refund Window"))
    )
    assert message.startswith("pack.yaml:3: policy 'Refund Window': id must match ")


def test_duplicate_policy_id(tmp_path: Path) -> None:
    message = pack_error(tmp_path, pack_with(GOOD_POLICY + GOOD_POLICY))
    assert (
        message
        == "pack.yaml:9: policy 'refund-window': duplicate policy id (first defined on line 3)"
    )


def test_unknown_risk_category_lists_valid_names(tmp_path: Path) -> None:
    message = pack_error(
        tmp_path,
        pack_with(GOOD_POLICY.replace("risk_category: Economic Harm", "risk_category: Money")),
    )
    assert message.startswith(
        "pack.yaml:6: policy 'refund-window': risk_category must be one of Security Risks, "
    )
    assert "Economic Harm" in message and "Privacy" in message
    assert message.endswith("got 'Money' (add it under risk_taxonomy to extend the taxonomy)")


def test_pack_may_extend_the_taxonomy(tmp_path: Path) -> None:
    text = "risk_taxonomy:\n  Business Risks: [Money]\n" + pack_with(
        GOOD_POLICY.replace("risk_category: Economic Harm", "risk_category: Money")
    )
    pack = load_pack(write(tmp_path, "pack.yaml", text), registry=default_registry())
    assert pack.policy("refund-window").risk_category == "Money"


def test_unknown_check_type_lists_the_types(tmp_path: Path) -> None:
    policy = GOOD_POLICY + "    checks:\n      - {type: must_cal, tool: refund}\n"
    message = pack_error(tmp_path, pack_with(policy))
    assert message == (
        "pack.yaml:10: policy 'refund-window': checks[0]: unknown check type 'must_cal' "
        "(expected one of: call_order, confirmation_before, db_contains, db_not_contains, "
        "must_call, must_not_call, text_matches, text_not_matches)"
    )


def test_check_with_missing_field(tmp_path: Path) -> None:
    policy = GOOD_POLICY + "    checks:\n      - {type: must_call}\n"
    message = pack_error(tmp_path, pack_with(policy))
    assert (
        message == "pack.yaml:10: policy 'refund-window': missing required field 'checks[0].tool'"
    )


def test_check_with_invalid_regex(tmp_path: Path) -> None:
    policy = (
        GOOD_POLICY + "    checks:\n      - type: text_not_matches\n        pattern: 'FARE-('\n"
    )
    message = pack_error(tmp_path, pack_with(policy))
    assert message.startswith(
        "pack.yaml:11: policy 'refund-window': checks[0].pattern: value error, invalid regular expression"
    )


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    message = pack_error(tmp_path, "domain: shop\npolicies:\n  - id: a\n   description: b\n")
    assert message.startswith("pack.yaml:4: invalid YAML in policy pack:")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    message = pack_error(tmp_path, pack_with(GOOD_POLICY + "    severity: low\n"))
    assert message == "pack.yaml:9: invalid YAML in policy pack: duplicate key 'severity'"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError, match=r"nope\.yaml: policy pack not found$"):
        load_pack(tmp_path / "nope.yaml", registry=default_registry())


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    message = pack_error(tmp_path, "- just\n- a list\n")
    assert (
        message
        == "pack.yaml: the policy pack must be a mapping with 'domain' and 'policies', got list"
    )


def test_missing_seed_database(tmp_path: Path) -> None:
    message = pack_error(tmp_path, "database: db.json\n" + pack_with(GOOD_POLICY))
    assert message == f"{tmp_path / 'db.json'}: seed database of {tmp_path / 'pack.yaml'} not found"


def test_empty_policies(tmp_path: Path) -> None:
    message = pack_error(tmp_path, "domain: shop\npolicies: []\n")
    assert message == "pack.yaml:2: policies must not be empty"


def test_the_example_pack_and_events_load() -> None:
    registry = default_registry()
    pack = load_pack(ROOT / "policies" / "airline.yaml", registry=registry)
    again = load_pack(ROOT / "policies" / "airline.yaml", registry=registry)
    assert len(pack.policies) == 7
    assert pack.policy("refund-window").line == 20
    assert pack.seed_db["reservations"]["ZFA04Y"]["price"] == 320
    assert len(pack.content_hash) == 64 and pack.content_hash == again.content_hash
    events = load_events(
        ROOT / "fixtures/events/airline.yaml", packs={"airline": pack}, registry=registry
    )
    assert [event.id for event in events.events][:2] == ["ev-0001", "ev-0002"]
    assert all(event.domain == "airline" for event in events.events)
    assert set().union(*(event.policies for event in events.events)) == set(pack.policy_ids)


def test_content_hash_follows_the_seed_database(tmp_path: Path) -> None:
    db = write(tmp_path, "db.json", '{"a": 1}')
    path = write(tmp_path, "pack.yaml", "database: db.json\n" + pack_with(GOOD_POLICY))
    before = load_pack(path, registry=default_registry()).content_hash
    db.write_text('{"a": 2}')
    assert load_pack(path, registry=default_registry()).content_hash != before


# --------------------------------------------------------------------------- events

EVENTS = """\
version: 1
domain: shop
events:
  - id: ev-1
    policies: [refund-window]
    user:
      script: ["hi"]
"""


def events_error(tmp_path: Path, text: str) -> str:
    pack = load_pack(
        write(tmp_path, "pack.yaml", pack_with(GOOD_POLICY)), registry=default_registry()
    )
    path = write(tmp_path, "events.yaml", text)
    with pytest.raises(pytest.UsageError) as info:
        load_events(path, packs={"shop": pack}, registry=default_registry())
    return str(info.value).replace(f"{path}:", "events.yaml:")


def test_events_for_an_unknown_domain(tmp_path: Path) -> None:
    message = events_error(tmp_path, EVENTS.replace("domain: shop", "domain: shoe"))
    assert message == "events.yaml:2: domain 'shoe' has no policy pack (loaded packs: shop)"


def test_event_naming_an_unknown_policy(tmp_path: Path) -> None:
    message = events_error(tmp_path, EVENTS.replace("[refund-window]", "[refund-window, refnd]"))
    assert (
        message
        == "events.yaml:5: event 'ev-1': unknown policy 'refnd' (pack 'shop' has: refund-window)"
    )


def test_expectation_for_a_policy_the_event_does_not_list(tmp_path: Path) -> None:
    text = EVENTS.replace(
        "  - id: ev-1\n    policies: [refund-window]\n",
        "  - id: ev-1\n    policies: [refund-window]\n    expected:\n"
        "      - {policy: other, check: {type: must_call, tool: x}}\n",
    )
    message = events_error(tmp_path, text)
    assert message == (
        "events.yaml:7: event 'ev-1': expected[0] is attributed to 'other', which is not one "
        "of the event's policies (refund-window)"
    )


def test_expectation_with_a_broken_check(tmp_path: Path) -> None:
    text = EVENTS.replace(
        "    policies: [refund-window]\n",
        "    policies: [refund-window]\n    expected:\n"
        "      - {policy: refund-window, check: {type: db_contains}}\n",
    )
    message = events_error(tmp_path, text)
    assert message == "events.yaml:7: event 'ev-1': missing required field 'expected[0].check.path'"


def test_duplicate_event_id(tmp_path: Path) -> None:
    message = events_error(tmp_path, EVENTS + EVENTS.split("events:\n")[1])
    assert message == "events.yaml:8: event 'ev-1': duplicate event id (first defined on line 4)"


def test_unknown_key_in_user_profile(tmp_path: Path) -> None:
    message = events_error(
        tmp_path, EVENTS.replace('script: ["hi"]', 'script: ["hi"]\n      mood: angry')
    )
    assert message.startswith(
        "events.yaml:8: event 'ev-1': unknown key 'user.mood' (expected one of: persona, goal, "
    )


def test_agenda_act_must_be_known(tmp_path: Path) -> None:
    text = EVENTS.replace('script: ["hi"]', "agenda:\n        - {act: shout, text: hey}")
    message = events_error(tmp_path, text)
    assert message == (
        "events.yaml:8: event 'ev-1': user.agenda[0].act must be one of say, inform, request, "
        "confirm, deny, bye, got 'shout'"
    )


def test_starting_db_merges_event_overrides_over_the_seed() -> None:
    seed = {"users": {"u1": {"name": "A", "zip": "1"}}, "flags": [1, 2]}
    merged = deep_merge(seed, {"users": {"u1": {"zip": "2"}, "u2": {"name": "B"}}, "flags": [3]})
    assert merged == {"users": {"u1": {"name": "A", "zip": "2"}, "u2": {"name": "B"}}, "flags": [3]}
    assert seed["users"]["u1"]["zip"] == "1"  # the seed is untouched


def test_starting_db_uses_the_packs_seed(tmp_path: Path) -> None:
    write(tmp_path, "db.json", '{"stock": {"apples": 3}}')
    pack = load_pack(
        write(tmp_path, "pack.yaml", "database: db.json\n" + pack_with(GOOD_POLICY)),
        registry=default_registry(),
    )
    events = load_events(
        write(
            tmp_path,
            "events.yaml",
            EVENTS.replace('script: ["hi"]', 'script: ["hi"]\n    db: {stock: {pears: 1}}'),
        ),
        packs={"shop": pack},
        registry=default_registry(),
    )
    assert isinstance(pack, PolicyPack)
    assert starting_db(pack, events.events[0]) == {"stock": {"apples": 3, "pears": 1}}
