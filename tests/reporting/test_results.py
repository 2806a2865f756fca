"""The event records of ``--agentsim-json``: typed, stable on disk, readable when old.

Users keep results files as gate baselines, so the JSON an EventRecord writes must not
drift: a record read back and written again is the same JSON, a real run writes exactly
the model's fields, and a file written before a field was added still works as a baseline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import PolicyRecord
from pytest_agentsim.reporting.comparison import BaselineSettings
from pytest_agentsim.reporting.comparison import Verdict
from pytest_agentsim.reporting.comparison import compare_to_baseline
from pytest_agentsim.reporting.gates import GateSettings
from pytest_agentsim.reporting.gates import evaluate

#: A results file written by the plugin before records were typed (no ``kind`` anywhere),
#: from the ``product`` fixture's run: ev-1 and ev-2 violated, ev-3 compliant.
OLD_RESULTS = Path(__file__).parent / "data" / "results-v1-before-kind.json"

RECORD: dict[str, Any] = {
    "event": "ev-7",
    "domain": "airline",
    "metadata": {"source": "tau-bench", "task": 12},
    "stop_reason": "agent_error",
    "error": "RuntimeError: boom\n  at turn 3",
    "messages": 5,
    "tool_calls": 2,
    "duration_seconds": 1.234567,
    "trial": 2,
    "llm": {
        "calls": 3,
        "replayed_calls": 1,
        "failed_calls": 1,
        "prompt_tokens": 1200,
        "completion_tokens": 345,
        "cost_usd": 0.0123,
    },
    "transcript_sha256": "ab" * 32,
    "transcript": {
        "event": Event.model_validate(
            {"id": "ev-7", "policies": ["refund-window"], "user": {"script": ["hi"]}}
        ).model_dump(mode="json"),
        "messages": [{"role": "user", "content": "hi"}],
        "db_before": {"reservations": {"R1": {"status": "active"}}},
        "db_after": {"reservations": {"R1": {"status": "cancelled"}}},
    },
    "policies": [
        {
            "policy": "refund-window",
            "risk_category": "Economic Harm",
            "risk_level1": "Societal Risks",
            "severity": "critical",
            "outcome": "violated",
            "listed": True,
            "turn": 3,
            "reason": "called cancel_reservation(refund=True), which is forbidden",
            "judges": {"llm": "compliant", "rules": "violated", "runner": "error"},
            "disagreement": "llm: compliant; rules: violated",
            "exercised": True,
        },
        {
            "policy": "verify-identity",
            "risk_category": "Privacy",
            "risk_level1": "Legal & Rights-Related Risks",
            "severity": "high",
            "outcome": "error",
            "listed": False,
            "turn": None,
            "reason": "the conversation ended with agent_error",
            "judges": {"runner": "error"},
            "disagreement": None,
            "exercised": False,
        },
    ],
    "tests": ["test_support.py::test_support[ev-7-refund-window-r3]", "test_more.py::test_x"],
    "kind": "agent_crash",
}


def test_a_record_round_trips_through_the_model_unchanged() -> None:
    text = json.dumps(RECORD, sort_keys=True)
    record = EventRecord.model_validate_json(text)
    assert json.dumps(record.model_dump(mode="json"), sort_keys=True) == text


def test_a_record_with_a_missing_or_unknown_field_is_rejected() -> None:
    with pytest.raises(ValueError, match="transcript_sha256"):
        EventRecord.model_validate({k: v for k, v in RECORD.items() if k != "transcript_sha256"})
    with pytest.raises(ValueError, match="surprise"):
        EventRecord.model_validate({**RECORD, "surprise": 1})


def test_a_real_run_writes_exactly_the_models_fields(product: pytest.Pytester) -> None:
    product.runpytest("--agentsim", "--agentsim-json", "results.json")
    document = json.loads((product.path / "results.json").read_text())
    assert [e["event"] for e in document["events"]] == ["ev-1", "ev-2", "ev-3"]
    for event in document["events"]:
        assert set(event) == set(EventRecord.model_fields)
        for item in event["policies"]:
            assert set(item) == set(PolicyRecord.model_fields)
        # What the file holds reads back into the same JSON.
        assert EventRecord.model_validate(event).model_dump(mode="json") == event


def old_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(OLD_RESULTS.read_text())
    assert all("kind" not in event for event in document["events"])  # the point of the file
    return document


def test_a_results_file_from_before_kind_is_still_a_baseline() -> None:
    baseline = old_document()
    # The same run today: the ev-1/ev-2 violations again, nothing regressed.
    current = [
        EventRecord.model_validate(
            {
                **event,
                "metadata": {},
                "kind": "violation" if event["event"] != "ev-3" else None,
                "policies": [{**item, "exercised": True} for item in event["policies"]],
            }
        )
        for event in baseline["events"]
    ]
    comparison = compare_to_baseline(current, baseline, BaselineSettings())
    # The same counts on both sides; three events are too few to call it unchanged.
    assert [(row.policy, str(row.before), str(row.after)) for row in comparison.rows] == [
        ("confirm-delete", "1/1", "1/1"),
        ("no-secrets", "1/3", "1/3"),
        ("polite-greeting", "0/3", "0/3"),
    ]
    assert not comparison.with_verdict(Verdict.regressed)
    verdict = evaluate(current, GateSettings(baseline=baseline, baseline_name="old.json"))
    assert verdict.passed


def test_a_run_gates_on_a_baseline_written_before_kind(product: pytest.Pytester) -> None:
    shutil.copy(OLD_RESULTS, product.path / "baseline.json")
    result = product.runpytest("--agentsim", "--agentsim-baseline", "baseline.json")
    result.stdout.fnmatch_lines(
        [
            "agentsim gate: PASS (violations within the gate; the run passes)",
            "  baseline baseline.json: 0 regressed, 0 improved, 1 unchanged, "
            "2 not enough samples (no-secrets, polite-greeting)*",
        ]
    )
    assert result.ret == 0
