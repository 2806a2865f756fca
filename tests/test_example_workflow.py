"""The GitHub workflow users copy (examples/github/agentsim.yml) lints clean and its steps
do what its comments promise, run here with bash against the `product` fixture and a fake
`gh` (the GitHub CLI): main keeps violations as data, a pull request compares with main's
results or, without them, says so and runs ungated."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "github" / "agentsim.yml"
BIN = Path(sys.executable).parent


def _load() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def _step(job: str, name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = _load()["jobs"][job]["steps"]
    return next(step for step in steps if step.get("name") == name)


@pytest.mark.parametrize(
    "command",
    [
        ["actionlint"],
        # As in .ci/run: findings above low fail.
        ["zizmor", "--offline", "--min-severity=medium", "--no-progress"],
    ],
    ids=["actionlint", "zizmor"],
)
def test_workflow_lints_clean(command: list[str]) -> None:
    tool = BIN / command[0]
    if not tool.exists():
        pytest.skip(f"{command[0]} is not installed in this venv (a dev dependency)")
    result = subprocess.run(
        [str(tool), *command[1:], str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_by_commit_with_its_version() -> None:
    for job in _load()["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                _, _, ref = step["uses"].partition("@")
                assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), step
    text = WORKFLOW.read_text(encoding="utf-8")
    for line in text.splitlines():
        if "uses:" in line:
            assert "# v" in line, line


def test_permissions_are_per_job_and_minimal() -> None:
    workflow = _load()
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["baseline"]["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["gate"]["permissions"] == {"contents": "read", "actions": "read"}


# A stand-in for the GitHub CLI: `run list` prints FAKE_GH_RUNS through the --jq filter (as
# gh does, with jq), `run download` copies FAKE_GH_ARTIFACT into --dir or fails as gh does
# for an expired artifact; every call is logged to FAKE_GH_LOG.
FAKE_GH = """\
import json, os, shutil, subprocess, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["run", "list"]:
    if os.environ.get("FAKE_GH_LIST_FAILS"):
        sys.exit("HTTP 404: Not Found (workflow)")
    jq = args[args.index("--jq") + 1]
    runs = os.environ["FAKE_GH_RUNS"]
    sys.exit(subprocess.run(["jq", "-r", jq], input=runs, text=True).returncode)
if args[:2] == ["run", "download"]:
    artifact = os.environ.get("FAKE_GH_ARTIFACT")
    if not artifact:
        sys.exit("no valid artifacts found to download")
    target = Path(args[args.index("--dir") + 1])
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(artifact, target / "agentsim-results.json")
    sys.exit(0)
sys.exit(f"fake gh: unexpected call {args}")
"""


class Steps:
    """Runs a workflow step's script with bash -e, as a GitHub runner does."""

    def __init__(self, product: pytest.Pytester, tmp_path: Path) -> None:
        self.cwd = product.path
        self.summary = tmp_path / "summary.md"
        self.output = tmp_path / "output.txt"
        self.log = tmp_path / "gh.log"
        fake_bin = tmp_path / "bin"
        fake_bin.mkdir()
        gh = fake_bin / "gh"
        gh.write_text(f"#!{sys.executable}\n{FAKE_GH}", encoding="utf-8")
        gh.chmod(0o755)
        self.env = {
            **os.environ,
            **_load()["env"],
            "PATH": os.pathsep.join([str(fake_bin), str(BIN), os.environ["PATH"]]),
            "GITHUB_REPOSITORY": "acme/support-agent",
            "GITHUB_WORKFLOW": "agentsim",
            "GITHUB_WORKFLOW_REF": "acme/support-agent/.github/workflows/agent-gate.yml@refs/pull/7/merge",
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.output),
            "FAKE_GH_LOG": str(self.log),
            "FAKE_GH_RUNS": "[]",
        }
        for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "GITHUB_ACTIONS"):
            self.env.pop(name, None)

    def run(self, job: str, name: str, **env: str) -> subprocess.CompletedProcess[str]:
        script = _step(job, name)["run"]
        return subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    def outputs(self) -> dict[str, str]:
        if not self.output.exists():
            return {}
        lines = self.output.read_text(encoding="utf-8").splitlines()
        return dict(line.split("=", 1) for line in lines)

    def gh_calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def steps(product: pytest.Pytester, tmp_path: Path) -> Steps:
    return Steps(product, tmp_path)


needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="the fake gh filters with jq")


def test_main_keeps_violations_as_data_and_writes_the_baseline(steps: Steps) -> None:
    result = steps.run("baseline", "Simulate and judge")

    # The careless agent of the fixture violates two policies, and main stays green.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agentsim gate: PASS" in result.stdout
    results = json.loads((steps.cwd / "agentsim-results.json").read_text(encoding="utf-8"))
    assert results["totals"]["violated_events"] > 0
    upload = _step("baseline", "Upload the baseline")["with"]
    assert (upload["name"], upload["path"]) == ("agentsim-results", "agentsim-results.json")


@needs_jq
def test_pr_compares_with_the_last_push_run_on_main(steps: Steps) -> None:
    assert steps.run("baseline", "Simulate and judge").returncode == 0
    baseline = steps.cwd.parent / "main-results.json"
    shutil.move(steps.cwd / "agentsim-results.json", baseline)
    # Newest first, as gh lists them; a fork's pull request from its own `main` is no baseline.
    runs = [{"databaseId": 9, "event": "pull_request"}, {"databaseId": 5, "event": "push"}]

    fetched = steps.run(
        "gate", "Baseline from main", FAKE_GH_RUNS=json.dumps(runs), FAKE_GH_ARTIFACT=str(baseline)
    )

    assert fetched.returncode == 0, fetched.stderr
    listing, download = steps.gh_calls()
    # The workflow file's own name, from its ref: not a hard-coded agentsim.yml.
    assert listing[listing.index("--workflow") + 1] == "agent-gate.yml"
    assert listing[listing.index("--branch") + 1] == "main"
    assert download[:3] == ["run", "download", "5"]
    assert "Baseline: run 5 of agent-gate.yml on main" in steps.summary.read_text()
    path = steps.outputs()["path"]
    # A re-run of what main recorded passes the baseline gate.
    gated = steps.run("gate", "Simulate and judge", BASELINE=path)
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert "agentsim gate: PASS" in gated.stdout
    assert "baseline" in gated.stdout


@pytest.mark.parametrize(
    ("runs", "env", "reason"),
    [
        pytest.param(
            [], {}, "agent-gate.yml has no successful run on main yet", marks=needs_jq, id="none"
        ),
        pytest.param(
            [{"databaseId": 5, "event": "push"}],
            {},
            "the results of run 5 on main are missing or expired",
            marks=needs_jq,
            id="expired",
        ),
        pytest.param(
            [],
            {"FAKE_GH_LIST_FAILS": "1"},
            "the runs of agent-gate.yml on main could not be listed",
            id="unlisted",
        ),
    ],
)
def test_pr_without_a_baseline_says_so_and_runs_ungated(
    steps: Steps, runs: list[dict[str, Any]], env: dict[str, str], reason: str
) -> None:
    fetched = steps.run("gate", "Baseline from main", FAKE_GH_RUNS=json.dumps(runs), **env)

    assert fetched.returncode == 0, fetched.stderr
    assert f"::warning title=agentsim: no baseline::{reason}" in fetched.stdout
    summary = steps.summary.read_text(encoding="utf-8")
    assert "### agentsim: no baseline" in summary
    assert reason in textwrap.dedent(summary).replace("\n", " ")
    assert "path" not in steps.outputs()
    # Without a baseline no gate is set: each violation fails the run.
    ungated = steps.run("gate", "Simulate and judge", BASELINE="")
    assert ungated.returncode == 1, ungated.stdout + ungated.stderr
    assert "agentsim gate" not in ungated.stdout
