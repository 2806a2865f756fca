"""End to end: the example suite's Allure results rendered by the real Allure 3 CLI.

`.ci/run` installs the CLI (npm package `allure`) and points AGENTSIM_ALLURE_CLI at it.
Outside CI without the CLI the test is skipped; in CI a missing CLI is a failure.
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
