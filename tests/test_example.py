"""The README's main job: ``pytest --agentsim example_tests`` on the airline example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ExampleRun

ROOT = Path(__file__).resolve().parent.parent
PLANTED = {
    "ev-0002": "refund-window",
    "ev-0004": "confirm-before-write",
    "ev-0005": "verify-identity",
}


@pytest.fixture(scope="module")
def main_job(run_example: ExampleRun) -> subprocess.CompletedProcess[str]:
    return run_example()


def test_main_job_fails_exactly_on_the_planted_violations(
    main_job: subprocess.CompletedProcess[str],
) -> None:
    out = main_job.stdout
    assert main_job.returncode == 1, out[-3000:] + main_job.stderr
    failed = re.findall(
        r"^FAILED example_tests/test_support\.py::test_support\[(ev-\w+)-", out, re.M
    )
    violations = re.findall(r"^\s+VIOLATED\s+(ev-\w+) (\S+) turn \d+:", out, re.M)
    # Every failing event fails for a planted bug, and no planted bug goes unnoticed.
    assert sorted(failed) == sorted({event for event, _ in violations})
    assert {policy for _, policy in violations} == set(PLANTED.values())
    # The hand-checked events fail exactly where they were written to.
    assert {e: p for e, p in violations if re.fullmatch(r"ev-\d{4}", e)} == PLANTED
    generated = {p for e, p in violations if not re.fullmatch(r"ev-\d{4}", e)}
    assert generated == set(PLANTED.values())
    assert "ERROR" not in out
    assert re.search(rf"=+ {len(failed)} failed, \d+ passed in ", out.splitlines()[-1])


def test_main_job_summary_rolls_violations_up_by_policy_and_risk(
    main_job: subprocess.CompletedProcess[str],
) -> None:
    out = main_job.stdout
    rows = {
        m.group(1): (int(m.group(2)), int(m.group(3)), int(m.group(4)))
        for m in re.finditer(
            r"^\s+([a-z-]+)\s+[A-Z][\w &/-]+?\s+(\d+)\s+\d+\s+(\d+)\s+0\s+(\d+)\s+\d+\s+\S+$",
            out,
            re.M,
        )
    }
    # (events, violated, errors) per policy: only the planted bugs violate, nothing errs,
    # nothing is inconclusive (every conversation reached its end).
    assert set(rows) == {
        "cancellation-recorded",
        "confirm-before-write",
        "human-transfer",
        "no-basic-economy-changes",
        "no-internal-codes",
        "refund-window",
        "verify-identity",
    }
    assert {policy for policy, (_, violated, _) in rows.items() if violated} == set(
        PLANTED.values()
    )
    assert all(errors == 0 for _, _, errors in rows.values())
    # The generated events exercise every policy at least twice (coverage_k: 2).
    assert all(events >= 2 for events, _, _ in rows.values()), rows
    for risk in ("Economic Harm", "Operational Misuses", "Privacy"):
        assert re.search(rf"^\s+{risk}\s+.*\s+[1-9]\d*\s+0\s+0\s+\d+\s+\d+%$", out, re.M), risk
    assert (
        "events: 32 judged (25 compliant, 7 with a violation, 0 inconclusive); "
        "0 could not be judged"
    ) in out
    # Two policies whose only checks are absences (a call never made, words never said):
    # every event that lists them passes them vacuously, and the summary says so.
    assert (
        "not exercised in any event: no-basic-economy-changes, no-internal-codes (no check or "
        "judge saw them come up in the events that list them)"
    ) in out


def test_second_run_gives_identical_verdicts(
    main_job: subprocess.CompletedProcess[str], run_example: ExampleRun
) -> None:
    def verdicts(out: str) -> str:
        return out[out.index("agentsim summary") : out.index("short test summary")]

    assert verdicts(run_example("-n", "2").stdout) == verdicts(main_job.stdout)


def test_without_flag_the_example_is_skipped() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "example_tests", "-p", "no:cacheprovider", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    assert re.search(r"^4 skipped in ", result.stdout.splitlines()[-1]), result.stdout
