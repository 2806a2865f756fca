"""The policy graph and the two ways of sampling policy combinations from it.

Nodes are policies weighted by complexity (1-10); an edge's weight (0-10) says how likely
two policies come up in one conversation (IntellAgent, arXiv 2501.11067). Edges are
declared in the pack or derived offline by :func:`derived_weight`.

- :meth:`PolicyGraph.walk` is IntellAgent's weighted random walk, seeded: it stops when
  the summed complexity reaches a target drawn from the requested range, and never steps
  past the range's upper end.
- :meth:`PolicyGraph.coverage` (no peer has it) builds a small set of samples in which
  every policy appears at least ``k`` times and every edge of weight >= a threshold at
  least once (greedy set cover), and reports what it could not cover.

Randomness comes from ``random.Random(str(seed))`` (string seeds hash the same in every
process, unlike ``hash()``), and nodes and neighbours are iterated in sorted order, so the
same seed gives the same samples across processes and xdist workers.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pydantic import BaseModel
from pydantic import Field

from pytest_agentsim.core.checks import tools_named
from pytest_agentsim.core.models import Policy
from pytest_agentsim.core.models import PolicyPack

if TYPE_CHECKING:
    # Imported for the annotation only: an offline run samples graphs without the gateway.
    from pytest_agentsim.llm.gateway import Gateway

_STOPWORDS = frozenset(
    "about above after again against also before being below between both cannot could "
    "does doing during each from further have having into itself more most must never "
    "only other over same should some such than that their them then there these they "
    "this those through under until very what when where which while will with would "
    "your customer customers user users agent".split()
)


def _keywords(policy: Policy) -> set[str]:
    words = re.findall(r"[a-z][a-z_-]{3,}", policy.description.lower())
    return {word for word in words if word not in _STOPWORDS}


def _tools(policy: Policy) -> set[str]:
    return {tool for check in policy.checks for tool in tools_named(check)}


def _entities(policy: Policy) -> set[str]:
    return set(policy.scenario.entities)


def derived_weight(a: Policy, b: Policy) -> float:
    """How likely two policies meet in one conversation, from what the pack says of them.

    ``weight = min(10, 3·[same category] + 3·min(2, shared tools)
    + 2·min(2, shared entities) + 4·jaccard(description keywords))``, rounded to 0.1.
    Tools are those named in the policies' rule checks (``tool``, ``first``, ``then``,
    ``when_called``); entities are listed under ``scenario: {entities: [...]}``; keywords
    are the description's words of four letters or more, minus common words.
    """
    score = 3.0 if a.category == b.category else 0.0
    score += 3.0 * min(2, len(_tools(a) & _tools(b)))
    score += 2.0 * min(2, len(_entities(a) & _entities(b)))
    words_a, words_b = _keywords(a), _keywords(b)
    if words_a and words_b:
        score += 4.0 * len(words_a & words_b) / len(words_a | words_b)
    return round(min(10.0, score), 1)


@dataclass(frozen=True)
class PolicySample:
    """A combination of policies for one event, and the walk's target."""

    policies: tuple[str, ...]
    complexity: int
    target: int


@dataclass
class Coverage:
    """What coverage mode built, and what it could not cover (with why)."""

    samples: list[PolicySample]
    k: int
    edge_threshold: float
    uncovered: list[str] = field(default_factory=list)
    lower_bound: int = 0


class PolicyGraph:
    """Policies with complexities and weighted, undirected co-occurrence edges."""

    def __init__(
        self, complexity: Mapping[str, int], weights: Mapping[tuple[str, str], float]
    ) -> None:
        self.complexity = dict(sorted(complexity.items()))
        self.nodes = list(self.complexity)
        self.weights: dict[tuple[str, str], float] = {}
        for (a, b), weight in weights.items():
            if weight > 0 and a != b:
                self.weights[(a, b) if a < b else (b, a)] = float(weight)
        adjacency: dict[str, list[tuple[str, float]]] = {node: [] for node in self.nodes}
        for (a, b), weight in sorted(self.weights.items()):
            adjacency[a].append((b, weight))
            adjacency[b].append((a, weight))
        self._neighbours = {node: sorted(items) for node, items in adjacency.items()}
        # Cumulative weights per node, for O(log degree) weighted choice in the walk.
        self._cumulative = {
            node: list(itertools.accumulate(weight for _, weight in items))
            for node, items in self._neighbours.items()
        }

    @classmethod
    def from_pack(
        cls, pack: PolicyPack, scored: Mapping[tuple[str, str], float] | None = None
    ) -> PolicyGraph:
        """Declared edges win, then ``scored`` ones (an LLM's), then :func:`derived_weight`."""
        weights = {
            (a.id, b.id): derived_weight(a, b) for a, b in itertools.combinations(pack.policies, 2)
        }
        for (a, b), weight in (scored or {}).items():
            weights.pop((b, a), None)
            weights[(a, b)] = weight
        for edge in pack.edges:
            a, b = edge.between
            weights.pop((b, a), None)
            weights[(a, b)] = edge.weight
        return cls({p.id: p.complexity for p in pack.policies}, weights)

    def weight(self, a: str, b: str) -> float:
        return self.weights.get((a, b) if a < b else (b, a), 0.0)

    def neighbours(self, node: str) -> list[tuple[str, float]]:
        return self._neighbours[node]

    # -- the walk ----------------------------------------------------------------------

    def _step(self, rng: random.Random, path: list[str], budget: int) -> str | None:
        """A weighted choice among the path's last node's unvisited neighbours that fit."""
        items, cumulative = self._neighbours[path[-1]], self._cumulative[path[-1]]
        if not items:
            return None
        fits = (
            [
                (node, weight)
                for node, weight in items
                if node not in path and self.complexity[node] <= budget
            ]
            if len(items) <= 16
            else None
        )
        if fits is None:
            # Large neighbourhoods: rejection sampling on the cumulative weights first.
            for _ in range(8):
                index = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
                node = items[min(index, len(items) - 1)][0]
                if node not in path and self.complexity[node] <= budget:
                    return node
            fits = [
                (node, weight)
                for node, weight in items
                if node not in path and self.complexity[node] <= budget
            ]
        if not fits:
            return None
        return rng.choices([node for node, _ in fits], weights=[w for _, w in fits])[0]

    def walk(
        self, rng: random.Random, low: int, high: int, target: int | None = None, *, tries: int = 8
    ) -> PolicySample:
        """One sample: start anywhere that fits, walk by edge weight until the target.

        A walk stuck below ``low`` (a start with too few neighbours) is retried from
        another start, up to ``tries`` times; the last try is kept, so a sample below the
        range only comes from a graph that cannot reach it.
        """
        target = rng.randint(low, high) if target is None else target
        starts = [node for node in self.nodes if self.complexity[node] <= target]
        path: list[str] = []
        total = 0
        for _ in range(tries):
            start = (
                rng.choice(starts) if starts else min(self.nodes, key=self.complexity.__getitem__)
            )
            path, total = [start], self.complexity[start]
            while total < target:
                # Prefer neighbours that land on the target; overshoot only up to the range's end.
                node = self._step(rng, path, target - total) or self._step(rng, path, high - total)
                if node is None:
                    break
                path.append(node)
                total += self.complexity[node]
            if total >= low:
                break
        return PolicySample(policies=tuple(path), complexity=total, target=target)

    def sample(
        self, count: int, *, seed: int | str = 0, complexity: tuple[int, int] = (5, 10)
    ) -> list[PolicySample]:
        """``count`` walks, reproducible for a seed, their difficulty spread over the range."""
        low, high = complexity
        if not 1 <= low <= high:
            raise ValueError(f"complexity range must be 1 <= low <= high, got {complexity}")
        rng = random.Random(f"walk:{seed}")
        levels = list(range(low, high + 1))
        reached: Counter[int] = Counter()
        samples = []
        for _ in range(count):
            # IntellAgent's balancing: targets favour the complexities reached least so far.
            target = rng.choices(levels, weights=[1 / (1 + reached[level]) for level in levels])[0]
            sample = self.walk(rng, low, high, target)
            reached[sample.complexity] += 1
            samples.append(sample)
        return samples

    # -- coverage ----------------------------------------------------------------------

    def coverage(
        self,
        *,
        k: int = 1,
        edge_threshold: float = 5.0,
        max_complexity: int | None = None,
    ) -> Coverage:
        """Greedy set cover: few samples with every policy >= k times, every heavy edge once.

        Each sample starts from the most-needed uncovered heavy edge (or policy) and grows
        by the neighbour (edge weight > 0, so samples stay realistic) that covers the most
        remaining needs while the summed complexity stays within ``max_complexity``.
        Deterministic: ties break by policy id.
        """
        cap = max_complexity if max_complexity is not None else math.inf
        need: Counter[str] = Counter({node: k for node in self.nodes})
        heavy: set[tuple[str, str]] = {
            edge for edge, weight in self.weights.items() if weight >= edge_threshold
        }
        uncovered: list[str] = []
        for node in self.nodes:
            if self.complexity[node] > cap:
                uncovered.append(
                    f"policy {node}: complexity {self.complexity[node]} > {max_complexity}"
                )
                del need[node]
        for a, b in sorted(heavy):
            if self.complexity[a] + self.complexity[b] > cap:
                uncovered.append(
                    f"edge {a}~{b}: complexity {self.complexity[a] + self.complexity[b]} > {max_complexity}"
                )
                heavy.discard((a, b))
        samples: list[PolicySample] = []
        while heavy or +need:
            if heavy:
                a, b = max(sorted(heavy), key=lambda e: need[e[0]] + need[e[1]])
                seed_nodes = [a, b]
            else:
                seed_nodes = [max(sorted(need), key=lambda n: need[n])]
            chosen = list(seed_nodes)
            total = sum(self.complexity[n] for n in chosen)
            while True:
                best, best_gain = None, 0
                candidates = {n for c in chosen for n, _ in self._neighbours[c]}
                for node in sorted(candidates - set(chosen)):
                    if total + self.complexity[node] > cap:
                        continue
                    gain = (1 if need[node] > 0 else 0) + sum(
                        1 for c in chosen if ((c, node) if c < node else (node, c)) in heavy
                    )
                    if gain > best_gain:
                        best, best_gain = node, gain
                if best is None:
                    break
                chosen.append(best)
                total += self.complexity[best]
            for node in chosen:
                if need[node] > 0:
                    need[node] -= 1
            for a, b in itertools.combinations(chosen, 2):
                heavy.discard((a, b) if a < b else (b, a))
            samples.append(PolicySample(policies=tuple(chosen), complexity=total, target=total))
        return Coverage(
            samples=samples,
            k=k,
            edge_threshold=edge_threshold,
            uncovered=uncovered,
            lower_bound=self.coverage_lower_bound(
                k=k, edge_threshold=edge_threshold, max_complexity=max_complexity
            ),
        )

    def coverage_lower_bound(
        self, *, k: int, edge_threshold: float, max_complexity: int | None
    ) -> int:
        """A bound no cover can beat, to judge the greedy cover against.

        A sample holding policy ``v`` has at most ``m_v`` members (the cheapest policies
        that fit beside it under ``max_complexity``), so it covers at most ``m_v - 1`` of
        v's heavy edges; v must be in at least ``need_v = max(k, ceil(deg_v / (m_v - 1)))``
        samples. A sample has at most ``m`` members, so there are at least
        ``ceil(sum(need_v) / m)`` samples.
        """
        cap = max_complexity if max_complexity is not None else math.inf
        cumulative = list(itertools.accumulate(sorted(self.complexity.values())))

        def members(budget: float) -> int:
            return bisect.bisect_right(cumulative, budget)

        most = max(1, members(cap))
        degree: Counter[str] = Counter()
        for (a, b), weight in self.weights.items():
            if weight >= edge_threshold and self.complexity[a] + self.complexity[b] <= cap:
                degree[a] += 1
                degree[b] += 1
        total_need = 0
        for node in self.nodes:
            if self.complexity[node] > cap:
                continue
            beside = max(1, members(cap - self.complexity[node]))
            total_need += max(k, math.ceil(degree[node] / beside))
        return math.ceil(total_need / most)


def difficulty_histogram(samples: Iterable[PolicySample]) -> list[str]:
    """Lines of a text histogram: how many samples per summed complexity."""
    counts = Counter(sample.complexity for sample in samples)
    if not counts:
        return ["no samples"]
    widest = max(counts.values())
    return [
        f"complexity {level:>3}: {counts[level]:>5} {'#' * max(1, round(40 * counts[level] / widest))}"
        for level in sorted(counts)
    ]


def random_graph(nodes: int, *, density: float, seed: int | str = 0) -> PolicyGraph:
    """A random graph for tests and benchmarks: complexities 1-10, weights 1-10."""
    rng = random.Random(f"graph:{seed}")
    ids = [f"p{index:04d}" for index in range(nodes)]
    weights = {
        (a, b): float(rng.randint(1, 10))
        for a, b in itertools.combinations(ids, 2)
        if rng.random() < density
    }
    return PolicyGraph({node: rng.randint(1, 10) for node in ids}, weights)


def policies_of(samples: Sequence[PolicySample]) -> Counter[str]:
    return Counter(policy for sample in samples for policy in sample.policies)


class ScoredEdge(BaseModel):
    policy: str
    weight: float = Field(ge=0, le=10)


class EdgeScores(BaseModel):
    """One model reply: how likely one policy meets each of the others (0-10)."""

    scores: list[ScoredEdge]


def llm_edge_weights(
    pack: PolicyPack, gateway: Gateway, *, cache_dir: Path | None = None
) -> dict[tuple[str, str], float]:
    """Edge weights scored by a model: at most one call per policy, cached by pack fingerprint.

    IntellAgent asks once per pair (n(n-1)/2 calls); here policy i is scored against all
    policies after it in one structured call, so n policies cost n-1 calls, and a second
    run of an unchanged pack (same fingerprint, same model) costs none. A pair the model
    leaves out keeps its derived weight.
    """
    model = gateway.config.model
    cache = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{pack.fingerprint}:{model}".encode()).hexdigest()[:16]
        cache = cache_dir / f"edges-{pack.domain}-{key}.json"
        if cache.exists():
            stored = json.loads(cache.read_text(encoding="utf-8"))
            return {(a, b): float(w) for a, b, w in stored["edges"]}
    policies = pack.policies
    asks = []
    for index, policy in enumerate(policies[:-1]):
        others = policies[index + 1 :]
        listing = "\n".join(f"- {o.id}: {o.description.strip()}" for o in others)
        asks.append(
            [
                {
                    "role": "system",
                    "content": "You estimate how likely two business policies of a "
                    "customer-service agent come up in the same conversation, from 0 (never) "
                    "to 10 (almost always). Answer with JSON only.",
                },
                {
                    "role": "user",
                    "content": f"Policy {policy.id}: {policy.description.strip()}\n\n"
                    f"Score it against each of these policies:\n{listing}\n\n"
                    'Reply as {"scores": [{"policy": "<id>", "weight": <0-10>}, ...]}.',
                },
            ]
        )

    from pytest_agentsim.llm.gateway import run_sync

    async def score_all() -> list[Any]:
        # The calls are independent: in flight together, up to the gateway's limit.
        return await asyncio.gather(*(gateway.astructured(m, EdgeScores) for m in asks))

    weights: dict[tuple[str, str], float] = {}
    for index, (scored, _) in enumerate(run_sync(score_all()) if asks else []):
        policy, others = policies[index], policies[index + 1 :]
        known = {o.id for o in others}
        for item in scored.scores:
            if item.policy in known:
                a, b = sorted((policy.id, item.policy))
                weights[(a, b)] = round(item.weight, 1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        edges = [[a, b, w] for (a, b), w in sorted(weights.items())]
        cache.write_text(json.dumps({"model": model, "edges": edges}, indent=1), encoding="utf-8")
    return weights
