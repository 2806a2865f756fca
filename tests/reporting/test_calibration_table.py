"""The calibration thresholds and the comparison with a stored calibration."""

from __future__ import annotations

from pytest_agentsim import Outcome
from pytest_agentsim.judging.calibration import JudgeCalibration
from pytest_agentsim.judging.calibration import Judgement
from pytest_agentsim.judging.calibration import calibration
from pytest_agentsim.reporting.calibration import AgreementThresholds
from pytest_agentsim.reporting.calibration import calibration_record


def report(wrong: int, n: int = 100, judge: str = "llm") -> JudgeCalibration:
    judgements = [
        Judgement(
            case=f"c{i}",
            policy="p",
            label=Outcome.violated,
            predicted=Outcome.compliant if i < wrong else Outcome.violated,
        )
        for i in range(n)
    ]
    (found,) = calibration({judge: judgements})
    return found


def test_a_significant_drop_from_the_stored_calibration_fails_the_judge() -> None:
    stored = {"llm": calibration_record(report(2))}
    thresholds = AgreementThresholds(baseline=stored, baseline_name="main.json")
    worse = thresholds.failures(report(20))
    assert len(worse) == 1
    assert worse[0].startswith("against main.json: agreement 98% of 100 -> 80% of 100")
    assert worse[0].endswith("dropped")
    # one more disagreement is noise, not a drop; and a judge the file lacks is not compared
    assert thresholds.failures(report(3)) == []
    assert thresholds.failures(report(20, judge="rules")) == []
    line = thresholds.baseline_line(report(3))
    assert line is not None and line[0].endswith("no significant drop")


def test_thresholds_name_the_overall_and_per_policy_agreement_they_miss() -> None:
    thresholds = AgreementThresholds(overall=0.9, per_policy={"p": 0.95, "other": 1.0})
    assert thresholds.failures(report(7)) == ["p: agreement 93% of 100 verdicts < 95%"]
    assert thresholds.failures(report(20)) == [
        "overall: agreement 80% of 100 verdicts < 90%",
        "p: agreement 80% of 100 verdicts < 95%",
    ]
