"""What one ``pytest --agentsim`` run shares between its plugin objects.

Built by ``plugin.pytest_configure`` only when ``--agentsim`` is given (like pytest's
stepwise or xdist's DSession), so an ordinary ``pytest`` run never imports this module,
pydantic models, YAML or litellm. It holds the run's services, not hooks: the resolved
settings, the rule types, the catalog of packs and events, the models, the judges and the
runner. The hooks live in small plugin objects that share it:
:class:`~pytest_agentsim.runtest.ConversationTests` (every process: parametrizing,
simulating, turning outcomes into test results) and
:class:`~pytest_agentsim.summary.SummaryReporter` (the controller only: tables, JSON,
gates, GitHub). Each xdist worker has its own session and simulates the events of the
tests it runs.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.catalog import Catalog
from pytest_agentsim.catalog import load_event_files
from pytest_agentsim.catalog import load_packs
from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.generation.filling import GenerationFailed
from pytest_agentsim.generation.snapshots import SnapshotWrite
from pytest_agentsim.generation.snapshots import regenerate
from pytest_agentsim.generation.snapshots import snapshot_targets
from pytest_agentsim.judging.judges import Judge
from pytest_agentsim.llm.redaction import Redactor
from pytest_agentsim.llm.run import LLMRun
from pytest_agentsim.settings import resolve_settings
from pytest_agentsim.simulation.runner import SimulationRunner

#: The workerinput key under which the controller ships its validated events to workers.
EVENTS_KEY = "agentsim_events"


class EventsToWorkers:
    """Sends each xdist worker the events the controller has loaded and validated.

    Reading and validating an events file (a YAML parse that keeps every line) took about
    a fifth of all CPU of a ``-n 2`` run when every worker did it again; the validated
    events, pickled, reach a worker with its start-up input instead.
    """

    def __init__(self, session: AgentSimSession) -> None:
        self.session = session
        self.payload: bytes | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.payload is None:  # pickled once, for the first worker
            self.payload = pickle.dumps(self.session.catalog.events)
        node.workerinput[EVENTS_KEY] = self.payload


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is an xdist worker (which reports to the controller)."""
    return hasattr(config, "workerinput")


class AgentSimSession:
    """The run's settings, rule types, catalog, models, judges and runner."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = resolve_settings(config)
        self.registry = RuleRegistry()
        config.hook.pytest_agentsim_add_rule_types(registry=self.registry)
        packs = load_packs(self.settings.packs, self.registry)
        self.llm = LLMRun(self.settings.llm)
        self.redactor = Redactor.for_config(self.llm.gateway.config)
        self.snapshot_writes: list[SnapshotWrite] = []
        event_paths = list(self.settings.events)
        if self.settings.generate:
            targets = snapshot_targets(event_paths, packs, config.rootpath / "fixtures" / "events")
            if not is_worker(config):
                # xdist workers start after the controller has written the snapshots.
                self.snapshot_writes = self.regenerate(packs, targets)
            event_paths += [path for path in targets.values() if path not in event_paths]
        shipped = getattr(config, "workerinput", {}).get(EVENTS_KEY)
        events = (
            pickle.loads(shipped)  # from our own controller, over xdist's channel
            if isinstance(shipped, bytes)
            else load_event_files(event_paths, packs, self.registry)
        )
        self.catalog = Catalog(packs, events)
        self.judges: list[Judge] = [
            judge
            for judges in config.hook.pytest_agentsim_make_judges(registry=self.registry)
            for judge in judges
        ]
        if self.settings.llm.judge_model:
            from pytest_agentsim.judging.llm_judge import LLMJudge

            self.judges.append(
                LLMJudge(
                    self.settings.llm.judge_model,
                    samples=self.settings.llm.judge_samples,
                    instructions=self.settings.llm.judge_instructions,
                )
            )
        gates = self.settings.gates
        self.catalog.check_gate_names(gates.per_risk, gates.per_policy)
        self.catalog.check_baseline(gates.baseline, gates.baseline_name)
        self.runner = SimulationRunner(
            judges=self.judges,
            max_turns=self.settings.max_turns,
            max_tool_rounds=self.settings.max_tool_rounds,
            seed=self.settings.seed,
            llm=self.llm,
            redactor=self.redactor,
            turn_timeout=self.settings.turn_timeout,
        )

    @property
    def packs(self) -> dict[str, PolicyPack]:
        return self.catalog.packs

    def regenerate(
        self, packs: dict[str, PolicyPack], targets: dict[str, Path]
    ) -> list[SnapshotWrite]:
        """--agentsim-generate: from the packs' templates, or with the generate model.

        The model's edge scores are cached in pytest's cache directory (by pack
        fingerprint and model); its calls go through one cassette per pack.
        """
        model = self.settings.llm.generate_model
        cache = getattr(self.config, "cache", None)  # None with -p no:cacheprovider
        try:
            return regenerate(
                packs,
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
