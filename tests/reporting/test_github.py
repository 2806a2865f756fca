"""GitHub output details: escaping, the annotation limit, the summary size cap."""

from __future__ import annotations

from record_factory import event_record

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import Severity
from pytest_agentsim.reporting.github import ANNOTATION_LIMIT
from pytest_agentsim.reporting.github import SUMMARY_LIMIT
from pytest_agentsim.reporting.github import error_annotations
from pytest_agentsim.reporting.github import step_summary


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
