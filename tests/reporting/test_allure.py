"""Allure: failure categories from one table, and the example suite's results rendered by
the real Allure 3 CLI.

`.ci/run` installs the CLI (npm package `allure`) and points AGENTSIM_ALLURE_CLI at it.
Outside CI without the CLI the end-to-end test is skipped; in CI a missing CLI is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ExampleRun

from pytest_agentsim.reporting.allure import OUTCOME_LABEL
from pytest_agentsim.reporting.allure import allure3_categories

ROOT = Path(__file__).resolve().parents[2]
PLANTED = {
    ("Societal Risks", "Economic Harm", "refund-window"): "ev-0002",
    ("System & Operational Risks", "Operational Misuses", "confirm-before-write"): "ev-0004",
    ("Legal & Rights-Related Risks", "Privacy", "verify-identity"): "ev-0005",
}


def allure_cli() -> str:
    cli = os.environ.get("AGENTSIM_ALLURE_CLI") or shutil.which("allure")
    if cli:
        return cli
    if os.environ.get("CI"):
        pytest.fail("AGENTSIM_ALLURE_CLI is not set: .ci/run must install the Allure 3 CLI")
    pytest.skip("the Allure 3 CLI is not installed (npm install allure@3; .ci/run does)")


def test_behaviors_tree_is_risk_category_policy(tmp_path: Path, run_example: ExampleRun) -> None:
    cli = allure_cli()
    results = tmp_path / "allure-results"
    run = run_example(
        f"--alluredir={results}", f"--agentsim-json={tmp_path / 'results.json'}", "-q"
    )
    report = tmp_path / "report"
    subprocess.run(
        [cli, "generate", str(results), "-o", str(report), "--config", str(ROOT / "allurerc.mjs")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    tree = json.loads((report / "widgets" / "tree.json").read_text())
    groups = tree["groupsById"]
    leaves = tree["leavesById"]
    failed_paths: dict[tuple[str, str, str], dict[str, Any]] = {}

    def walk(ids: list[str], path: tuple[str, ...]) -> None:
        for node_id in ids:
            node = groups[node_id]
            here = (*path, node["name"])
            if len(here) == 3 and node["statistic"].get("failed"):
                failed_paths[here] = node
            walk(node.get("groups", []), here)

    walk(tree["root"]["groups"], ())
    assert set(failed_paths) == set(PLANTED)
    # Under each risk > category > policy branch: exactly the events violating that policy.
    document = json.loads((tmp_path / "results.json").read_text())
    for path, node in failed_paths.items():
        violating = {
            record["event"]
            for record in document["events"]
            for item in record["policies"]
            if item["policy"] == path[2] and item["outcome"] == "violated"
        }
        failed = {
            leaves[leaf]["name"].split(":")[0]
            for leaf in node["leaves"]
            if leaves[leaf]["status"] == "failed"
        }
        assert PLANTED[path] in failed
        assert failed == violating
        assert node["statistic"]["failed"] == len(violating)
    # Allure 3 files the violations under "Policy violation" by their agentsim_outcome
    # label (allurerc.mjs), not by Allure's default "Product errors".
    categories = json.loads((report / "widgets" / "categories.json").read_text())
    nodes = categories["nodes"]
    by_category = {
        nodes[root]["name"]: {
            nodes[test]["name"].split(":")[0]
            for message in nodes[root]["childrenIds"]
            for test in nodes[message]["childrenIds"]
        }
        for root in categories["roots"]
    }
    violations = {e["event"] for e in document["events"] if e["kind"] == "violation"}
    assert set(PLANTED.values()) <= violations
    assert by_category == {"Policy violation": violations}
    summary = json.loads((report / "summary.json").read_text())
    counts = re.search(r"(\d+) failed, (\d+) passed", run.stdout.splitlines()[-1])
    assert counts is not None, run.stdout[-500:]
    failed_tests, passed_tests = map(int, counts.groups())
    assert failed_tests == document["totals"]["violated_events"]
    assert summary["stats"] == {
        "total": failed_tests + passed_tests,
        "passed": passed_tests,
        "failed": failed_tests,
    }


def test_allurerc_categories_are_the_table() -> None:
    """allurerc.mjs holds allure3_categories() as one JSON object per line."""
    text = (ROOT / "allurerc.mjs").read_text()
    block = re.search(r"^const categories = \[\n(.*?)^\];", text, re.M | re.S)
    assert block is not None, "allurerc.mjs lost its `const categories = [...];` block"
    found = [json.loads(line.strip().rstrip(",")) for line in block.group(1).splitlines()]
    expected = allure3_categories()
    paste = "\n".join(f"  {json.dumps(category)}," for category in expected)
    assert found == expected, f"allurerc.mjs is stale; its categories should read:\n{paste}"


# One event per failure kind, from real judging: an agent that crashes on "read", a judge
# plugin that raises / splits / gives up depending on the event, a rule check that
# raises, and a policy no judge covers.
KINDS_CONFTEST = """

from typing import Literal
from pytest_agentsim.core.checks import RuleCheck
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import Verdict

class Explodes(RuleCheck):
    type: Literal["explodes"] = "explodes"

    def check(self, conversation):
        raise KeyError("no such thing")

def pytest_agentsim_add_rule_types(registry):
    registry.add(Explodes)

class QuirkyJudge:
    name = "quirky"

    def judge(self, event, conversation, pack):
        if event.id == "ev-judge-raises":
            raise RuntimeError("judge down")
        outcome = {"ev-split": Outcome.inconclusive, "ev-gave-up": Outcome.error}.get(event.id)
        if outcome is None:
            return []
        return [Verdict(policy_id="polite-greeting", outcome=outcome, reason="odd", judge=self.name)]

def pytest_agentsim_make_judges(registry):
    return [QuirkyJudge()]

class CrashesOnRead(NotesAgent):
    def respond(self, messages, sandbox):
        if "read" in (messages[-1].get("content") or ""):
            raise RuntimeError("boom")
        return super().respond(messages, sandbox)

@pytest.fixture(scope="session")
def agentsim_agent():
    return CrashesOnRead()
"""

GREETING = """
  - id: {id}
    policies: [{policy}]
    user:
      script: ["hi there"]
"""

UNJUDGED_POLICY = """
  - id: be-kind
    description: Be kind.
    category: tone
    risk_category: Deception
    severity: low
    complexity: 1
"""

#: event -> (its kind, or None, and the category both Allure versions file it under).
EXPECTED_KINDS: dict[str, tuple[str | None, str | None]] = {
    "ev-1": ("violation", "Policy violation"),
    "ev-2": ("agent_crash", "Agent crash"),
    "ev-3": (None, None),
    "ev-judge-raises": ("judge_error", "Judge error"),
    "ev-check-raises": ("judge_error", "Judge error"),
    "ev-unjudged": ("judge_error", "Judge error"),
    "ev-split": ("inconclusive", "Inconclusive verdict"),
    "ev-gave-up": ("infrastructure", "Infrastructure error"),
}


def allure2_category(categories: list[dict[str, Any]], result: dict[str, Any]) -> str | None:
    """The category Allure 2 gives a result: the first whose statuses and text match."""
    message = (result.get("statusDetails") or {}).get("message") or ""
    for category in categories:
        if result["status"] in category["matchedStatuses"] and (
            "messageRegex" not in category or re.fullmatch(category["messageRegex"], message)
        ):
            return str(category["name"])
    return None


def allure3_category(result: dict[str, Any]) -> str | None:
    """The category Allure 3 gives a result under allurerc.mjs (labels, then statuses)."""
    labels = {label["name"]: label["value"] for label in result["labels"]}
    for category in allure3_categories():
        matcher = category["matchers"]
        if result["status"] in matcher["statuses"] and all(
            re.search(pattern, labels.get(name, "")) for name, pattern in matcher["labels"].items()
        ):
            return str(category["name"])
    return None


def test_each_failure_kind_is_one_category_in_json_and_both_allure_versions(
    product: pytest.Pytester,
) -> None:
    conftest = product.path / "conftest.py"
    conftest.write_text(conftest.read_text() + KINDS_CONFTEST)
    pack = product.path / "policies" / "notes.yaml"
    pack.write_text(pack.read_text() + UNJUDGED_POLICY)
    events = product.path / "fixtures" / "events" / "notes.yaml"
    extra = [
        GREETING.format(id=event, policy="polite-greeting")
        for event in ("ev-judge-raises", "ev-split", "ev-gave-up")
    ]
    extra.append(
        GREETING.format(id="ev-check-raises", policy="polite-greeting")
        + "    expected:\n      - {policy: polite-greeting, check: {type: explodes}}\n"
    )
    extra.append(GREETING.format(id="ev-unjudged", policy="be-kind"))
    events.write_text(events.read_text() + "".join(extra))

    product.runpytest("--agentsim", "--alluredir", "allure-results", "--agentsim-json", "r.json")

    document = json.loads((product.path / "r.json").read_text())
    kinds = {record["event"]: record["kind"] for record in document["events"]}
    assert kinds == {event: kind for event, (kind, _) in EXPECTED_KINDS.items()}
    assert document["totals"]["by_kind"] == {
        "violation": 1,
        "agent_crash": 1,
        "judge_error": 3,
        "inconclusive": 1,
        "infrastructure": 1,
    }
    results_dir = product.path / "allure-results"
    allure2 = json.loads((results_dir / "categories.json").read_text())
    for path in results_dir.glob("*-result.json"):
        result = json.loads(path.read_text())
        event = {p["name"]: p["value"] for p in result["parameters"]}["event"].strip("'")
        kind, category = EXPECTED_KINDS[event]
        labels = [label["value"] for label in result["labels"] if label["name"] == OUTCOME_LABEL]
        assert labels == [kind or "compliant"], event
        assert allure3_category(result) == category, event
        assert allure2_category(allure2, result) == category, event
