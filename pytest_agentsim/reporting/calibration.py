"""The judge calibration table, and the thresholds that fail a run on it."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from pytest_agentsim.core.models import Outcome
from pytest_agentsim.judging.calibration import LABELS
from pytest_agentsim.judging.calibration import Agreement
from pytest_agentsim.judging.calibration import JudgeCalibration
from pytest_agentsim.reporting.comparison import fisher_tail


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _kappa(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


COLUMNS = ("n", "agree", "kappa", "false viol", "false compl", "undecided", "exact")


def _row(name: str, agreement: Agreement) -> list[str]:
    n = str(agreement.n) if agreement.n == agreement.total else f"{agreement.n}/{agreement.total}"
    return [
        name,
        n,
        _pct(agreement.agreement),
        _kappa(agreement.kappa),
        _pct(agreement.false_violation_rate),
        _pct(agreement.false_compliance_rate),
        _pct(agreement.undecided_rate),
        _pct(agreement.exact),
    ]


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def calibration_lines(report: JudgeCalibration) -> list[str]:
    """One judge's table: a row per policy and overall, then its confusion matrix.

    ``n`` reads ``covered/shown`` when the judge gave no verdict on some labelled
    policies (a rule judge without a check of them): the rates are over those it judged.
    """
    rows = [["policy", *COLUMNS]]
    rows += [_row(policy, agreement) for policy, agreement in report.per_policy.items()]
    rows.append(_row("overall", report.overall))
    lines = [f"judge {report.judge}:", *("  " + line for line in _table(rows))]
    predicted = [o for o in Outcome if any(key[1] == o.value for key in report.overall.matrix)]
    if predicted:
        matrix = [["label \\ verdict", *(o.value for o in predicted)]]
        matrix += [
            [
                label.value,
                *(str(report.overall.matrix.get((label.value, o.value), 0)) for o in predicted),
            ]
            for label in LABELS
        ]
        lines += ["  " + line for line in _table(matrix)]
    return lines


def disagreement_lines(report: JudgeCalibration, limit: int = 10) -> list[str]:
    wrong = report.overall.disagreements
    lines = [
        f"  {j.case} {j.policy}: labelled {j.label.value}, judged {j.predicted.value}"
        + (f" ({j.reason})" if j.reason else "")
        for j in wrong[:limit]
    ]
    if len(wrong) > limit:
        lines.append(f"  ... and {len(wrong) - limit} more")
    return lines


@dataclass(frozen=True)
class AgreementThresholds:
    """``--agentsim-min-judge-agreement``, its per-policy lines, and the calibration
    baseline (``--agentsim-calibration-baseline``: the ``calibration`` of a results file,
    by judge) that a judge's agreement must not drop below significantly."""

    overall: float | None = None
    per_policy: Mapping[str, float] = field(default_factory=dict)
    baseline: Mapping[str, Any] | None = None
    baseline_name: str = ""
    alpha: float = 0.05

    def baseline_line(self, report: JudgeCalibration) -> tuple[str, bool] | None:
        """(the comparison with the baseline's figures for this judge, whether it dropped
        significantly), or None without a baseline for it.

        Disagreements are the judge's "violations": a one-sided Fisher exact test of more
        disagreements now than in the baseline, as the baseline gate tests violations.
        """
        before = (self.baseline or {}).get(report.judge)
        if not isinstance(before, Mapping):
            return None
        overall = before.get("overall", {})
        base_n = int(overall.get("n", 0))
        base_wrong = len(overall.get("disagreements", []))
        now_n, now_wrong = report.overall.n, len(report.overall.disagreements)
        if not base_n or not now_n:
            return None
        p = fisher_tail(now_wrong, now_n, base_wrong, base_n)
        dropped = now_wrong / now_n > base_wrong / base_n and p <= self.alpha
        line = (
            f"against {self.baseline_name}: agreement {_pct(1 - base_wrong / base_n)} of "
            f"{base_n} -> {_pct(1 - now_wrong / now_n)} of {now_n} (one-sided Fisher exact, "
            f"p={p:.3g}, alpha {self.alpha:g}): {'dropped' if dropped else 'no significant drop'}"
        )
        return line, dropped

    def failures(self, report: JudgeCalibration) -> list[str]:
        """Each threshold the judge's agreement falls below, as a line (none: it holds)."""
        compared = self.baseline_line(report)
        dropped = [compared[0]] if compared is not None and compared[1] else []
        checks: list[tuple[str, Agreement, float]] = []
        if self.overall is not None:
            checks.append(("overall", report.overall, self.overall))
        checks += [
            (policy, report.per_policy[policy], limit)
            for policy, limit in sorted(self.per_policy.items())
            if policy in report.per_policy
        ]
        return dropped + [
            f"{name}: agreement {_pct(agreement.agreement)} of {agreement.n} verdicts "
            f"< {_pct(limit)}"
            for name, agreement, limit in checks
            if agreement.agreement is not None and agreement.agreement < limit
        ]


def calibration_record(report: JudgeCalibration) -> dict[str, Any]:
    """The JSON form of one judge's calibration (results file, Allure, xdist reports)."""

    def one(agreement: Agreement) -> dict[str, Any]:
        return {
            "n": agreement.n,
            "shown": agreement.total,
            "agreement": agreement.agreement,
            "exact": agreement.exact,
            "kappa": agreement.kappa,
            "false_violation_rate": agreement.false_violation_rate,
            "false_compliance_rate": agreement.false_compliance_rate,
            "undecided_rate": agreement.undecided_rate,
            "confusion": [
                {"label": label, "verdict": verdict, "count": count}
                for (label, verdict), count in sorted(agreement.matrix.items())
            ],
            "disagreements": [
                {
                    "case": j.case,
                    "policy": j.policy,
                    "label": j.label.value,
                    "verdict": j.predicted.value,
                    "reason": j.reason,
                }
                for j in agreement.disagreements
            ],
        }

    return {
        "judge": report.judge,
        "overall": one(report.overall),
        "policies": {policy: one(a) for policy, a in report.per_policy.items()},
    }
