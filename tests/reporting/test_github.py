"""GitHub output details: escaping, the annotation limit, the summary size cap."""

from __future__ import annotations

from record_factory import event_record

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import Severity
from pytest_agentsim.reporting.gates import GateSettings
from pytest_agentsim.reporting.gates import evaluate
from pytest_agentsim.reporting.github import ANNOTATION_LIMIT
from pytest_agentsim.reporting.github import SUMMARY_LIMIT
from pytest_agentsim.reporting.github import error_annotations
from pytest_agentsim.reporting.github import step_summary
from pytest_agentsim.reporting.results import results_document


def record(event: str, reason: str, outcome: str = "violated") -> EventRecord:
    """An event of domain ``shop`` whose one policy ``p,1`` ended with ``outcome``."""
    return event_record(
        event,
        {"p,1": outcome},
        risks={"p,1": "Privacy"},
        domain="shop",
        risk_level1="Legal & Rights-Related Risks",
        severity=Severity.high,
        turn=2,
        reason=reason,
    )


def test_annotation_escapes_data_and_properties() -> None:
    lines = error_annotations(
        [record("ev-1", "100% wrong\nsecond line")], {("shop", "p,1"): ("a:b.yaml", 7)}
    )
    assert lines == [
        "::error file=a%3Ab.yaml,line=7,title=p%2C1 violated (Privacy)::event ev-1 at turn 2: 100%25 wrong%0Asecond line"
    ]


def test_only_the_first_ten_violations_are_annotated() -> None:
    records = [record(f"ev-{n}", "x") for n in range(25)]
    assert len(error_annotations(records, {})) == ANNOTATION_LIMIT


def test_compliant_records_are_not_annotated() -> None:
    assert error_annotations([record("ev-1", "fine", outcome="compliant")], {}) == []


def test_table_cells_escape_pipes_and_the_summary_stays_under_the_limit() -> None:
    text = step_summary([record("ev-1", "a | b")])
    assert "| ev-1 | p,1 | violated | 2 | a \\| b |" in text
    huge = step_summary([record(f"ev-{n}", "y" * 2000) for n in range(1000)])
    assert len(huge.encode()) <= SUMMARY_LIMIT + 100
    assert huge.endswith("(truncated)\n")


def test_repeated_violations_are_annotated_once_per_event_naming_the_trials() -> None:
    records = [
        record(f"ev-{n}", "leaked", "violated").model_copy(update={"trial": trial})
        for n in range(12)
        for trial in range(3)
    ]
    lines = error_annotations(records, {})
    assert len(lines) == ANNOTATION_LIMIT
    assert lines[:2] == [
        "::error file=,title=p%2C1 violated (Privacy)::event ev-0 trials r1, r2, r3 at turn 2: leaked",
        "::error file=,title=p%2C1 violated (Privacy)::event ev-1 trials r1, r2, r3 at turn 2: leaked",
    ]
    once = [records[4]]  # ev-1's second trial only
    assert error_annotations(once, {}) == [
        "::error file=,title=p%2C1 violated (Privacy)::event ev-1 trial r2 at turn 2: leaked"
    ]


def test_only_the_policies_the_gate_fails_on_are_annotated() -> None:
    records = [record("ev-1", "x")]
    assert error_annotations(records, {}, policies=set()) == []
    assert len(error_annotations(records, {}, policies={"p,1"})) == 1


def test_the_summary_counts_events_once_and_their_trials_apart() -> None:
    records = [
        record("ev-1", "x", "violated" if trial == 0 else "compliant").model_copy(
            update={"trial": trial}
        )
        for trial in range(3)
    ] + [record("ev-2", "ok", "compliant").model_copy(update={"trial": t}) for t in range(3)]
    assert step_summary(records).startswith(
        "## pytest-agentsim: 1 of 2 events violated a policy or failed (1 of 6 trials)\n"
    )


def test_the_gate_verdict_and_its_table_come_first() -> None:
    baseline = results_document([record("ev-1", "ok", "compliant")], run={})
    records = [record("ev-1", "leaked")]
    verdict = evaluate(records, GateSettings(baseline=baseline, baseline_name="main.json"))
    text = step_summary(records, (verdict, "agentsim gate: FAIL"))
    assert text.startswith(
        "## agentsim gate: FAIL\n"
        "\n"
        "- baseline main.json: 1 regressed (p,1), 0 improved, 0 unchanged\n"
        "\n"
        "| policy | verdict | before | after | p | detectable rise |\n"
        "|---|---|---|---|---|---|\n"
        "| p,1 | **regressed (new violation)** | 0/1 | 1/1 | 0.5 | +80% |\n"
        "\n"
        "A violation of a policy clean in the baseline is a regression; one-sided Fisher"
    )
    assert "\n## pytest-agentsim: 1 of 1 events violated a policy or failed\n" in text
