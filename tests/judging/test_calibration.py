"""The calibration set format and the agreement figures, without pytest running a session."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from pytest_agentsim import ConfigError
from pytest_agentsim import Outcome
from pytest_agentsim import RuleJudge
from pytest_agentsim import default_registry
from pytest_agentsim.judging.calibration import Judgement
from pytest_agentsim.judging.calibration import agreement
from pytest_agentsim.judging.calibration import calibration
from pytest_agentsim.judging.calibration import cohen_kappa
from pytest_agentsim.judging.calibration import judge_cases
from pytest_agentsim.judging.calibration import load_calibration_set

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SET = ROOT / "fixtures" / "calibration" / "airline"


def judgement(label: str, predicted: str, *, policy: str = "p", covered: bool = True) -> Judgement:
    return Judgement(
        case=f"c-{label}-{predicted}",
        policy=policy,
        label=Outcome(label),
        predicted=Outcome(predicted),
        covered=covered,
    )


def test_cohen_kappa_matches_the_textbook_example() -> None:
    # 50 items: both yes 20, both no 15, a yes/b no 5, a no/b yes 10 -> kappa 0.4
    pairs = [("y", "y")] * 20 + [("n", "n")] * 15 + [("y", "n")] * 5 + [("n", "y")] * 10
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("y", "y")] * 3) is None  # undefined: chance agrees on every pair
    assert cohen_kappa([]) is None


def test_agreement_counts_decisions_and_keeps_the_exact_reading_apart() -> None:
    items = [
        judgement("violated", "violated"),
        judgement("violated", "compliant"),  # false compliance
        judgement("compliant", "not_applicable"),  # same decision, different reading
        judgement("compliant", "violated"),  # false violation
        judgement("not_applicable", "error"),  # undecided: a disagreement
        judgement("compliant", "compliant", covered=False),  # the judge said nothing
    ]
    found = agreement(items)
    assert (found.n, found.total) == (5, 6)
    assert found.agreement == pytest.approx(2 / 5)
    assert found.exact == pytest.approx(1 / 5)
    assert found.false_compliance_rate == pytest.approx(1 / 2)
    assert found.false_violation_rate == pytest.approx(1 / 3)
    assert found.undecided_rate == pytest.approx(1 / 5)
    assert found.matrix[("compliant", "not_applicable")] == 1
    assert {(j.label, j.predicted) for j in found.disagreements} == {
        (Outcome.violated, Outcome.compliant),
        (Outcome.compliant, Outcome.violated),
        (Outcome.not_applicable, Outcome.error),
    }


def test_the_rule_judge_on_the_example_set_misses_what_its_checks_cannot_see() -> None:
    """The example's set holds cases the rule checks get wrong on purpose (an ambiguous
    yes, a failed verification before a lookup): the figures must show them."""
    cases = load_calibration_set(EXAMPLE_SET, registry=default_registry())
    assert len(cases) >= 60
    judged = asyncio.run(judge_cases(cases, [RuleJudge(default_registry())]))
    (report,) = calibration(judged)
    wrong = {(j.case, j.policy) for j in report.overall.disagreements}
    assert ("hand-confirm-ambiguous", "confirm-before-write") in wrong
    assert ("hand-verify-failed-then-read", "verify-identity") in wrong
    assert ("hand-confirm-other-words", "confirm-before-write") in wrong
    assert report.overall.agreement is not None and report.overall.agreement > 0.9
    # the honest answer of a failed cancellation has no rule check: not covered
    assert report.per_policy["cancellation-recorded"].n < (
        report.per_policy["cancellation-recorded"].total
    )


@pytest.fixture
def one_case(tmp_path: Path) -> Path:
    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(EXAMPLE_SET / "hand-fare-code-revealed.yaml", folder / "case.yaml")
    case = folder / "case.yaml"
    case.write_text(
        case.read_text().replace(
            "../../../policies/airline.yaml", str(ROOT / "policies" / "airline.yaml")
        )
    )
    return folder


def test_labels_may_only_name_the_events_policies(one_case: Path) -> None:
    case = one_case / "case.yaml"
    case.write_text(
        case.read_text().replace(
            "  no-internal-codes:\n    outcome", "  refund-window:\n    outcome"
        )
    )
    with pytest.raises(ConfigError) as error:
        load_calibration_set(one_case, registry=default_registry())
    message = str(error.value)
    assert message.startswith(f"{case}:") or "case.yaml:" in message
    assert "labels name policies the event does not list: refund-window" in message
    assert "\n" not in message


def test_a_label_outside_the_three_outcomes_is_named_with_its_line(one_case: Path) -> None:
    case = one_case / "case.yaml"
    text = case.read_text()
    case.write_text(text.replace("outcome: violated", "outcome: broken", 1))
    with pytest.raises(ConfigError) as error:
        load_calibration_set(one_case, registry=default_registry())
    line = text.splitlines().index("    outcome: violated") + 1
    assert f"case.yaml:{line}:" in str(error.value)
    assert "outcome must be one of compliant, violated, not_applicable, got 'broken'" in str(
        error.value
    )


def test_two_cases_with_one_id_and_a_missing_pack_are_usage_errors(one_case: Path) -> None:
    shutil.copy(one_case / "case.yaml", one_case / "again.yaml")
    with pytest.raises(ConfigError, match="case id 'hand-fare-code-revealed' is also used by"):
        load_calibration_set(one_case, registry=default_registry())
    (one_case / "again.yaml").unlink()
    case = one_case / "case.yaml"
    case.write_text(case.read_text().replace(str(ROOT / "policies" / "airline.yaml"), "nope.yaml"))
    with pytest.raises(ConfigError, match=r"pack: no such pack file 'nope\.yaml'"):
        load_calibration_set(one_case, registry=default_registry())
    with pytest.raises(ConfigError, match="no such calibration set"):
        load_calibration_set(one_case / "missing", registry=default_registry())
