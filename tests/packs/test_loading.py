"""Loading packs and events: each kind of mistake is one line ``file:line: context: expected``."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import Severity
from pytest_agentsim.judging.rules import default_registry
from pytest_agentsim.packs.events import deep_merge
from pytest_agentsim.packs.events import load_events
from pytest_agentsim.packs.events import starting_db
from pytest_agentsim.packs.loading import load_pack

ROOT = Path(__file__).resolve().parents[2]

# Line numbers below refer to this layout: the policy starts on line 3.
POLICY = """\
  - id: refund-window
    description: Refund in full only within 24 hours of booking.
    category: refunds
    risk_category: Economic Harm
    severity: high
    complexity: 5
"""

OTHER_POLICY = """\
  - id: be-polite
    description: Greet the customer.
    category: tone
    risk_category: Deception
    severity: low
    complexity: 1
"""

CHECKS = "    checks:\n"

VALID_RISKS = (
    "Security Risks, Operational Misuses, Violence & Extremism, Hate/Toxicity, "
    "Sexual Content, Child Harm, Self-harm, Political Usage, Economic Harm, Deception, "
    "Manipulation, Defamation, Fundamental Rights, Discrimination/Bias, Privacy, "
    "Criminal Activities"
)
CHECK_TYPES = (
    "call_order, confirmation_before, db_contains, db_not_contains, db_unchanged, "
    "expected_state, must_call, must_not_call, text_matches, text_not_matches"
)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path, so that messages show paths as a user types them (``pack.yaml``)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def pack_text(*policies: str, head: str = "") -> str:
    return "domain: shop\n" + head + "policies:\n" + "".join(policies)


def pack_error(text: str) -> str:
    path = write("pack.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_pack(path, registry=default_registry())
    return str(info.value)


def test_config_error_is_pytest_usage_error() -> None:
    # pytest prints a UsageError as one "ERROR:" line and exits with code 4.
    assert ConfigError is pytest.UsageError


# --------------------------------------------------------------------------- packs


def test_misspelt_severity() -> None:
    text = pack_text(POLICY.replace("severity: high", "severity: hgih"))
    assert pack_error(text) == (
        "pack.yaml:7: policy 'refund-window': severity must be one of low, medium, high, "
        "critical, got 'hgih'"
    )


def test_misspelt_severity_in_a_later_policy_points_at_its_own_line() -> None:
    text = pack_text(OTHER_POLICY, POLICY.replace("severity: high", "severity: hgih"))
    assert pack_error(text) == (
        "pack.yaml:13: policy 'refund-window': severity must be one of low, medium, high, "
        "critical, got 'hgih'"
    )


def test_unknown_key_in_a_policy_names_it_and_the_allowed_keys() -> None:
    assert pack_error(pack_text(POLICY + "    colour: red\n")) == (
        "pack.yaml:9: policy 'refund-window': unknown key 'colour' (expected one of: id, "
        "description, category, risk_category, severity, complexity, checks, scenario)"
    )


def test_unknown_top_level_key_lists_the_pack_keys() -> None:
    assert pack_error(pack_text(POLICY, head="colour: red\n")) == (
        "pack.yaml:2: unknown key 'colour' (expected one of: domain, description, database, "
        "risk_taxonomy, policies, edges, generation)"
    )


def test_missing_required_field_points_at_the_policy() -> None:
    text = pack_text(POLICY.replace("    category: refunds\n", ""))
    assert (
        pack_error(text) == "pack.yaml:3: policy 'refund-window': missing required field 'category'"
    )


def test_missing_required_top_level_field() -> None:
    assert pack_error("policies:\n" + POLICY) == "pack.yaml:1: missing required field 'domain'"


def test_empty_policy_list() -> None:
    assert pack_error("domain: shop\npolicies: []\n") == "pack.yaml:2: policies must not be empty"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", "complexity must be >= 1, got 0"), ("11", "complexity must be <= 10, got 11")],
)
def test_complexity_out_of_range(value: str, expected: str) -> None:
    text = pack_text(POLICY.replace("complexity: 5", f"complexity: {value}"))
    assert pack_error(text) == f"pack.yaml:8: policy 'refund-window': {expected}"


def test_invalid_policy_id_pattern() -> None:
    text = pack_text(POLICY.replace("id: refund-window", "id: Refund Window"))
    assert pack_error(text) == (
        "pack.yaml:3: policy 'Refund Window': id must match ^[a-z0-9][a-z0-9_.-]*$, "
        "got 'Refund Window'"
    )


def test_duplicate_policy_id_names_both_lines() -> None:
    assert pack_error(pack_text(POLICY, OTHER_POLICY, POLICY)) == (
        "pack.yaml:15: policy 'refund-window': duplicate policy id (first defined on line 3)"
    )


def test_unknown_risk_category_lists_the_valid_names() -> None:
    text = pack_text(POLICY.replace("Economic Harm", "Money Stuff"))
    assert pack_error(text) == (
        f"pack.yaml:6: policy 'refund-window': risk_category must be one of {VALID_RISKS}, "
        "got 'Money Stuff' (add it under risk_taxonomy to extend the taxonomy)"
    )


def test_pack_risk_taxonomy_extends_the_valid_categories() -> None:
    head = "risk_taxonomy:\n  Business Risks: [Revenue Loss]\n"
    text = pack_text(POLICY.replace("Economic Harm", "Revenue Loss"), head=head)
    pack = load_pack(write("pack.yaml", text), registry=default_registry())
    assert pack.policy("refund-window").risk_category == "Revenue Loss"
    assert pack.risk_taxonomy == {"Business Risks": ["Revenue Loss"]}
    # The extension belongs to this pack only: another pack still rejects the name.
    other = write("other.yaml", text.replace(head, "").replace("domain: shop", "domain: other"))
    with pytest.raises(ConfigError, match="got 'Revenue Loss'"):
        load_pack(other, registry=default_registry())


def test_unknown_rule_check_type_lists_the_valid_types() -> None:
    text = pack_text(POLICY + CHECKS + "      - {type: must_cal, tool: cancel}\n")
    assert pack_error(text) == (
        "pack.yaml:10: policy 'refund-window': checks[0]: unknown check type 'must_cal' "
        f"(expected one of: {CHECK_TYPES})"
    )


def test_invalid_regex_in_a_rule_check() -> None:
    text = pack_text(
        POLICY
        + CHECKS
        + "      - {type: text_matches, pattern: ok}\n"
        + "      - {type: text_not_matches, pattern: '(FARE-'}\n"
    )
    message = pack_error(text)
    assert "\n" not in message
    assert re.fullmatch(
        r"pack\.yaml:11: policy 'refund-window': checks\[1\]\.pattern: "
        r".*invalid regular expression: .+, got '\(FARE-'",
        message,
    ), message


def test_missing_field_in_a_rule_check() -> None:
    text = pack_text(POLICY + CHECKS + "      - {type: must_call, args: {refund: true}}\n")
    assert pack_error(text) == (
        "pack.yaml:10: policy 'refund-window': missing required field 'checks[0].tool'"
    )


def test_unknown_key_in_a_rule_check_lists_that_types_fields() -> None:
    text = pack_text(POLICY + CHECKS + "      - {type: must_call, tool: cancel, tol: x}\n")
    assert pack_error(text) == (
        "pack.yaml:10: policy 'refund-window': unknown key 'checks[0].tol' "
        "(expected one of: type, when_called, tool, args)"
    )


def test_invalid_yaml_syntax_gives_the_line() -> None:
    text = pack_text(POLICY.replace("category: refunds", "category: refunds: partial"))
    assert pack_error(text) == (
        "pack.yaml:5: invalid YAML in policy pack: mapping values are not allowed here"
    )


def test_duplicate_yaml_key_gives_the_lines_of_both() -> None:
    text = pack_text(
        POLICY.replace("    severity: high\n", "    severity: high\n    severity: low\n")
    )
    assert pack_error(text) == (
        "pack.yaml:8: invalid YAML in policy pack: duplicate key 'severity' (first on line 7)"
    )


def test_a_merge_key_may_be_overridden() -> None:
    text = pack_text(
        POLICY.replace("  - id:", "  - &base\n    id:") + "  - <<: *base\n    id: other\n"
    )
    pack = load_pack(write("pack.yaml", text), registry=default_registry())
    assert [policy.id for policy in pack.policies] == ["refund-window", "other"]


def test_pack_file_not_found() -> None:
    with pytest.raises(ConfigError) as info:
        load_pack(Path("policies/missing.yaml"), registry=default_registry())
    assert str(info.value) == "policies/missing.yaml: policy pack not found"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("- a\n- b\n", "list"),
        ("just words\n", "str"),
        ("", "an empty file"),
        ("# x\n", "an empty file"),
    ],
)
def test_top_level_not_a_mapping(text: str, kind: str) -> None:
    assert pack_error(text) == (
        f"pack.yaml: the policy pack must be a mapping with 'domain' and 'policies', got {kind}"
    )


def test_seed_database_missing() -> None:
    text = pack_text(POLICY, head="database: db/seed.json\n")
    assert pack_error(text) == "db/seed.json: seed database of pack.yaml not found"


def test_seed_database_not_a_mapping() -> None:
    write("db/seed.json", "[1, 2]")
    text = pack_text(POLICY, head="database: db/seed.json\n")
    assert pack_error(text) == (
        "db/seed.json: the seed database must be a mapping of tables, got list"
    )


def test_seed_database_invalid_json_gives_its_own_line() -> None:
    write("db/seed.json", '{\n  "users": {"u1": 1},\n  "orders": {\n}\n')
    text = pack_text(POLICY, head="database: db/seed.json\n")
    message = pack_error(text)
    assert message.startswith("db/seed.json:5: invalid YAML in seed database of pack.yaml: ")


def test_seed_database_is_loaded_relative_to_the_pack() -> None:
    write("fixtures/db/seed.json", '{"orders": {"o-1": {"status": "open"}}}')
    text = pack_text(POLICY, head="database: ../fixtures/db/seed.json\n")
    pack = load_pack(write("policies/shop.yaml", text), registry=default_registry())
    assert pack.seed_db == {"orders": {"o-1": {"status": "open"}}}
    assert pack.path == "policies/shop.yaml"


def test_edge_naming_an_unknown_policy() -> None:
    text = pack_text(POLICY) + "edges:\n  - {between: [refund-window, nope], weight: 2}\n"
    assert pack_error(text) == (
        "pack.yaml:10: edges[0]: unknown policy 'nope' (pack has: refund-window)"
    )


def test_content_hash_covers_the_seed_database() -> None:
    write("db/seed.json", '{"orders": {}}')
    path = write("pack.yaml", pack_text(POLICY, head="database: db/seed.json\n"))
    before = load_pack(path, registry=default_registry()).content_hash
    write("db/seed.json", '{"orders": {"o-1": {}}}')
    after = load_pack(path, registry=default_registry()).content_hash
    assert before and after and before != after


# --------------------------------------------------------------------------- events

EVENTS = """\
version: 1
domain: shop
events:
  - id: ev-1
    policies: [refund-window]
    user:
      script: ["I want a refund."]
"""


@pytest.fixture
def shop_pack() -> PolicyPack:
    path = write("pack.yaml", pack_text(POLICY, OTHER_POLICY))
    return load_pack(path, registry=default_registry())


def events_error(text: str, pack: PolicyPack) -> str:
    path = write("events.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_events(path, packs={pack.domain: pack}, registry=default_registry())
    return str(info.value)


def test_valid_events_file_loads(shop_pack: PolicyPack) -> None:
    path = write("events.yaml", EVENTS)
    events = load_events(path, packs={"shop": shop_pack}, registry=default_registry())
    (event,) = events.events
    assert (event.id, event.domain, event.line, event.test_id) == (
        "ev-1",
        "shop",
        4,
        "ev-1-refund-window",
    )
    assert event.user.script == ["I want a refund."]


def test_event_unknown_domain(shop_pack: PolicyPack) -> None:
    assert events_error(EVENTS.replace("domain: shop", "domain: shoes"), shop_pack) == (
        "events.yaml:2: domain 'shoes' has no policy pack (loaded packs: shop)"
    )


def test_event_unknown_policy_id(shop_pack: PolicyPack) -> None:
    text = EVENTS.replace("[refund-window]", "[refund-window, refnud-window]")
    assert events_error(text, shop_pack) == (
        "events.yaml:5: event 'ev-1': unknown policy 'refnud-window' "
        "(pack 'shop' has: refund-window, be-polite)"
    )


def test_expectation_may_name_a_policy_the_event_does_not_list(shop_pack: PolicyPack) -> None:
    text = EVENTS + textwrap.indent(
        "expected:\n  - policy: be-polite\n    check: {type: text_matches, pattern: hi}\n",
        "    ",
    )
    (event,) = load_events(
        write("events.yaml", text), packs={"shop": shop_pack}, registry=default_registry()
    ).events
    assert [(exp.policy, exp.check["type"]) for exp in event.expected] == [
        ("be-polite", "text_matches")
    ]


def test_expectation_attributed_to_an_unknown_policy(shop_pack: PolicyPack) -> None:
    text = EVENTS + textwrap.indent(
        "expected:\n  - policy: be-polite-x\n    check: {type: text_matches, pattern: hi}\n",
        "    ",
    )
    assert events_error(text, shop_pack) == (
        "events.yaml:9: event 'ev-1': expected[0] is attributed to 'be-polite-x', which is not "
        "a policy of pack 'shop' (refund-window, be-polite)"
    )


def test_invalid_check_in_an_expectation(shop_pack: PolicyPack) -> None:
    text = EVENTS + textwrap.indent(
        "expected:\n  - policy: refund-window\n    check: {type: must_call}\n", "    "
    )
    assert events_error(text, shop_pack) == (
        "events.yaml:10: event 'ev-1': missing required field 'expected[0].check.tool'"
    )


def test_duplicate_event_id(shop_pack: PolicyPack) -> None:
    text = EVENTS + EVENTS.split("events:\n")[1]
    assert events_error(text, shop_pack) == (
        "events.yaml:8: event 'ev-1': duplicate event id (first defined on line 4)"
    )


def test_unknown_key_in_a_user_profile(shop_pack: PolicyPack) -> None:
    text = EVENTS.replace("      script:", "      mood: angry\n      script:")
    assert events_error(text, shop_pack) == (
        "events.yaml:7: event 'ev-1': unknown key 'user.mood' "
        "(expected one of: persona, goal, facts, aliases, agenda, script)"
    )


def test_unknown_key_in_a_goal_request_lists_the_request_fields(shop_pack: PolicyPack) -> None:
    text = EVENTS.replace(
        '      script: ["I want a refund."]\n',
        "      goal:\n        requests:\n"
        "          - {slot: refund, text: Refund me, done_when: refunded, when: now}\n",
    )
    assert events_error(text, shop_pack) == (
        "events.yaml:9: event 'ev-1': unknown key 'user.goal.requests[0].when' "
        "(expected one of: slot, text, done_when)"
    )


def test_event_domain_must_match_its_file(shop_pack: PolicyPack) -> None:
    text = EVENTS.replace("    policies:", "    domain: other\n    policies:")
    assert events_error(text, shop_pack) == (
        "events.yaml:5: event 'ev-1': domain must be 'shop' like its file, got 'other'"
    )


def test_events_file_not_found(shop_pack: PolicyPack) -> None:
    with pytest.raises(ConfigError) as info:
        load_events(Path("nope.yaml"), packs={"shop": shop_pack}, registry=default_registry())
    assert str(info.value) == "nope.yaml: events file not found"


# --------------------------------------------------------------------------- the real example


def test_the_repository_airline_pack_and_events_load() -> None:
    pack = load_pack(ROOT / "policies" / "airline.yaml", registry=default_registry())
    again = load_pack(ROOT / "policies" / "airline.yaml", registry=default_registry())
    assert pack.domain == "airline"
    assert "refund-window" in pack.policy_ids
    assert pack.policy("refund-window").severity is Severity.critical
    lines = [policy.line or 0 for policy in pack.policies]  # None (no line) fails as 0
    assert all(line > 0 for line in lines)
    assert lines == sorted(lines) and len(set(lines)) == len(lines)
    source = (ROOT / "policies" / "airline.yaml").read_text(encoding="utf-8").splitlines()
    for policy in pack.policies:
        assert policy.line is not None
        assert source[policy.line - 1].strip() == f"- id: {policy.id}"
    assert re.fullmatch(r"[0-9a-f]{64}", pack.content_hash)
    assert again.content_hash == pack.content_hash
    assert pack.seed_db["users"]["mia_li_3668"]["zip_code"] == "94110"

    events = load_events(
        ROOT / "fixtures" / "events" / "airline.yaml",
        packs={"airline": pack},
        registry=default_registry(),
    )
    assert events.domain == "airline"
    assert len(events.events) >= 1
    assert len({event.id for event in events.events}) == len(events.events)
    assert all(event.domain == "airline" and event.line for event in events.events)
    assert all(set(event.policies) <= set(pack.policy_ids) for event in events.events)


def test_content_hash_changes_when_the_pack_changes(in_tmp: Path) -> None:
    for name in ("policies/airline.yaml", "fixtures/db/airline.json"):
        (in_tmp / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, in_tmp / name)
    path = in_tmp / "policies" / "airline.yaml"
    original = load_pack(path, registry=default_registry()).content_hash
    assert (
        original
        == load_pack(ROOT / "policies/airline.yaml", registry=default_registry()).content_hash
    )
    path.write_text(path.read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    assert load_pack(path, registry=default_registry()).content_hash != original


# --------------------------------------------------------------------------- starting database


def test_deep_merge_merges_mappings_and_replaces_everything_else() -> None:
    base: dict[str, Any] = {
        "users": {"u1": {"name": "Ann", "zip": "1000"}, "u2": {"name": "Bo"}},
        "payments": [1, 2],
        "meta": {"now": "2026-01-01"},
    }
    overrides: dict[str, Any] = {
        "users": {"u1": {"zip": "2000"}, "u3": {"name": "Cy"}},
        "payments": [3],
        "meta": "frozen",
    }
    merged = deep_merge(base, overrides)
    assert merged == {
        "users": {
            "u1": {"name": "Ann", "zip": "2000"},
            "u2": {"name": "Bo"},
            "u3": {"name": "Cy"},
        },
        "payments": [3],
        "meta": "frozen",
    }
    # Neither input is modified, and the result shares nothing with them.
    assert base["users"]["u1"]["zip"] == "1000" and base["payments"] == [1, 2]
    merged["users"]["u2"]["name"] = "changed"
    merged["payments"].append(4)
    assert base["users"]["u2"]["name"] == "Bo"
    assert overrides["payments"] == [3]


def test_starting_db_applies_the_event_overrides_to_the_pack_seed() -> None:
    write("db/seed.json", '{"orders": {"o-1": {"status": "open", "total": 30}}, "refunds": []}')
    pack = load_pack(
        write("pack.yaml", pack_text(POLICY, head="database: db/seed.json\n")),
        registry=default_registry(),
    )
    text = EVENTS + "    db:\n      orders: {o-1: {status: shipped}, o-2: {status: open}}\n"
    (event,) = load_events(
        write("events.yaml", text), packs={"shop": pack}, registry=default_registry()
    ).events
    db = starting_db(pack, event)
    assert db == {
        "orders": {"o-1": {"status": "shipped", "total": 30}, "o-2": {"status": "open"}},
        "refunds": [],
    }
    # The overrides left the seed as it was; what they did not reach is the seed's own
    # (a multi-MB seed is not copied per event: the sandbox copies what tools touch).
    assert pack.seed_db == {"orders": {"o-1": {"status": "open", "total": 30}}, "refunds": []}
    assert db["refunds"] is pack.seed_db["refunds"]


def test_complexity_not_a_number() -> None:
    message = pack_error(pack_text(POLICY.replace("complexity: 5", "complexity: hard")))
    assert message.startswith(
        "pack.yaml:8: policy 'refund-window': complexity: input should be a valid integer"
    )
    assert message.endswith("got 'hard'")


def test_agenda_act_must_be_known(shop_pack: PolicyPack) -> None:
    text = EVENTS.replace(
        'script: ["I want a refund."]', "agenda:\n        - {act: shout, text: hey}"
    )
    assert events_error(text, shop_pack) == (
        "events.yaml:8: event 'ev-1': user.agenda[0].act must be one of say, inform, request, "
        "confirm, deny, bye, got 'shout'"
    )
