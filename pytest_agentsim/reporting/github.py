"""GitHub Actions output: a Markdown job summary and ``::error``/``::warning`` annotations.

The summary is appended to the file named by ``GITHUB_STEP_SUMMARY`` (GitHub shows it on
the run's page; it must stay under 1 MiB per step); with a gate, its verdict and the
baseline comparison's per-policy table come first. Annotations are workflow commands on
stdout pointing at the line of each violated policy in its pack, only for what fails the
run (with a gate: the violations the gate fails on); GitHub shows only about ten per
step, so only the first ten distinct (event, policy) pairs are annotated, each naming
the trials (``r1`` ...) it was violated in. A policy the baseline gate had too few
samples to decide is annotated at its pack line too: a warning, or an error when
``--agentsim-baseline-too-few-samples=fail`` makes it fail the gate.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyRecord
from pytest_agentsim.reporting.comparison import Comparison
from pytest_agentsim.reporting.comparison import Verdict
from pytest_agentsim.reporting.gates import GateVerdict
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


def gate_section(verdict: GateVerdict, headline: str) -> list[str]:
    """The gate's verdict (``headline``, as the terminal words it), its checks and the
    baseline comparison's per-policy table: what a reviewer reads first."""
    lines = [f"## {headline}", "", *(f"- {line}" for line in verdict.lines), ""]
    if verdict.comparison is not None:
        lines += [*_comparison_table(verdict.comparison), ""]
    return lines


def _comparison_table(comparison: Comparison) -> list[str]:
    header, rows = comparison.table()
    marked = [
        [row[0], f"**{row[1]}**" if compared.verdict is Verdict.regressed else row[1], *row[2:]]
        for row, compared in zip(rows, comparison.rows, strict=True)
    ]
    method = comparison.method()
    return [*_table(header, marked), "", f"{method[0].upper()}{method[1:]}."]


def step_summary(
    records: Sequence[EventRecord], gate: tuple[GateVerdict, str] | None = None
) -> str:
    """The run as GitHub-flavoured Markdown: the gate's verdict (``gate``: the verdict and
    its headline) first, then totals, per-risk and per-policy tables, problems.

    Its first line counts events, each once however many trials it had; the trials follow.
    """
    totals = aggregate(records)
    bad = [record for record in records if record.with_outcome(Outcome.violated, Outcome.error)]
    events = {(record.domain, record.event) for record in records}
    bad_events = {(record.domain, record.event) for record in bad}
    trials = f" ({len(bad)} of {len(records)} trials)" if len(records) != len(events) else ""
    counts = ["events", "compliant", "violated", "inconclusive", "errors", "n/a", "rate"]
    unexercised = not_exercised(records)
    judged = event_counts(records).line()
    lines = [
        *(gate_section(*gate) if gate else []),
        f"## pytest-agentsim: {len(bad_events)} of {len(events)} events violated a policy "
        f"or failed{trials}",
        "",
        f"{judged[0].upper()}{judged[1:]}.",
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


def _file_and_line(path: str, line: int | None) -> str:
    """The ``file=...,line=...`` properties of an annotation at a pack line."""
    return f"file={_escape_property(path)}" + (f",line={line}" if line else "")


def error_annotations(
    records: Sequence[EventRecord],
    locations: Mapping[tuple[str, str], tuple[str, int | None]],
    *,
    policies: Collection[str] | None = None,
) -> list[str]:
    """``::error`` commands at the pack line of each violated policy, one per (event,
    policy), naming the trials it was violated in when events were repeated (the first
    ten). ``policies``: only these policies' violations (those the gate fails on); None:
    every violation (without a gate, each fails its test)."""
    repeated = any(record.trial for record in records)
    found: dict[tuple[str, str, str], list[tuple[EventRecord, PolicyRecord]]] = {}
    for record in records:
        for item in record.with_outcome(Outcome.violated):
            if policies is None or item.policy in policies:
                found.setdefault((record.domain, record.event, item.policy), []).append(
                    (record, item)
                )
    lines = []
    for (domain, event, policy), trials in list(found.items())[:ANNOTATION_LIMIT]:
        record, item = trials[0]
        where = _file_and_line(*locations.get((domain, policy), ("", None)))
        title = _escape_property(f"{policy} violated ({item.risk_category})")
        named = ", ".join(f"r{record.trial + 1}" for record, _ in trials)
        which = f" trial{'s' if len(trials) > 1 else ''} {named}" if repeated else ""
        turn = f" at turn {item.turn}" if item.turn is not None else ""
        message = _escape_data(f"event {event}{which}{turn}: {item.reason}")
        lines.append(f"::error {where},title={title}::{message}")
    return lines


def sample_annotations(
    comparison: Comparison, locations: Mapping[tuple[str, str], tuple[str, int | None]]
) -> list[str]:
    """One annotation per policy the baseline gate had too few samples to decide, at its
    pack line: ``::warning`` when that only warns (the default), ``::error`` when it fails
    the gate. Without it a PR shows nothing where a policy was never really compared."""
    fails = comparison.settings.too_few == "fail"
    where_of: dict[str, tuple[str, int | None]] = {}
    for (_, policy), place in locations.items():
        where_of.setdefault(policy, place)
    lines = []
    for row in comparison.with_verdict(Verdict.too_few)[:ANNOTATION_LIMIT]:
        where = _file_and_line(*where_of.get(row.policy, ("", None)))
        title = _escape_property(f"{row.policy}: not enough samples")
        could = (
            f"the smallest rise they could show is +{row.detectable:.0%}"
            if row.detectable is not None
            else "they could show no rise at all"
        )
        consequence = (
            "this fails the gate"
            if fails
            else "this only warns (--agentsim-baseline-too-few-samples=fail makes it fail)"
        )
        before = str(row.before) if row.before is not None else "-"
        message = _escape_data(
            f"baseline {comparison.name}: {before} -> {row.after} violated; {could}, not the "
            f"{comparison.settings.detect:.0%} asked for; {consequence}"
        )
        lines.append(f"::{'error' if fails else 'warning'} {where},title={title}::{message}")
    return lines
