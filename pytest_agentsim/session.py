"""The state of one ``pytest --agentsim`` run, and the hooks that need it.

Registered by ``plugin.pytest_configure`` only when ``--agentsim`` is given (like pytest's
stepwise or xdist's DSession), so an ordinary ``pytest`` run never imports this module,
pydantic models, YAML or litellm. Each xdist worker has its own instance and simulates
the events of the tests it runs; the controller only loads the configuration (to fail
early on mistakes) and prints the summary from the records riding on test reports.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import sys
import time
from collections.abc import Generator
from collections.abc import Sequence
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.checks import tools_named
from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.errors import ConversationError
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import PolicyViolation
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.generation.filling import GenerationFailed
from pytest_agentsim.generation.graph import PolicyGraph
from pytest_agentsim.generation.snapshots import SnapshotWrite
from pytest_agentsim.generation.snapshots import regenerate
from pytest_agentsim.generation.snapshots import snapshot_targets
from pytest_agentsim.judging.judges import Judge
from pytest_agentsim.judging.judges import judge_event
from pytest_agentsim.llm.messages import usd
from pytest_agentsim.llm.redaction import Redactor
from pytest_agentsim.llm.run import LLMRun
from pytest_agentsim.llm.run import active
from pytest_agentsim.packs.events import load_events
from pytest_agentsim.packs.events import starting_db
from pytest_agentsim.packs.loading import load_pack
from pytest_agentsim.packs.loading import pack_taxonomy
from pytest_agentsim.reporting.failure import failure_report
from pytest_agentsim.reporting.failure import junit_properties
from pytest_agentsim.reporting.gates import GateVerdict
from pytest_agentsim.reporting.gates import evaluate as evaluate_gates
from pytest_agentsim.reporting.github import error_annotations
from pytest_agentsim.reporting.github import step_summary
from pytest_agentsim.reporting.results import RESULT_KEY
from pytest_agentsim.reporting.results import result_record
from pytest_agentsim.reporting.results import results_document
from pytest_agentsim.reporting.tables import short_cost
from pytest_agentsim.reporting.tables import summary_lines
from pytest_agentsim.settings import resolve_settings
from pytest_agentsim.simulation.runner import Case
from pytest_agentsim.simulation.runner import SimulationRunner
from pytest_agentsim.simulation.runner import run_conversation
from pytest_agentsim.simulation.sandbox import ToolDefinitionError
from pytest_agentsim.simulation.sandbox import ToolSandbox
from pytest_agentsim.simulation.users import ScriptedUser
from pytest_agentsim.simulation.users import SimulatedUser
from pytest_agentsim.simulation.users import user_for

EVENT_RESULT = pytest.StashKey["EventResult"]()
VIOLATION_ONLY = pytest.StashKey[bool]()
VIOLATION_ONLY_KEY = "agentsim_violation_only"


def sandbox_for(tools: Sequence[Any], db: dict[str, Any]) -> ToolSandbox:
    """A sandbox of the user's tools; a tool that cannot be described fails with its source."""
    try:
        return ToolSandbox(tools, db)
    except ToolDefinitionError as exc:
        pytest.fail(f"agentsim_tools: {exc}", pytrace=False)


def _session_scoped(item: pytest.Item, *fixtures: str) -> bool:
    """Whether the item's fixtures of these names are session-scoped: one value for all."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return all(
        name in definitions and definitions[name][-1].scope == "session" for name in fixtures
    )


def relative_to(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


class AgentSimSession:
    """Loaded packs and events, the judges and the runner, and the hooks that use them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = resolve_settings(config)
        self.registry = RuleRegistry()
        config.hook.pytest_agentsim_add_rule_types(registry=self.registry)
        self.packs: dict[str, PolicyPack] = {}
        for path in self.settings.packs:
            pack = load_pack(path, registry=self.registry)
            if pack.domain in self.packs:
                raise ConfigError(
                    f"{display_path(path)}: domain {pack.domain!r} is also the domain of "
                    f"{display_path(self.packs[pack.domain].path or '')}"
                )
            self.packs[pack.domain] = pack
        llm_settings = self.settings.llm
        self.llm = LLMRun(llm_settings)
        self.redactor = Redactor.for_config(self.llm.gateway.config)
        self.snapshot_writes: list[SnapshotWrite] = []
        event_paths = list(self.settings.events)
        if self.settings.generate:
            targets = snapshot_targets(
                event_paths, self.packs, config.rootpath / "fixtures" / "events"
            )
            if not hasattr(config, "workerinput"):
                # xdist workers start after the controller has written the snapshots.
                self.snapshot_writes = self.regenerate(targets)
            event_paths += [path for path in targets.values() if path not in event_paths]
        self.events: list[Event] = []
        seen: dict[tuple[str, str], str] = {}
        for path in event_paths:
            if not path.exists():
                raise ConfigError(
                    f"{display_path(path)}: events file not found; write it with "
                    "`pytest --agentsim --agentsim-generate` (from the pack's templates)"
                )
            event_set = load_events(path, packs=self.packs, registry=self.registry)
            for event in event_set.events:
                key = (event.domain, event.id)
                if key in seen:
                    raise ConfigError(
                        f"{display_path(path)}:{event.line}: event {event.id!r} is also in {seen[key]}"
                    )
                seen[key] = display_path(path)
                self.events.append(event)
        self.judges: list[Judge] = [
            judge
            for judges in config.hook.pytest_agentsim_make_judges(registry=self.registry)
            for judge in judges
        ]
        if llm_settings.judge_model:
            from pytest_agentsim.judging.llm_judge import LLMJudge

            self.judges.append(
                LLMJudge(llm_settings.judge_model, samples=llm_settings.judge_samples)
            )
        self.check_gate_names()
        self._graphs: dict[str, PolicyGraph] = {}
        self._tool_problems: dict[tuple[str, str, frozenset[str]], str | None] = {}
        self.records: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.other_failures = 0
        self.last_progress = time.monotonic()
        self.gate_verdict: GateVerdict | None = None
        self.started = time.time()
        self.planned: list[tuple[pytest.Item, Event, int]] = []
        self.runner = SimulationRunner(
            judges=self.judges,
            max_turns=self.settings.max_turns,
            seed=self.settings.seed,
            llm=self.llm,
            redactor=self.redactor,
        )

    def regenerate(self, targets: dict[str, Path]) -> list[SnapshotWrite]:
        """--agentsim-generate: from the packs' templates, or with the generate model.

        The model's edge scores are cached in pytest's cache directory (by pack
        fingerprint and model); its calls go through one cassette per pack.
        """
        model = self.settings.llm.generate_model
        cache = getattr(self.config, "cache", None)  # None with -p no:cacheprovider
        try:
            return regenerate(
                self.packs,
                targets,
                registry=self.registry,
                seed=self.settings.seed,
                gateway_for=(lambda pack: self.llm.generation_gateway(pack.domain))
                if model
                else None,
                cache_dir=cache.mkdir("agentsim-edges") if model and cache is not None else None,
                progress=self.generation_progress,
                concurrency=self.settings.concurrency,
            )
        except GenerationFailed as exc:
            option = "--agentsim-generate-model" if model else "--agentsim-generate"
            raise ConfigError(f"{option}: {exc}") from None

    def generation_progress(self, line: str) -> None:
        """Progress of a model's generation, before pytest's terminal exists (it runs in
        pytest_configure); silent with -q."""
        if self.config.get_verbosity() >= 0:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def unknown_tool(self, pack: PolicyPack, event: Event, tools: frozenset[str]) -> str | None:
        """Why the event's checks cannot be judged with these tools, if a check names a
        tool that ``agentsim_tools`` lacks (a typo would make it pass every event).

        Every policy of the pack is judged on every event, so all their checks count,
        besides the event's own expectations. Asked only when there are tools: an agent
        that only talks has its tool checks not applicable, honestly.
        """
        key = (pack.domain, event.id, tools)
        if key not in self._tool_problems:
            pack_file = display_path(pack.path or pack.domain)
            named = [
                (tool, f"{pack_file}:{policy.line}: policy {policy.id!r}: a check")
                for policy in pack.policies
                for check in policy.checks
                for tool in sorted(tools_named(check))
            ] + [
                (tool, f"event {event.id!r}: an expected check of {expectation.policy!r}")
                for expectation in event.expected
                for tool in sorted(tools_named(expectation.check))
            ]
            missing = next(((tool, where) for tool, where in named if tool not in tools), None)
            self._tool_problems[key] = (
                None
                if missing is None
                else f"{missing[1]} names tool {missing[0]!r}, which agentsim_tools does not "
                f"provide (tools: {', '.join(sorted(tools)) or 'none'})"
            )
        return self._tool_problems[key]

    def check_gate_names(self) -> None:
        gates = self.settings.gates
        risks = {name for pack in self.packs.values() for name in pack_taxonomy(pack).names}
        policies = {pid for pack in self.packs.values() for pid in pack.policy_ids}
        for names, known, option in (
            (gates.per_risk, risks, "agentsim_max_violation_rate_per_risk"),
            (gates.per_policy, policies, "agentsim_max_violation_rate_per_policy"),
        ):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ConfigError(
                    f"{option}: unknown {unknown} (expected one of: {', '.join(sorted(known))})"
                )

    # -- lookups -----------------------------------------------------------------------

    def policy_graph(self, domain: str) -> PolicyGraph:
        """The pack's policy graph (declared and derived edges), built once per domain."""
        if domain not in self._graphs:
            self._graphs[domain] = PolicyGraph.from_pack(self.packs[domain])
        return self._graphs[domain]

    def pack_for(self, event: Event | None) -> PolicyPack:
        if event is not None:
            return self.packs[event.domain]
        if len(self.packs) == 1:
            return next(iter(self.packs.values()))
        pytest.fail(
            "agentsim: several policy packs are loaded and this test has no event to choose one "
            f"({', '.join(self.packs)}); pass domain=... or parametrize it over events",
            pytrace=False,
        )

    def risks_of(self, event: Event) -> set[str]:
        """The level-2 and level-1 risk categories of the policies an event exercises."""
        pack = self.packs[event.domain]
        taxonomy = pack_taxonomy(pack)
        level2 = {pack.policy(policy_id).risk_category for policy_id in event.policies}
        return level2 | {taxonomy.level1(name) for name in level2}

    def selected_events(self, markers: Sequence[pytest.Mark], where: str) -> list[Event]:
        """The events a test runs on, narrowed by its agentsim_policy / agentsim_risk marks."""
        known = {
            "agentsim_policy": {pid for pack in self.packs.values() for pid in pack.policy_ids},
            "agentsim_risk": {
                name
                for pack in self.packs.values()
                for name in (*pack_taxonomy(pack).names, *pack_taxonomy(pack).parent.values())
            },
        }
        events = self.events
        for mark in markers:
            wanted = {str(arg) for arg in mark.args}
            unknown = wanted - known[mark.name]
            if not wanted or unknown:
                what = "policies" if mark.name == "agentsim_policy" else "risk categories"
                problem = (
                    f"names unknown {what} {sorted(unknown)}" if wanted else "needs an argument"
                )
                pytest.fail(
                    f"{where}: @pytest.mark.{mark.name} {problem} "
                    f"(known: {', '.join(sorted(known[mark.name]))})",
                    pytrace=False,
                )
            if mark.name == "agentsim_policy":
                events = [event for event in events if wanted & set(event.policies)]
            else:
                events = [event for event in events if wanted & self.risks_of(event)]
        return events

    # -- hooks -------------------------------------------------------------------------

    def pytest_report_header(self) -> list[str]:
        packs = ", ".join(f"{d} ({len(p.policies)} policies)" for d, p in self.packs.items())
        lines = [
            f"agentsim: packs {packs}; {len(self.events)} events; seed {self.settings.seed}; "
            f"max turns {self.settings.max_turns}"
        ]
        llm = self.settings.llm
        if llm.any_model:
            budget = f"; budget {usd(llm.max_cost)}" if llm.max_cost is not None else ""
            lines.append(
                f"agentsim llm: {self.models_description()}; "
                f"cassettes {display_path(llm.cassette_dir)} "
                f"(record mode {llm.record_mode}){budget}"
            )
        return lines

    def models_description(self) -> str:
        """'user openai/x, judge openai/y' or 'offline (agenda user, rule judges)'."""
        llm = self.settings.llm
        roles = [
            f"{role} {model}"
            for role, model in (
                ("user", llm.user_model),
                ("judge", llm.judge_model),
                ("agent", llm.agent_model),
            )
            if model
        ]
        return ", ".join(roles) if roles else "offline (agenda user, rule judges)"

    def allure_environment(self) -> dict[str, Any]:
        """What Allure's environment widget shows of the run."""
        from pytest_agentsim import __version__

        return {
            "pytest_agentsim": __version__,
            "packs": ",".join(f"{p.domain}@{p.content_hash[:12]}" for p in self.packs.values()),
            "seed": self.settings.seed,
            "max_turns": self.settings.max_turns,
            "repeat": self.settings.repeat,
            "models": self.models_description(),
        }

    def user_model(self, item: pytest.Item) -> str | None:
        """The simulated user's model: the test's agentsim_user_model mark, else the run's."""
        mark = item.get_closest_marker("agentsim_user_model")
        if mark is None:
            return self.settings.llm.user_model
        if len(mark.args) != 1 or not (mark.args[0] is None or isinstance(mark.args[0], str)):
            pytest.fail(
                f"{item.nodeid}: @pytest.mark.agentsim_user_model takes one model string "
                "(or None for the offline user)",
                pytrace=False,
            )
        return mark.args[0] or None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # Tests over events: those taking the conversation, or asking for the event itself.
        own_args = inspect.signature(metafunc.function).parameters
        if (
            "agentsim_conversation" not in metafunc.fixturenames
            and "agentsim_event" not in own_args
        ):
            return
        markers = [
            *metafunc.definition.iter_markers("agentsim_policy"),
            *metafunc.definition.iter_markers("agentsim_risk"),
        ]
        events = self.selected_events(markers, metafunc.definition.nodeid)
        if not events:
            if self.events:
                wanted = "; ".join(f"{m.name}({', '.join(map(str, m.args))})" for m in markers)
                reason = f"no agentsim event of the {len(self.events)} matches {wanted}"
            else:
                reason = "no agentsim events: the events files hold none"
            metafunc.parametrize(
                "agentsim_case",
                [pytest.param(None, id="no-events", marks=pytest.mark.skip(reason=reason))],
                indirect=True,
            )
            return
        several = len(self.packs) > 1
        repeat = self.settings.repeat
        metafunc.parametrize(
            "agentsim_case",
            [
                pytest.param(
                    (event, trial),
                    id=(f"{event.domain}-" if several else "")
                    + event.test_id
                    + (f"-r{trial + 1}" if repeat > 1 else ""),
                )
                for event in events
                for trial in range(repeat)
            ],
            indirect=True,
        )

    def conversation(
        self, item: pytest.Item, event: Event, trial: int, agent: Any, tools: Sequence[Any]
    ) -> EventResult:
        """The judged result of ``event`` for the test ``item``; errors fail its setup."""
        pack = self.packs[event.domain]
        if self.settings.concurrency > 1 and _session_scoped(
            item, "agentsim_agent", "agentsim_tools"
        ):
            self.runner.prefetch(
                [
                    Case(
                        event=planned_event,
                        pack=self.packs[planned_event.domain],
                        sandbox=sandbox_for(
                            tools, starting_db(self.packs[planned_event.domain], planned_event)
                        ),
                        trial=planned_trial,
                        user_model=self.user_model(planned_item),
                    )
                    for planned_item, planned_event, planned_trial in self.planned
                ],
                agent,
                self.settings.concurrency,
            )
        sandbox = sandbox_for(tools, starting_db(pack, event))
        if sandbox.tools and (problem := self.unknown_tool(pack, event, frozenset(sandbox.tools))):
            pytest.fail(problem, pytrace=False)
        result = self.runner.result(
            event, pack, agent, sandbox, trial, user_model=self.user_model(item)
        )
        item.stash[EVENT_RESULT] = result
        item.user_properties.extend(junit_properties(result))
        item.config.hook.pytest_agentsim_event_judged(
            item=item, event=event, result=result, config=item.config
        )
        inconclusive_is_error = self.settings.llm.inconclusive == "error" and result.with_outcome(
            Outcome.inconclusive
        )
        if result.errors or result.conversation.stop_reason.is_error or inconclusive_is_error:
            # Could not be judged to the end: an error, even if a violation was found first.
            raise ConversationError(failure_report(result))
        return result

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Remember the (test, event, trial) cases left after selection, for prefetching."""
        self.planned = []
        for item in items:
            callspec = getattr(item, "callspec", None)
            case = callspec.params.get("agentsim_case") if callspec is not None else None
            if isinstance(case, tuple):
                self.planned.append((item, case[0], case[1]))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        result = item.stash.get(EVENT_RESULT, None)
        try:
            yield
        except PolicyViolation as exc:
            if exc.result is not None:  # the headline becomes the full report, as a test needs
                exc.args = (failure_report(exc.result),)
            # assert_compliant() in the body: a verdict that is only inconclusive follows
            # agentsim_inconclusive like the automatic check below.
            if (
                result is not None
                and self.settings.llm.inconclusive == "xfail"
                and result.with_outcome(Outcome.inconclusive)
                and not result.violated
            ):
                pytest.xfail(failure_report(result))
            raise
        if result is None:
            return
        if result.violated or (
            result.with_outcome(Outcome.inconclusive) and self.settings.llm.inconclusive == "fail"
        ):
            item.stash[VIOLATION_ONLY] = not result.with_outcome(Outcome.inconclusive)
            pytest.fail(failure_report(result), pytrace=False)
        if result.with_outcome(Outcome.inconclusive):  # agentsim_inconclusive = xfail
            pytest.xfail(failure_report(result))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        result = item.stash.get(EVENT_RESULT, None)
        if result is not None and (call.when == "call" or (call.when == "setup" and report.failed)):
            # Reports are the one channel xdist carries back to the controller.
            report.__dict__[RESULT_KEY] = result_record(result)
        if call.excinfo is not None and call.excinfo.errisinstance(ConversationError):
            report.longrepr = str(call.excinfo.value)  # the report says it all: no traceback
        if call.when == "call" and report.failed:
            # Quality gates may tolerate these failures, and only these.
            violation_only = item.stash.get(VIOLATION_ONLY, False) or bool(
                call.excinfo and call.excinfo.errisinstance(PolicyViolation)
            )
            report.__dict__[VIOLATION_ONLY_KEY] = violation_only
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and not report.__dict__.get(VIOLATION_ONLY_KEY, False):
            self.other_failures += 1
        record = report.__dict__.get(RESULT_KEY)
        if not isinstance(record, dict):
            return
        # Several tests may assert on one event's (shared) conversation: count it once.
        key = (record["domain"], record["event"], record["trial"])
        entry = self.records.setdefault(key, {**record, "tests": []})
        if report.nodeid not in entry["tests"]:
            entry["tests"].append(report.nodeid)
        self.progress()

    def progress(self) -> None:
        """Every few seconds on long runs, one line of how the run is going (not with -q)."""
        now = time.monotonic()
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if (
            reporter is None
            or hasattr(self.config, "workerinput")
            or self.config.get_verbosity() < 0
            or now - self.last_progress < self.settings.progress_seconds
        ):
            return
        self.last_progress = now
        records = self.records.values()
        violated = sum(any(i["outcome"] == "violated" for i in r["policies"]) for r in records)
        errors = sum(any(i["outcome"] == "error" for i in r["policies"]) for r in records)
        reporter.write_line(
            f"agentsim: {len(self.records)} events judged, {violated} with violations, "
            f"{errors} with errors, {short_cost(list(records))}"
        )

    def pytest_sessionstart(self) -> None:
        self.started = time.time()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):
            return  # xdist workers send their records to the controller, which reports
        self.apply_gates(session)
        path = self.settings.json_path
        if path is None:
            return
        document = results_document(list(self.records.values()), run=self.run_info(int(exitstatus)))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(path)

    def apply_gates(self, session: pytest.Session) -> None:
        """With a gate configured, the gate decides whether violations fail the run."""
        if not self.settings.gates.configured:
            return
        records = [self.records[key] for key in sorted(self.records)]
        self.gate_verdict = evaluate_gates(records, self.settings.gates)
        status = session.exitstatus
        if self.gate_verdict.passed:
            if status == pytest.ExitCode.TESTS_FAILED and self.other_failures == 0:
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
                for pack in self.packs.values()
            ],
            "events_files": [display_path(path) for path in self.settings.events],
            "started_at": datetime.fromtimestamp(self.started, timezone.utc).isoformat(),
            "duration_seconds": round(time.time() - self.started, 3),
            "exit_status": exitstatus,
        }

    def generation_lines(self) -> list[str]:
        """What --agentsim-generate wrote: files, counts, coverage, difficulty."""
        lines: list[str] = []
        for write in self.snapshot_writes:
            state = "wrote" if write.changed else "unchanged"
            coverage = (
                f"NOT COVERED: {'; '.join(write.uncovered)}"
                if write.uncovered
                else "every policy covered"
            )
            skipped = (
                f"; {write.skipped} {'sample' if write.skipped == 1 else 'samples'} could not "
                "be built (listed in the file)"
                if write.skipped
                else ""
            )
            lines.append(
                f"{state} {display_path(write.path)}: {write.events} {write.domain} events; "
                f"{coverage}{skipped}"
            )
            if write.events < write.target:
                lines.append(
                    f"  note: {write.events} of the {write.target} events asked for "
                    "(generation.count): the samples drawn gave no more distinct events"
                )
            if write.llm is not None:
                tally = write.llm
                lines.append(
                    f"  by {write.generator.removeprefix('llm:')}: {tally.calls} LLM calls, "
                    f"{tally.replayed_calls} replayed from cassettes, "
                    f"{tally.prompt_tokens + tally.completion_tokens:,} tokens, "
                    f"{usd(tally.cost_usd)}"
                )
            lines.extend(f"  {line}" for line in write.histogram)
            if write.path not in self.settings.events:
                lines.append(
                    f"  note: {display_path(write.path)} is not among the configured events "
                    "files; add it to agentsim_events to run it without --agentsim-generate"
                )
        return lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        if self.snapshot_writes:
            terminalreporter.write_sep("=", "agentsim events generated")
            for line in self.generation_lines():
                terminalreporter.write_line(line)
        if not self.records:
            return
        records = [self.records[key] for key in sorted(self.records)]
        terminalreporter.write_sep("=", "agentsim summary")
        for line in summary_lines(records):
            terminalreporter.write_line(line)
        for line in self.llm_lines():
            terminalreporter.write_line(line)
        if self.settings.json_path is not None:
            terminalreporter.write_line(f"results: {display_path(self.settings.json_path)}")
        self.report_to_github(records, terminalreporter)
        if self.gate_verdict is not None:
            verdict = self.gate_verdict
            tolerated = (
                " (violations within the gate; the run passes)"
                if verdict.passed and self.other_failures == 0
                else ""
            )
            others = (
                f" ({self.other_failures} failures or errors that are not policy violations "
                "still fail the run)"
                if self.other_failures
                else ""
            )
            terminalreporter.write_line(
                f"{verdict.headline}{tolerated}{others}", bold=True, red=not verdict.passed
            )
            for line in verdict.lines:
                terminalreporter.write_line(f"  {line}")

    def llm_lines(self) -> list[str]:
        """The run's budget and pricing problems (this process's calls: xdist workers' own)."""
        usage = self.llm.usage
        lines = []
        generation = [write.llm for write in self.snapshot_writes if write.llm is not None]
        if generation:
            total = sum(generation[1:], generation[0])
            lines.append(
                f"event generation (not counted above): {usd(total.cost_usd)}, "
                f"{total.calls} LLM calls, {total.replayed_calls} replayed from cassettes"
            )
        if usage.budget_refusals:
            lines.append(
                f"LLM budget: {usd(self.settings.llm.max_cost or 0)} spent after {usage.calls} calls; "
                f"{usage.budget_refusals} calls refused (--agentsim-max-cost)"
            )
        if usage.unpriced_models:
            lines.append(
                "LLM cost unknown (counted as $0) for: " + ", ".join(sorted(usage.unpriced_models))
            )
        return lines

    def report_to_github(self, records: list[dict[str, Any]], terminalreporter: Any) -> None:
        """On GitHub Actions: the job summary, and annotations on violated policies' lines."""
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as summary:
                summary.write(step_summary(records))
        if os.environ.get("GITHUB_ACTIONS") == "true":
            # Annotations name files relative to the checkout, wherever pytest ran from.
            workspace = Path(os.environ.get("GITHUB_WORKSPACE") or self.config.rootpath)
            locations = {
                (pack.domain, policy.id): (
                    relative_to(Path(pack.path or ""), workspace),
                    policy.line,
                )
                for pack in self.packs.values()
                for policy in pack.policies
            }
            for line in error_annotations(records, locations):
                terminalreporter.write_line(line)


class UserDriver:
    """The ``simulated_user`` fixture: drive one conversation yourself, like a unit test."""

    def __init__(
        self,
        session: AgentSimSession,
        agent: Any,
        tools: Sequence[Any],
        name: str,
        user_model: str | None = None,
    ) -> None:
        self.session = session
        self.agent = agent
        self.tools = list(tools)
        self.name = name
        self.user_model = user_model
        self.runs = 0

    def run(
        self,
        user: Sequence[str] | UserProfile | SimulatedUser,
        *,
        db: dict[str, Any] | None = None,
        policies: Sequence[str] | None = None,
        domain: str | None = None,
        max_turns: int | None = None,
    ) -> EventResult:
        """Run a conversation with scripted turns, a profile, or any simulated user; judge it.

        ``db`` overrides are merged over the pack's seed database; ``policies`` are the
        ones this dialogue exercises (default: every policy with rule checks). From an
        ``async`` test, ``await simulated_user.arun(...)`` instead.
        """
        from pytest_agentsim.llm.gateway import run_sync

        return run_sync(
            self.arun(user, db=db, policies=policies, domain=domain, max_turns=max_turns)
        )

    async def arun(
        self,
        user: Sequence[str] | UserProfile | SimulatedUser,
        *,
        db: dict[str, Any] | None = None,
        policies: Sequence[str] | None = None,
        domain: str | None = None,
        max_turns: int | None = None,
    ) -> EventResult:
        """:meth:`run` for async tests: the same conversation, awaited on the test's loop."""
        pack = self.session.packs[domain] if domain else self.session.pack_for(None)
        self.runs += 1
        simulated: SimulatedUser
        if isinstance(user, str):
            user = [user]  # one scripted turn, not a script of characters
        if isinstance(user, UserProfile):
            profile = user
            if self.user_model and user.script is None:
                from pytest_agentsim.simulation.llm_user import LLMUser

                simulated = LLMUser(user, self.user_model)
            else:
                simulated = user_for(user, seed=f"{self.session.settings.seed}:{self.name}")
        elif isinstance(user, Sequence):
            profile, simulated = UserProfile(script=list(user)), ScriptedUser(list(user))
        else:
            profile, simulated = UserProfile(), user
        chosen = list(policies) if policies else [p.id for p in pack.policies if p.checks]
        event = Event(
            id=f"{self.name}-run{self.runs}",
            domain=pack.domain,
            policies=chosen or pack.policy_ids,
            user=profile,
            db=db or {},
        )
        llm = self.session.llm
        scope = llm.scope(llm.cassette_path(pack.domain, event.id))
        with active(scope):
            conversation = await run_conversation(
                event_id=event.id,
                user=simulated,
                agent=self.agent,
                sandbox=sandbox_for(self.tools, starting_db(pack, event)),
                max_turns=max_turns or self.session.settings.max_turns,
                seed=self.session.settings.seed,
            )
            result = await judge_event(event, conversation, pack, self.session.judges)
        result.llm = scope.tally.tally()
        return self.session.redactor.result(result)
