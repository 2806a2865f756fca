"""The bound on distinct template events: counted by hand on the desk pack, never below
what generation gives, and a count above it refused before any sample is built."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import DESK_CAPACITY
from conftest import DESK_DB
from conftest import DESK_PACK

from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.generation.filling import EventBuilder
from pytest_agentsim.generation.filling import GenerationFailed
from pytest_agentsim.generation.filling import generate_events
from pytest_agentsim.generation.graph import PolicyGraph
from pytest_agentsim.generation.graph import PolicySample
from pytest_agentsim.generation.variety import template_capacity
from pytest_agentsim.judging.rules import default_registry
from pytest_agentsim.packs.loading import load_pack

ROOT = Path(__file__).resolve().parents[2]


def desk_pack(tmp_path: Path, text: str = DESK_PACK) -> PolicyPack:
    (tmp_path / "policies").mkdir()
    (tmp_path / "fixtures" / "db").mkdir(parents=True)
    (tmp_path / "fixtures" / "db" / "desk.json").write_text(DESK_DB, encoding="utf-8")
    (tmp_path / "policies" / "desk.yaml").write_text(text, encoding="utf-8")
    return load_pack(tmp_path / "policies" / "desk.yaml", registry=default_registry())


def test_the_bound_counts_variants_choices_records_and_personas(tmp_path: Path) -> None:
    pack = desk_pack(tmp_path)
    graph = PolicyGraph.from_pack(pack)
    assert template_capacity(pack, graph, [], 1000) == DESK_CAPACITY
    # Asked for as many as it can give, or more than that: no bound below the count.
    assert template_capacity(pack, graph, [], DESK_CAPACITY) is None


def test_the_bound_drops_what_cannot_live_in_one_conversation(tmp_path: Path) -> None:
    # greet's variants now want another task than lookup's: pairs never build, so only
    # (greet) 5 and (lookup) 4 remain.
    text = DESK_PACK.replace(
        "        - name: rushed\n", "        - name: rushed\n          task: chat\n"
    )
    text = text.replace("        - name: hello\n", "        - name: hello\n          task: chat\n")
    pack = desk_pack(tmp_path, text)
    assert template_capacity(pack, PolicyGraph.from_pack(pack), [], 1000) == 9


def test_generation_never_gives_more_than_the_bound(tmp_path: Path) -> None:
    pack = desk_pack(tmp_path)
    pack.generation.count = DESK_CAPACITY
    generated = generate_events(pack, registry=default_registry(), seed=3)
    assert 0 < len(generated.events) <= DESK_CAPACITY


def test_a_count_above_the_bound_is_refused_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = desk_pack(tmp_path)
    pack.generation.count = 1000
    built: list[PolicySample] = []
    original = EventBuilder.try_build

    def counting(self: EventBuilder, sample: PolicySample) -> Event | str:
        built.append(sample)
        return original(self, sample)

    monkeypatch.setattr(EventBuilder, "try_build", counting)
    with pytest.raises(GenerationFailed) as info:
        generate_events(pack, registry=default_registry(), seed=0)
    assert str(info.value) == (
        f"generation.count: this pack's templates can give at most {DESK_CAPACITY} distinct "
        "events; asked for 1000 (lower the count, or add variants, choose values, personas or "
        "records for its entities)"
    )
    assert built == []


def test_the_example_pack_is_bounded_quickly_and_soundly() -> None:
    """The airline pack's bound (about 11,000) is far above the 137 events its seeded
    builder gives; counting it costs well under a second of CPU, not a walk per event."""
    pack = load_pack(ROOT / "policies" / "airline.yaml", registry=default_registry())
    graph = PolicyGraph.from_pack(pack)
    started = time.process_time()
    capacity = template_capacity(pack, graph, [], 1_000_000)
    assert time.process_time() - started < 5
    assert capacity is not None and 137 <= capacity < 1_000_000
    assert template_capacity(pack, graph, [], capacity + 1) == capacity


def test_the_run_reports_a_count_above_the_bound(desk: pytest.Pytester) -> None:
    pack = desk.path / "policies" / "desk.yaml"
    pack.write_text(pack.read_text().replace("count: 4", "count: 500"))
    result = desk.runpytest("--agentsim", "--agentsim-generate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --agentsim-generate: policies/desk.yaml: generation.count: this pack's "
            f"templates can give at most {DESK_CAPACITY} distinct events; asked for 500 (*); "
            "fixtures/events/desk.generated.yaml was not written"
        ]
    )
    assert not (desk.path / "fixtures" / "events" / "desk.generated.yaml").exists()
