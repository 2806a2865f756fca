"""GitHub Actions output: a Markdown job summary and ``::error`` annotations.

The summary is appended to the file named by ``GITHUB_STEP_SUMMARY`` (GitHub shows it on
the run's page; it must stay under 1 MiB per step). Annotations are workflow commands on
stdout pointing at the line of each violated policy in its pack; GitHub shows only about
ten per step, so only the first ten distinct (policy, event) pairs are annotated.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.reporting.tables import Tally
from pytest_agentsim.reporting.tables import aggregate
from pytest_agentsim.reporting.tables import event_counts
from pytest_agentsim.reporting.tables import not_exercised

SUMMARY_LIMIT = 1024 * 1024 - 4096
ANNOTATION_LIMIT = 10


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def _counts(tally: Tally) -> list[Any]:
    return [
        tally.events,
        tally.compliant,
        tally.violated,
        tally.inconclusive,
        tally.errors,
        tally.not_applicable,
        tally.rate(),
    ]


def step_summary(records: Sequence[EventRecord]) -> str:
    """The run as GitHub-flavoured Markdown: totals, per-risk and per-policy tables, problems."""
    totals = aggregate(records)
    bad = [record for record in records if record.with_outcome(Outcome.violated, Outcome.error)]
    counts = ["events", "compliant", "violated", "inconclusive", "errors", "n/a", "rate"]
    unexercised = not_exercised(records)
    events = event_counts(records).line()
    lines = [
        f"## pytest-agentsim: {len(bad)} of {len(records)} events violated a policy or failed",
        "",
        f"{events[0].upper()}{events[1:]}.",
        *(["", f"Not exercised in any event: {', '.join(unexercised)}."] if unexercised else []),
        "",
        "### Per risk category",
        "",
        *_table(
            ["risk category", "level 1", *counts],
            [
                [risk, totals.risk_level1[risk], *_counts(tally)]
                for risk, tally in sorted(totals.risks.items())
            ],
        ),
        "",
        "### Per policy",
        "",
        *_table(
            ["policy", "risk category", *counts],
            [
                [policy, totals.policy_risk[policy], *_counts(tally)]
                for policy, tally in sorted(totals.policies.items())
            ],
        ),
        "",
    ]
    if totals.problems:
        lines += [
            f"<details><summary>Violations and errors ({len(totals.problems)})</summary>",
            "",
            *_table(
                ["event", "policy", "outcome", "turn", "reason"],
                [
                    [
                        p.event,
                        p.item.policy,
                        p.item.outcome.value,
                        "" if p.item.turn is None else p.item.turn,
                        p.item.reason,
                    ]
                    for p in totals.problems
                ],
            ),
            "",
            "</details>",
            "",
        ]
    lines.append("Cost: $0.00 (no LLM calls).")
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > SUMMARY_LIMIT:
        text = text.encode()[:SUMMARY_LIMIT].decode(errors="ignore") + "\n\n(truncated)\n"
    return text


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error_annotations(
    records: Sequence[EventRecord], locations: Mapping[tuple[str, str], tuple[str, int | None]]
) -> list[str]:
    """``::error`` commands at the pack line of each violated policy (the first ten)."""
    lines = []
    for record in records:
        for item in record.with_outcome(Outcome.violated):
            path, line = locations.get((record.domain, item.policy), ("", None))
            where = f"file={_escape_property(path)}" + (f",line={line}" if line else "")
            title = _escape_property(f"{item.policy} violated ({item.risk_category})")
            turn = f" at turn {item.turn}" if item.turn is not None else ""
            message = _escape_data(f"event {record.event}{turn}: {item.reason}")
            lines.append(f"::error {where},title={title}::{message}")
            if len(lines) == ANNOTATION_LIMIT:
                return lines
    return lines
