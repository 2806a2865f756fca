"""Allure: the example suite's results rendered by the real Allure 3 CLI read like the
terminal (counts per policy, categories by outcome, the violating turn), and every failure
kind lands in its category in both Allure versions.

`.ci/run` installs the CLI (npm package `allure`) and points AGENTSIM_ALLURE_CLI at it.
Outside CI without the CLI the end-to-end tests are skipped; in CI a missing CLI is a failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ExampleRun

from pytest_agentsim.reporting.allure import OUTCOME_LABEL
from pytest_agentsim.reporting.allure import RESULT_LABEL
from pytest_agentsim.reporting.allure import SEVERITY
from pytest_agentsim.reporting.allure import TESTS_EPIC
from pytest_agentsim.reporting.allure import allure3_categories

ROOT = Path(__file__).resolve().parents[2]
#: The terminal's per-policy column -> the Allure status its verdicts have.
COLUMN_STATUS = {
    "compliant": "passed",
    "violated": "failed",
    "errors": "broken",
    "inconclusive": "unknown",
    "n/a": "skipped",
}


def allure_cli() -> str:
    cli = os.environ.get("AGENTSIM_ALLURE_CLI") or shutil.which("allure")
    if cli:
        return cli
    if os.environ.get("CI"):
        pytest.fail("AGENTSIM_ALLURE_CLI is not set: .ci/run must install the Allure 3 CLI")
    pytest.skip("the Allure 3 CLI is not installed (npm install allure@3; .ci/run does)")


@dataclass
class Report:
    """The example run (terminal output, results JSON) and its generated Allure 3 report."""

    stdout: str
    document: dict[str, Any]
    dir: Path

    def json(self, name: str) -> Any:
        return json.loads((self.dir / name).read_text())

    def results(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in (self.dir / "data/test-results").glob("*")]

    def verdicts(self) -> list[dict[str, Any]]:
        return [r for r in self.results() if label(r, RESULT_LABEL) == "verdict"]


def label(result: dict[str, Any], name: str) -> str | None:
    return next((x["value"] for x in result["labels"] if x["name"] == name), None)


def parameter(result: dict[str, Any], name: str) -> str:
    return str(next(p["value"] for p in result["parameters"] if p["name"] == name))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, run_example: ExampleRun) -> Report:
    cli = allure_cli()
    tmp = tmp_path_factory.mktemp("allure")
    results = tmp / "allure-results"
    run = run_example(f"--alluredir={results}", f"--agentsim-json={tmp / 'results.json'}")
    subprocess.run(
        [cli, "generate", str(results), "-o", str(tmp / "report"), "--config", "allurerc.mjs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    document = json.loads((tmp / "results.json").read_text())
    return Report(run.stdout, document, tmp / "report")


def terminal_table(stdout: str, title: str) -> list[dict[str, str]]:
    """The rows of one summary table the terminal printed, cut by its dashes line."""
    lines = stdout.splitlines()
    start = lines.index(title)
    header, dashes = lines[start + 1], lines[start + 2]
    spans = [m.span() for m in re.finditer(r"-+", dashes)]
    names = [header[a:b].strip() for a, b in spans]
    rows = []
    for line in lines[start + 3 :]:
        if not line.startswith("  "):
            break
        cells = [
            line[a : b if i < len(spans) - 1 else None].strip() for i, (a, b) in enumerate(spans)
        ]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def tree_nodes(tree: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every group of the tree by its path of names."""
    groups = tree["groupsById"]
    found: dict[tuple[str, ...], dict[str, Any]] = {}

    def walk(ids: list[str], path: tuple[str, ...]) -> None:
        for node_id in ids:
            node = groups[node_id]
            here = (*path, node["name"])
            found[here] = node
            walk(node.get("groups", []), here)

    walk(tree["root"].get("groups", []), ())
    return found


def expected_statistic(row: dict[str, str]) -> dict[str, int]:
    counts = {COLUMN_STATUS[column]: int(row[column]) for column in COLUMN_STATUS}
    return {"total": int(row["events"])} | {k: v for k, v in counts.items() if v}


def test_tree_counts_per_policy_equal_the_terminal_table(report: Report) -> None:
    nodes = tree_nodes(report.json("widgets/tree.json"))
    policies = terminal_table(report.stdout, "per policy:")
    risks = {
        row["risk category"]: row for row in terminal_table(report.stdout, "per risk category:")
    }
    assert len(policies) == 7
    by_risk: dict[tuple[str, str], dict[str, int]] = {}
    for row in policies:
        level1 = risks[row["risk category"]]["level 1"]
        node = nodes[(level1, row["risk category"], row["policy"])]
        assert node["statistic"] == expected_statistic(row), row["policy"]
        summed = by_risk.setdefault((level1, row["risk category"]), {})
        for status, count in node["statistic"].items():
            summed[status] = summed.get(status, 0) + count
    # A risk category's node holds its policies' verdicts (the terminal's per-risk table
    # counts an event once however many of the category's policies it lists).
    for path, statistic in by_risk.items():
        assert nodes[path]["statistic"] == statistic, path
    security = nodes[("System & Operational Risks", "Security Risks")]["statistic"]
    assert security == {"total": 32, "passed": 11, "skipped": 21}


def test_pytest_tests_sit_under_their_own_branch_with_pytest_counts(report: Report) -> None:
    tree = report.json("widgets/tree.json")
    assert not tree["root"].get("leaves"), "results without a branch at the root"
    nodes = tree_nodes(tree)
    counts = re.search(r"(\d+) failed, (\d+) passed", report.stdout.splitlines()[-1])
    assert counts is not None, report.stdout[-500:]
    failed, passed = map(int, counts.groups())
    assert nodes[(TESTS_EPIC,)]["statistic"] == {
        "total": failed + passed,
        "failed": failed,
        "passed": passed,
    }
    dialogues = nodes[(TESTS_EPIC, "test_dialogues.py")]
    assert dialogues["statistic"] == {"total": 2, "passed": 2}
    assert (TESTS_EPIC, "test_support.py", "test_basic_economy_is_declined_politely") in nodes
    verdicts = sum(len(record["policies"]) for record in report.document["events"])
    summary = report.json("summary.json")
    assert summary["stats"]["total"] == failed + passed + verdicts


def test_titles_are_unique(report: Report) -> None:
    names = [leaf["name"] for leaf in report.json("widgets/tree.json")["leavesById"].values()]
    assert len(names) == len(set(names)) == len(report.results())
    # ev-0007 is used by two tests: each test's title names its test function.
    assert sum(name.split(":")[0].endswith("· ev-0007") for name in names) == 2


def test_categories_file_verdicts_by_outcome_and_failed_tests_apart(report: Report) -> None:
    categories = report.json("widgets/categories.json")
    nodes = categories["nodes"]

    def leaves(node_id: str) -> set[str]:
        node = nodes[node_id]
        if node["type"] == "tr":
            return {node["name"]}
        return set().union(*(leaves(child) for child in node.get("childrenIds", [])))

    filed = {nodes[root]["name"]: leaves(root) for root in categories["roots"]}
    violated = {
        (record["event"], item["policy"])
        for record in report.document["events"]
        for item in record["policies"]
        if item["outcome"] == "violated"
    }
    assert len(violated) == 7
    assert {
        tuple(name.split(":")[0].split(" · ")) for name in filed["Policy violation"]
    } == violated
    failed_tests = {f"test_support · {event}" for event, _ in violated}
    assert {name.split(":")[0] for name in filed["Failed pytest test"]} == failed_tests
    assert set(filed) == {"Policy violation", "Failed pytest test"}


def test_severity_follows_the_documented_mapping(report: Report) -> None:
    readme = (ROOT / "README.md").read_text()
    for ours, theirs in SEVERITY.items():
        assert f"| `{ours}` | {theirs} |" in readme
    verdicts = report.verdicts()
    assert len(verdicts) == sum(len(r["policies"]) for r in report.document["events"])
    for result in verdicts:
        assert label(result, "severity") == SEVERITY[parameter(result, "risk severity")]


def test_the_violating_turn_is_the_failed_step_and_highlighted(report: Report) -> None:
    turns = {
        (record["event"], item["policy"]): (item["turn"], item["reason"])
        for record in report.document["events"]
        for item in record["policies"]
    }
    checked = 0
    for result in report.verdicts():
        turn, reason = turns[(parameter(result, "event"), parameter(result, "policy"))]
        steps = [s for s in result["steps"] if s["type"] == "step"]
        failed = [s for s in steps if s["status"] != "passed"]
        if result["status"] != "failed":
            assert failed == [], result["name"]
            continue
        # The record names the first violating turn; a policy may be violated at several.
        failed_turns = [int(s["name"][1 : s["name"].index("]")]) for s in failed]
        assert turn in failed_turns, result["name"]
        assert all(s["status"] == "failed" for s in failed)
        assert reason in failed[failed_turns.index(turn)]["message"]
        files = {
            s["link"]["name"]: report.dir
            / "data/attachments"
            / f"{s['link']['id']}{s['link']['ext']}"
            for s in result["steps"]
            if s["type"] == "attachment"
        }
        transcript = files["transcript"].read_text()
        flagged = re.search(rf'<div class="msg [a-z]+ flagged" id="turn-{turn}"', transcript)
        assert flagged is not None, result["name"]
        assert html.escape(reason) in transcript
        table = files["verdicts"].read_text()
        first_row = re.search(r"<tr class=\"(\w+)\".*?<td[^>]*>([^<]*)</td>", table)
        assert first_row is not None
        assert first_row.groups() == ("violated", parameter(result, "policy"))
        assert "\\\\" not in table  # regexes are not double-escaped JSON
        checked += 1
    assert checked == 7


def test_no_stray_fixture_teardowns(report: Report) -> None:
    for result in report.results():
        for fixture in [*result["setup"], *result["teardown"]]:
            assert "<lambda>" not in fixture["name"], (result["name"], fixture["name"])
            assert fixture["status"] != "unknown", (result["name"], fixture["name"])


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

#: event -> (its kind, or None, and the category both Allure versions file its verdict under).
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
    results = [json.loads(p.read_text()) for p in results_dir.glob("*-result.json")]
    verdicts = [r for r in results if label(r, RESULT_LABEL) == "verdict"]
    # One verdict per policy judged in each event (every policy of the pack is judged).
    assert len(verdicts) == sum(len(record["policies"]) for record in document["events"])
    problems = set()
    for result in verdicts:
        event = parameter(result, "event")
        kind, category = EXPECTED_KINDS[event]
        if result["status"] in ("passed", "skipped"):
            kind = category = None
            assert label(result, OUTCOME_LABEL) in ("compliant", "not_applicable")
        else:
            problems.add(event)
            assert label(result, OUTCOME_LABEL) == kind, result["name"]
        assert allure3_category(result) == category, result["name"]
        assert allure2_category(allure2, result) == category, result["name"]
    assert problems == {event for event, (kind, _) in EXPECTED_KINDS.items() if kind}
    tests = [r for r in results if label(r, RESULT_LABEL) == "test"]
    assert len(tests) == len(EXPECTED_KINDS)
    for result in tests:
        expected = None if result["status"] in ("passed", "skipped") else "Failed pytest test"
        assert allure3_category(result) == expected, result["name"]
        assert allure2_category(allure2, result) == expected, result["name"]
        assert label(result, "epic") == TESTS_EPIC


def test_transcript_attachments_escape_what_the_conversation_says(
    product: pytest.Pytester,
) -> None:
    db = product.path / "fixtures" / "db" / "notes.json"
    db.write_text('{"notes": {"a": "buy milk", "s": "TOP-SECRET <script>alert(1)</script>"}}')

    product.runpytest("--agentsim", "--alluredir", "allure-results")

    pages = [p.read_text() for p in (product.path / "allure-results").glob("*-attachment.html")]
    transcripts = [page for page in pages if "&lt;script&gt;alert(1)&lt;/script&gt;" in page]
    assert transcripts, "no transcript shows the note's text"
    assert not any("<script>" in page for page in pages)


def test_fixture_teardowns_are_the_authors_only(product: pytest.Pytester) -> None:
    product.makeconftest(
        (product.path / "conftest.py").read_text()
        + "\n@pytest.fixture\ndef scratch():\n    yield 1\n    print('cleaned')\n"
    )
    product.makepyfile(test_scratch="def test_scratch(scratch):\n    assert scratch == 1\n")

    product.runpytest("--agentsim", "--alluredir", "allure-results")

    afters = [
        after
        for path in (product.path / "allure-results").glob("*-container.json")
        for after in json.loads(path.read_text()).get("afters", [])
    ]
    assert [after["name"].split("::")[0] for after in afters] == ["scratch"]
    assert afters[0]["status"] == "passed"


def test_screenshot_script_writes_where_it_is_told(tmp_path: Path) -> None:
    """scripts/allure-screenshot: an absolute and a relative path, both PNGs of the report."""
    cli = allure_cli()
    if shutil.which("chromium") is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    tree = tmp_path / "shots" / "tree.png"
    run = subprocess.run(
        [str(ROOT / "scripts" / "allure-screenshot"), str(tree), "verdict.png", "c.png"],
        cwd=tmp_path,
        env={**os.environ, "AGENTSIM_ALLURE_CLI": cli},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    verdict, categories = tmp_path / "verdict.png", tmp_path / "c.png"
    assert run.stdout.splitlines() == [f"wrote {p}" for p in (tree, verdict, categories)]
    for png in (tree, verdict, categories):
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, png
