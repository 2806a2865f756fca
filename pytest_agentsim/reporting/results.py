"""The record of one judged event, and the ``--agentsim-json`` results document."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pytest_agentsim.core.dbstate import plain
from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import LLMTally
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyRecord
from pytest_agentsim.core.models import PolicyResult
from pytest_agentsim.core.models import RecordedTranscript
from pytest_agentsim.judging.judges import combine
from pytest_agentsim.reporting.comparison import distinct_samples
from pytest_agentsim.reporting.tables import aggregate
from pytest_agentsim.reporting.tables import event_counts
from pytest_agentsim.reporting.tables import llm_totals
from pytest_agentsim.reporting.tables import not_exercised
from pytest_agentsim.reporting.tables import pass_k

RESULT_KEY = "agentsim_result"


def result_record(result: EventResult, *, transcript: bool = True) -> EventRecord:
    """The record of one judged event, small enough to ride on a test report.

    ``transcript``: keep the event, messages and database changes (for the results file,
    where ``agentsim label`` reads them); a run that writes no results file leaves them
    out, so that its test reports (which xdist carries, and the controller keeps) stay
    small.

    Built here rather than in core because a policy's ``rules`` outcome combines its rule
    checks the way the judges do (:func:`~pytest_agentsim.judging.judges.combine`).
    """
    conversation = result.conversation
    return EventRecord(
        event=result.event.id,
        domain=result.event.domain,
        metadata=dict(result.event.metadata),
        stop_reason=conversation.stop_reason,
        error=conversation.error,
        messages=len(conversation.messages),
        tool_calls=len(conversation.tool_calls),
        duration_seconds=conversation.duration_seconds,
        trial=result.trial,
        llm=result.llm.model_copy(),
        # Identical transcripts across trials mean the trials were not independent samples.
        transcript_sha256=hashlib.sha256(
            json.dumps([m.to_openai() for m in conversation.messages], sort_keys=True).encode()
        ).hexdigest(),
        policies=[_policy_record(r) for r in result.policies],
        tests=[],
        kind=result.kind,
        transcript=_transcript(result) if transcript else None,
    )


def _transcript(result: EventResult) -> RecordedTranscript:
    conversation = result.conversation
    before, after = conversation.db_changes()
    return RecordedTranscript(
        event=result.event,
        messages=conversation.messages,
        db_before=plain(before),
        db_after=plain(after),
    )


def _policy_record(result: PolicyResult) -> PolicyRecord:
    shown = next((v for v in result.verdicts if v.outcome is result.outcome), None)
    return PolicyRecord(
        policy=result.policy_id,
        risk_category=result.risk_category,
        risk_level1=result.risk_level1,
        severity=result.severity,
        outcome=result.outcome,
        listed=result.listed,
        turn=shown.turn if shown else None,
        reason=shown.reason if shown else "",
        judges={v.judge: v.outcome for v in result.verdicts if v.check is None}
        | _rule_outcome(result),
        disagreement=result.disagreement,
        exercised=result.exercised,
    )


def _rule_outcome(result: PolicyResult) -> dict[str, Outcome]:
    rules = [v.outcome for v in result.verdicts if v.check is not None]
    return {"rules": combine(rules)} if rules else {}


RESULTS_SCHEMA = "pytest-agentsim/results"
RESULTS_VERSION = 1


def results_document(
    records: Sequence[EventRecord], *, run: dict[str, Any], other_llm: LLMTally | None = None
) -> dict[str, Any]:
    """The ``--agentsim-json`` file (schema ``pytest-agentsim/results``, version 1).

    Top-level keys: ``schema``, ``version``, ``run`` (plugin/pytest/python versions,
    seed, max turns, packs with content hashes, events files, start time, duration, exit
    status), ``totals`` (events, and events with a violation / an error / an inconclusive
    verdict / all compliant, and ``by_kind``: events per failure kind, each counted once;
    errors apart: ``judged_events``, ``errored_events`` (could not be judged, as the gates
    count them) and ``error_rate``; ``not_exercised``: listed policies no event exercised),
    ``policies`` and ``risk_categories`` (outcome counts, ``judged`` (neither n/a nor
    error) and violation rate over those, as in the terminal tables; per policy also
    ``samples``: violated and judged counting an event's identical transcripts once, as
    the baseline gate does), ``events`` (one
    record per judged event: why it failed (``kind``, null
    when it did not), outcome, turn and reason per policy, stop reason, size, duration, trial, transcript hash, the tests that
    asserted on it; sorted by domain, event and trial, so that the file is the same with
    or without xdist), ``pass_k`` (with --agentsim-repeat: k, overall, per event / policy /
    risk category, and events whose trials were identical; else null) and ``cost`` (USD,
    tokens, LLM calls made and replayed from cassettes, summed over the events and
    ``other_llm``, the ``simulated_user`` tests' conversations).
    """
    totals = aggregate(records)
    samples = distinct_samples(records)
    outcomes = [{item.outcome for item in record.policies} for record in records]
    problems = {Outcome.violated, Outcome.error, Outcome.inconclusive}
    return {
        "schema": RESULTS_SCHEMA,
        "version": RESULTS_VERSION,
        "run": run,
        "totals": {
            "events": len(records),
            "violated_events": sum(Outcome.violated in found for found in outcomes),
            "error_events": sum(Outcome.error in found for found in outcomes),
            "inconclusive_events": sum(Outcome.inconclusive in found for found in outcomes),
            "compliant_events": sum(not found & problems for found in outcomes),
            # Each event once, by why it failed (the categories of Allure's report).
            "by_kind": {
                kind.value: sum(record.kind is kind for record in records) for kind in FailureKind
            },
            # Errors apart from violations: the events the gates and baselines judge by.
            "judged_events": (counts := event_counts(records)).judged,
            "errored_events": counts.errors,
            "error_rate": counts.error_rate,
            "not_exercised": not_exercised(records),
        },
        "policies": {
            policy: {
                "risk_category": totals.policy_risk[policy],
                **tally.as_dict(),
                "samples": dict(
                    zip(("violated", "judged"), samples.get(policy, (0, 0)), strict=True)
                ),
            }
            for policy, tally in sorted(totals.policies.items())
        },
        "risk_categories": {
            risk: {"level1": totals.risk_level1[risk], **tally.as_dict()}
            for risk, tally in sorted(totals.risks.items())
        },
        "events": [
            record.model_dump(mode="json")
            for record in sorted(records, key=lambda record: record.key)
        ],
        "pass_k": repeated.as_dict() if (repeated := pass_k(records)) else None,
        "cost": {
            "usd": (total := llm_totals(records) + (other_llm or LLMTally())).cost_usd,
            "tokens": total.tokens,
            "prompt_tokens": total.prompt_tokens,
            "completion_tokens": total.completion_tokens,
            "llm_calls": total.calls,
            "replayed_calls": total.replayed_calls,
            "failed_calls": total.failed_calls,
        },
    }
