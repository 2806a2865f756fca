"""The run's summary, on the process that writes it: tables, results file, gates, GitHub.

Registered by ``plugin.pytest_configure`` only where it writes (the controller, or the
only process without xdist), like pytest's junitxml, and unregistered in
``pytest_unconfigure``. It reads the records that the per-test hooks attach to test
reports, so its numbers are the same with or without xdist.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.core.models import EventRecord
from pytest_agentsim.core.models import FailureKind
from pytest_agentsim.core.models import LLMTally
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.llm.messages import usd
from pytest_agentsim.reporting.gates import GateVerdict
from pytest_agentsim.reporting.gates import evaluate as evaluate_gates
from pytest_agentsim.reporting.github import error_annotations
from pytest_agentsim.reporting.github import sample_annotations
from pytest_agentsim.reporting.github import step_summary
from pytest_agentsim.reporting.results import RESULT_KEY
from pytest_agentsim.reporting.results import results_document
from pytest_agentsim.reporting.tables import cost_line
from pytest_agentsim.reporting.tables import generation_lines
from pytest_agentsim.reporting.tables import short_cost
from pytest_agentsim.reporting.tables import summary_lines
from pytest_agentsim.runtest import DRIVER_LLM_KEY
from pytest_agentsim.runtest import ERROR_ONLY_KEY
from pytest_agentsim.runtest import VIOLATION_ONLY_KEY
from pytest_agentsim.session import AgentSimSession


def relative_to(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


class SummaryReporter:
    """Collects the judged events' records and reports the run once it ends."""

    def __init__(self, session: AgentSimSession) -> None:
        self.session = session
        self.config = session.config
        self.settings = session.settings
        self.records: dict[tuple[str, str, int], EventRecord] = {}
        #: the model calls of ``simulated_user`` tests, whose conversations are no records
        self.driver_llm = LLMTally()
        # Failed tests by what a gate may tolerate: policy violations only, events that
        # could not be judged only, anything else (never tolerated).
        self.violation_failures = 0
        self.error_failures = 0
        self.other_failures = 0
        self.gate_verdict: GateVerdict | None = None
        self.started = time.time()
        self.last_progress = time.monotonic()

    def pytest_report_header(self) -> list[str]:
        catalog = self.session.catalog
        packs = ", ".join(f"{d} ({len(p.policies)} policies)" for d, p in catalog.packs.items())
        lines = [
            f"agentsim: packs {packs}; {len(catalog.events)} events; seed {self.settings.seed}; "
            f"max turns {self.settings.max_turns}"
        ]
        llm = self.settings.llm
        if llm.any_model:
            budget = f"; budget {usd(llm.max_cost)}" if llm.max_cost is not None else ""
            lines.append(
                f"agentsim llm: {self.session.models_description()}; "
                f"cassettes {display_path(llm.cassette_dir)} "
                f"(record mode {llm.record_mode}){budget}"
            )
        return lines

    def pytest_sessionstart(self) -> None:
        self.started = time.time()

    # trylast: other plugins' hooks (a report log) see the record on the report first.
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            if report.__dict__.get(VIOLATION_ONLY_KEY, False):
                self.violation_failures += 1
            elif report.__dict__.get(ERROR_ONLY_KEY, False):
                self.error_failures += 1
            else:
                self.other_failures += 1
        driver_llm = report.__dict__.get(DRIVER_LLM_KEY)
        if isinstance(driver_llm, dict):
            self.driver_llm = self.driver_llm + LLMTally.model_validate(driver_llm)
        data = report.__dict__.get(RESULT_KEY)
        if not isinstance(data, str):
            return
        record = EventRecord.model_validate_json(data)
        # Kept here from now on: pytest keeps every report to the end of the run, and a
        # second copy on each would grow memory with the events.
        del report.__dict__[RESULT_KEY]
        # Several tests may assert on one event's (shared) conversation: count it once.
        entry = self.records.setdefault(record.key, record)
        if report.nodeid not in entry.tests:
            entry.tests.append(report.nodeid)
        self.progress()

    def progress(self) -> None:
        """Every few seconds on long runs, one line of how the run is going (not with -q)."""
        now = time.monotonic()
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if (
            reporter is None
            or self.config.get_verbosity() < 0
            or now - self.last_progress < self.settings.progress_seconds
        ):
            return
        self.last_progress = now
        records = list(self.records.values())
        kinds = Counter(record.kind for record in records)
        errors = sum(record.errored for record in records)
        inconclusive = kinds[FailureKind.inconclusive]
        reporter.write_line(
            f"agentsim: {len(records)} events judged, {kinds[FailureKind.violation]} with "
            f"violations, {errors} with errors, "
            + (f"{inconclusive} inconclusive, " if inconclusive else "")
            + short_cost(records)
        )

    def sorted_records(self) -> list[EventRecord]:
        return [self.records[key] for key in sorted(self.records)]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.apply_gates(session)
        path = self.settings.json_path
        if path is None:
            return
        document = results_document(
            list(self.records.values()),
            run=self.run_info(int(exitstatus)),
            other_llm=self.driver_llm,
        )
        calibration = self.config.pluginmanager.get_plugin("agentsim-calibration")
        if calibration is not None and calibration.records:
            document["calibration"] = {
                judge: {key: value for key, value in record.items() if key != "lines"}
                for judge, record in sorted(calibration.records.items())
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(path)

    @property
    def untolerated_failures(self) -> int:
        """Failed tests no configured gate may tolerate: they fail the run whatever it says."""
        gates = self.settings.gates
        return (
            self.other_failures
            + (0 if gates.gates_violations else self.violation_failures)
            + (0 if gates.gates_errors else self.error_failures)
        )

    def tolerated(self) -> str:
        """What the configured gates decide about instead of each failure: 'policy violations'."""
        gates = self.settings.gates
        what = ["policy violations"] if gates.gates_violations else []
        what += ["events that could not be judged"] if gates.gates_errors else []
        return " or ".join(what)

    def apply_gates(self, session: pytest.Session) -> None:
        """With a gate configured, the gate decides whether violations (or, with the
        error-rate gate, events that could not be judged) fail the run."""
        if not self.settings.gates.configured:
            return
        self.gate_verdict = evaluate_gates(self.sorted_records(), self.settings.gates)
        status = session.exitstatus
        if self.gate_verdict.passed:
            if status == pytest.ExitCode.TESTS_FAILED and self.untolerated_failures == 0:
                session.exitstatus = pytest.ExitCode.OK
        elif status == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def run_info(self, exitstatus: int) -> dict[str, Any]:
        from pytest_agentsim import __version__

        return {
            "plugin_version": __version__,
            "pytest_version": pytest.__version__,
            "python_version": platform.python_version(),
            "seed": self.settings.seed,
            "max_turns": self.settings.max_turns,
            "packs": [
                {
                    "domain": pack.domain,
                    "path": display_path(pack.path or ""),
                    "content_hash": pack.content_hash,
                    "policies": len(pack.policies),
                }
                for pack in self.session.packs.values()
            ],
            "events_files": [display_path(path) for path in self.settings.events],
            "started_at": datetime.fromtimestamp(self.started, timezone.utc).isoformat(),
            "duration_seconds": round(time.time() - self.started, 3),
            "exit_status": exitstatus,
        }

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        writes = self.session.snapshot_writes
        if writes:
            terminalreporter.write_sep("=", "agentsim events generated")
            for line in generation_lines(writes, self.settings.events):
                terminalreporter.write_line(line)
        if not self.records:
            if self.driver_llm.calls or self.driver_llm.replayed_calls:
                terminalreporter.write_sep("=", "agentsim summary")
                terminalreporter.write_line(cost_line([], self.driver_llm))
            return
        records = self.sorted_records()
        terminalreporter.write_sep("=", "agentsim summary")
        for line in summary_lines(records, self.driver_llm):
            terminalreporter.write_line(line)
        for line in self.llm_lines():
            terminalreporter.write_line(line)
        if self.settings.json_path is not None:
            terminalreporter.write_line(f"results: {display_path(self.settings.json_path)}")
        self.report_to_github(records, terminalreporter)
        if self.gate_verdict is not None:
            verdict = self.gate_verdict
            terminalreporter.write_line(self.gate_headline(), bold=True, red=not verdict.passed)
            for line in verdict.lines:
                terminalreporter.write_line(f"  {line}")
            if verdict.comparison is not None:
                for line in verdict.comparison.text_lines():
                    terminalreporter.write_line(f"    {line}")

    def gate_headline(self) -> str:
        """'agentsim gate: PASS (violations within the gate; the run passes)': the verdict,
        and whether other failures still fail the run."""
        assert self.gate_verdict is not None
        verdict = self.gate_verdict
        gates = self.settings.gates
        within = " and ".join(
            name
            for name, gated in (
                ("violations", gates.gates_violations),
                ("errors", gates.gates_errors),
            )
            if gated
        )
        untolerated = self.untolerated_failures
        tolerated = (
            f" ({within} within the gate; the run passes)"
            if verdict.passed and untolerated == 0
            else ""
        )
        others = (
            f" ({untolerated} failures or errors that are not {self.tolerated()} "
            "still fail the run)"
            if untolerated
            else ""
        )
        return f"{verdict.headline}{tolerated}{others}"

    def llm_lines(self) -> list[str]:
        """The run's budget and pricing problems (this process's calls: xdist workers' own)."""
        usage = self.session.llm.usage
        lines = []
        generation = [w.llm for w in self.session.snapshot_writes if w.llm is not None]
        if generation:
            total = sum(generation[1:], generation[0])
            lines.append(
                f"event generation (not counted above): {usd(total.cost_usd)}, "
                f"{total.calls} LLM calls, {total.replayed_calls} replayed from cassettes"
            )
        if usage.budget_refusals:
            # What was spent (the last call may overshoot the limit), then the limit.
            lines.append(
                f"LLM budget: {usd(usage.cost_usd)} spent of {usd(self.settings.llm.max_cost or 0)}"
                f" after {usage.calls} calls; {usage.budget_refusals} calls refused "
                "(--agentsim-max-cost)"
            )
        if usage.unpriced_models:
            lines.append(
                "LLM cost unknown (counted as $0) for: " + ", ".join(sorted(usage.unpriced_models))
            )
        return lines

    def report_to_github(
        self, records: list[EventRecord], terminalreporter: pytest.TerminalReporter
    ) -> None:
        """On GitHub Actions: the job summary (the gate's verdict first), and annotations
        on the pack lines of the violations that fail the run: with a violation gate, only
        those the gate fails on (none when it passes); and of the policies the baseline
        gate had too few samples for (a warning unless that fails the gate)."""
        verdict = self.gate_verdict
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path:
            gate = (verdict, self.gate_headline()) if verdict is not None else None
            with open(summary_path, "a", encoding="utf-8") as summary:
                summary.write(step_summary(records, gate))
        if os.environ.get("GITHUB_ACTIONS") == "true":
            # Annotations name files relative to the checkout, wherever pytest ran from.
            workspace = Path(os.environ.get("GITHUB_WORKSPACE") or self.config.rootpath)
            locations = {
                (pack.domain, policy.id): (
                    relative_to(Path(pack.path or ""), workspace),
                    policy.line,
                )
                for pack in self.session.packs.values()
                for policy in pack.policies
            }
            gated = verdict is not None and self.settings.gates.gates_violations
            blamed = verdict.blamed if verdict is not None and gated else None
            for line in error_annotations(records, locations, policies=blamed):
                terminalreporter.write_line(line)
            if verdict is not None and verdict.comparison is not None:
                for line in sample_annotations(verdict.comparison, locations):
                    terminalreporter.write_line(line)
