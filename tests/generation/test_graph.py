"""The policy graph: derived edges, the seeded walk and coverage mode."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_agentsim.core.models import Policy
from pytest_agentsim.core.models import PolicyScenario
from pytest_agentsim.core.models import Severity
from pytest_agentsim.generation.graph import PolicyGraph
from pytest_agentsim.generation.graph import derived_weight
from pytest_agentsim.generation.graph import difficulty_histogram
from pytest_agentsim.generation.graph import policies_of
from pytest_agentsim.generation.graph import random_graph
from pytest_agentsim.judging.rules import default_registry
from pytest_agentsim.packs.loading import load_pack

ROOT = Path(__file__).resolve().parents[2]


def policy(
    pid: str,
    category: str,
    description: str,
    tools: tuple[str, ...] = (),
    entities: tuple[str, ...] = (),
) -> Policy:
    return Policy(
        id=pid,
        description=description,
        category=category,
        risk_category="Privacy",
        severity=Severity.high,
        complexity=3,
        checks=[{"type": "must_call", "tool": tool} for tool in tools],
        scenario=PolicyScenario(entities=list(entities)),
    )


def test_derived_weight_formula() -> None:
    a = policy(
        "a",
        "refunds",
        "Refund cancelled reservations within the booking window",
        ("cancel", "refund"),
        ("reservation",),
    )
    b = policy(
        "b",
        "refunds",
        "Never refund basic economy reservations",
        ("refund", "cancel"),
        ("reservation", "fare"),
    )
    # same category 3 + two shared tools 3*2 + one shared entity 2*1 + keywords 4*|{refund,reservations}|/|{refund,cancelled,reservations,within,booking,window,never,basic,economy}|
    assert derived_weight(a, b) == 10.0  # 3 + 6 + 2 + 0.9 = 11.9, capped at 10
    c = policy("c", "privacy", "Verify identity before reading reservations", ("verify",))
    assert derived_weight(a, c) == round(
        4 * 1 / 9, 1
    )  # only 'reservations' is shared among 9 words
    d = policy("d", "tone", "Greet politely")
    assert derived_weight(a, d) == 0.0


def test_declared_edges_override_derived_ones(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(
        (ROOT / "policies" / "airline.yaml")
        .read_text()
        .replace("../fixtures", str(ROOT / "fixtures"))
        .replace(
            "edges:\n",
            "edges:\n  - {between: [refund-window, human-transfer], weight: 9}\n"
            "  - {between: [human-transfer, cancellation-recorded], weight: 0}\n",
        )
    )
    graph = PolicyGraph.from_pack(load_pack(path, registry=default_registry()))
    assert graph.weight("human-transfer", "refund-window") == 9
    assert graph.weight("cancellation-recorded", "human-transfer") == 0  # derived 0.4


def test_edge_naming_an_unknown_policy_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(
        (ROOT / "policies" / "airline.yaml")
        .read_text()
        .replace("../fixtures", str(ROOT / "fixtures"))
        .replace("edges:\n", "edges:\n  - {between: [refund-window, refunds], weight: 9}\n")
    )
    with pytest.raises(
        pytest.UsageError,
        match=r"pack\.yaml:\d+: edges\[0\]: unknown policy 'refunds' \(pack has: ",
    ):
        load_pack(path, registry=default_registry())


def test_the_example_packs_graph_joins_declared_and_derived_edges() -> None:
    graph = PolicyGraph.from_pack(
        load_pack(ROOT / "policies" / "airline.yaml", registry=default_registry())
    )
    assert graph.weight("confirm-before-write", "refund-window") == 9  # declared
    assert graph.weight("cancellation-recorded", "human-transfer") == 0.4  # derived: wording only
    assert all(graph.neighbours(node) for node in graph.nodes)
    coverage = graph.coverage(k=2, edge_threshold=5, max_complexity=12)
    assert not coverage.uncovered
    assert min(policies_of(coverage.samples)[p] for p in graph.nodes) >= 2


GRAPH = random_graph(60, density=0.2, seed=3)


def test_walk_stays_within_range_and_follows_edges() -> None:
    samples = GRAPH.sample(500, seed=11, complexity=(6, 14))
    for sample in samples:
        assert (
            6 <= sample.complexity <= 14
            or len(sample.policies) == 1
            or not GRAPH.neighbours(sample.policies[-1])
        )
        assert sample.complexity == sum(GRAPH.complexity[p] for p in sample.policies)
        assert len(set(sample.policies)) == len(sample.policies)
        for a, b in itertools.pairwise(sample.policies):
            assert GRAPH.weight(a, b) > 0
    in_range = sum(6 <= s.complexity <= 14 for s in samples)
    assert in_range / len(samples) > 0.95


def test_difficulty_is_spread_over_the_range() -> None:
    counts = {level: 0 for level in range(6, 15)}
    for sample in GRAPH.sample(900, seed=1, complexity=(6, 14)):
        counts[sample.complexity] = counts.get(sample.complexity, 0) + 1
    assert min(counts.values()) > 900 / 9 / 2
    lines = difficulty_histogram(GRAPH.sample(50, seed=1, complexity=(6, 14)))
    assert lines[0].startswith("complexity   6:")


def test_same_seed_same_samples_in_another_process() -> None:
    here = [list(s.policies) for s in GRAPH.sample(200, seed=42, complexity=(5, 12))]
    code = textwrap.dedent(
        """
        import json
        from pytest_agentsim.generation.graph import random_graph
        graph = random_graph(60, density=0.2, seed=3)
        print(json.dumps([list(s.policies) for s in graph.sample(200, seed=42, complexity=(5, 12))]))
        """
    )
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout
    assert json.loads(there) == here
    assert [list(s.policies) for s in GRAPH.sample(200, seed=43, complexity=(5, 12))] != here


def _random_cases(count: int) -> list[tuple[int, float, int, int, float, int | None]]:
    """Seeded random graph shapes: sizes 1-40, any density, k 1-3, thresholds, caps."""
    rng = random.Random("coverage-cases")
    return [
        (
            rng.randint(1, 40),
            rng.random(),
            rng.randint(0, 10_000),
            rng.randint(1, 3),
            rng.uniform(1, 10),
            rng.choice([None, rng.randint(1, 30)]),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize(("nodes", "density", "seed", "k", "threshold", "cap"), _random_cases(60))
def test_coverage_guarantee_on_random_graphs(
    nodes: int, density: float, seed: int, k: int, threshold: float, cap: int | None
) -> None:
    graph = random_graph(nodes, density=density, seed=seed)
    result = graph.coverage(k=k, edge_threshold=threshold, max_complexity=cap)
    limit = cap if cap is not None else 10**9
    counts = policies_of(result.samples)
    covered_pairs = {
        tuple(sorted(pair))
        for s in result.samples
        for pair in itertools.combinations(s.policies, 2)
    }
    for node in graph.nodes:
        if graph.complexity[node] <= limit:
            assert counts[node] >= k
        else:
            assert any(node in line for line in result.uncovered)
    for (a, b), weight in graph.weights.items():
        if weight >= threshold:
            if graph.complexity[a] + graph.complexity[b] <= limit:
                assert (a, b) in covered_pairs
            else:
                assert any(f"edge {a}~{b}" in line for line in result.uncovered)
    assert all(s.complexity <= limit for s in result.samples)
    assert len(result.samples) >= result.lower_bound


def test_coverage_is_deterministic_and_small() -> None:
    graph = random_graph(100, density=0.1, seed=5)
    first = graph.coverage(k=1, edge_threshold=8, max_complexity=20)
    second = graph.coverage(k=1, edge_threshold=8, max_complexity=20)
    assert first.samples == second.samples
    assert first.lower_bound <= len(first.samples)


def test_policy_graph_fixture(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        f"""
        [pytest]
        agentsim_packs = {ROOT / "policies" / "airline.yaml"}
        agentsim_events = {ROOT / "fixtures" / "events" / "airline.yaml"}
        """
    )
    pytester.makepyfile(
        """
        def test_graph(agentsim_policy_graph):
            assert len(agentsim_policy_graph.nodes) == 7
            samples = agentsim_policy_graph.sample(20, seed=1, complexity=(4, 9))
            assert all(4 <= s.complexity <= 9 for s in samples)
        """
    )
    pytester.runpytest("--agentsim").assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(skipped=1)
