"""``--agentsim-calibrate DIR``: a test per judge that measures it against labelled cases.

Registered by the plugin only when a calibration set is configured. Every judge of the
run (the rule checks, the LLM judge with its samples, plugin judges) judges every case of
the set once per process; each judge's test reports its agreement with the labels and
fails below ``--agentsim-min-judge-agreement`` (or a per-policy line). The LLM judge's
calls go through one cassette per case (``<cassettes>/calibration/<case>.yaml``), so a CI
run replays them offline. The controller prints every judge's table in the summary.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.core.models import LLMTally
from pytest_agentsim.judging.calibration import JudgeCalibration
from pytest_agentsim.judging.calibration import LoadedCase
from pytest_agentsim.judging.calibration import calibration
from pytest_agentsim.judging.calibration import judge_cases
from pytest_agentsim.judging.calibration import load_calibration_set
from pytest_agentsim.llm.gateway import run_sync
from pytest_agentsim.llm.run import EventLLM
from pytest_agentsim.llm.run import active
from pytest_agentsim.reporting.calibration import calibration_lines
from pytest_agentsim.reporting.calibration import calibration_record
from pytest_agentsim.reporting.calibration import disagreement_lines
from pytest_agentsim.session import AgentSimSession

MARKER = "agentsim_calibration"
RECORD_KEY = "agentsim_calibration"


class CalibrationFailed(Exception):
    """A judge agrees with the labels less than a threshold asks."""


class CalibrationRun:
    """The set's cases judged by every judge, once per process, on first use."""

    def __init__(self, session: AgentSimSession, path: Path) -> None:
        self.session = session
        self.path = path
        self.cases = load_calibration_set(path, registry=session.registry)
        self.scopes: list[EventLLM] = []

    @property
    def judge_names(self) -> list[str]:
        names = [judge.name for judge in self.session.judges]
        return names + (["combined"] if len(names) > 1 else [])

    def _scope(self, loaded: LoadedCase) -> Any:
        llm = self.session.llm
        scope = llm.scope(llm.cassette_path("calibration", loaded.case.id))
        self.scopes.append(scope)
        return active(scope)

    @property
    def llm_tally(self) -> LLMTally:
        """The model calls the judges made on the set (all judges: one tally per case)."""
        return sum((scope.tally.tally() for scope in self.scopes), LLMTally())

    @functools.cached_property
    def reports(self) -> dict[str, JudgeCalibration]:
        judgements = run_sync(
            judge_cases(
                self.cases,
                self.session.judges,
                scope_for=self._scope,
                concurrency=self.session.settings.concurrency,
            )
        )
        return {report.judge: report for report in calibration(judgements)}


class CalibrationItem(pytest.Item):
    """One judge's calibration: its agreement with the labels, against the thresholds."""

    def __init__(self, *, run: CalibrationRun, judge: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run = run
        self.judge = judge
        self.add_marker(MARKER)

    def runtest(self) -> None:
        report = self.run.reports[self.judge]
        lines = calibration_lines(report)
        compared = self.run.session.settings.agreement.baseline_line(report)
        if compared is not None:
            lines.append(f"  {compared[0]}")
        tally = self.run.llm_tally
        if tally.calls or tally.replayed_calls:
            lines.append(
                f"  model calls of all judges on the set: {tally.calls} to a model, "
                f"{tally.replayed_calls} replayed from cassettes, {tally.tokens:,} tokens, "
                f"${tally.cost_usd:.4f}"
            )
        self.user_properties.append((RECORD_KEY, {**calibration_record(report), "lines": lines}))
        if self.config.pluginmanager.hasplugin("allure_pytest") and getattr(
            self.config.option, "allure_report_dir", None
        ):
            import allure

            allure.attach(
                "\n".join(lines), name="calibration", attachment_type=allure.attachment_type.TEXT
            )
        failures = self.run.session.settings.agreement.failures(report)
        if failures:
            raise CalibrationFailed(
                "\n".join(
                    [
                        f"judge {self.judge} agrees with the labels of "
                        f"{self.run.path.name} less than required:",
                        *(f"  {line}" for line in failures),
                        "(its table is in the calibration summary below) disagreements:",
                        *disagreement_lines(report),
                    ]
                )
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CalibrationFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.run.path, None, f"agentsim calibration of judge {self.judge}"


class CalibrationTests:
    """Adds the calibration tests, and prints each judge's table at the end of the run."""

    def __init__(self, session: AgentSimSession, path: Path) -> None:
        self.run = CalibrationRun(session, path)
        self.records: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(tryfirst=True)  # before -m and -k deselect
    def pytest_collection_modifyitems(
        self, session: pytest.Session, items: list[pytest.Item]
    ) -> None:
        items.extend(
            CalibrationItem.from_parent(
                session, name=f"agentsim_calibration[{judge}]", run=self.run, judge=judge
            )
            for judge in self.run.judge_names
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == RECORD_KEY and isinstance(value, dict):
                self.records[str(value["judge"])] = value

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.records:
            return
        terminalreporter.write_sep("=", "agentsim judge calibration")
        terminalreporter.write_line(
            f"{len(self.run.cases)} labelled case{'' if len(self.run.cases) == 1 else 's'} in "
            f"{self.run.path}; agreement counts "
            "violated / passed (compliant or not applicable) / undecided"
        )
        for judge in self.run.judge_names:
            for line in self.records.get(judge, {}).get("lines", []):
                terminalreporter.write_line(line)
