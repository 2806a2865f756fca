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

import atexit
import gc
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


_exit_freeze_registered = False


def freeze_heap_at_exit() -> None:
    """At interpreter exit, keep CPython's final garbage collections off the run's heap.

    Shutting down after 1,000 events took over a second, nearly all of it in the cyclic
    collections CPython runs while clearing modules: they walk every result, record and
    report the run still holds, only for the process to end. An xdist controller waits for
    each worker to exit before it prints its summary, so under ``-n`` every process paid
    this in turn. ``gc.freeze()`` from an atexit handler (the run and whatever called
    ``pytest.main`` are done by then) takes what is alive out of those collections;
    refcounted objects are still freed as modules are cleared, and handlers registered
    before it (coverage's, for one) still run. Registered once per process.
    """
    global _exit_freeze_registered
    if not _exit_freeze_registered:
        _exit_freeze_registered = True
        atexit.register(gc.freeze)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the packs and events are loaded.

    Loading 1,000 events allocates enough objects to set off several full collections,
    each walking the growing heap of what is being loaded and kept (about 0.3 CPU-s, on
    the controller before any xdist worker starts); loading makes next to no cyclic
    garbage, and whatever it makes is collected later.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class LongLivedHeap:
    """Keeps what lives for the whole run out of the collector's full collections.

    The modules, packs, events and test items of a run live until it ends, yet each full
    collection walked them all again: about a tenth of a worker's CPU on 1,000 events,
    paid by every xdist process. ``gc.freeze()`` once the session has started (and again
    after collection) moves them to the permanent generation. An xdist worker leaves them
    there (its process ends with the run); elsewhere ``pytest_unconfigure`` gives them
    back to the collector, since ``pytest.main`` may be called by a process that goes on.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self) -> None:
        gc.freeze()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self) -> None:
        gc.freeze()

    def pytest_unconfigure(self) -> None:
        if not is_worker(self.config):
            gc.unfreeze()


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
        with gc_paused():
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
        with gc_paused():
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
