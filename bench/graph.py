"""Benchmark: sampling policy combinations from the policy graph.

1. 10,000 seeded walks on a random 1,000-policy graph (target: <= 2 CPU-s; CPU time, as
   wall time fails on a loaded machine).
2. Coverage mode on a random 200-policy graph: samples built vs the lower bound.

    python bench/graph.py
"""

from __future__ import annotations

import time

from pytest_agentsim import random_graph


def main() -> None:
    graph = random_graph(1000, density=0.05, seed=1)
    start = time.process_time()
    samples = graph.sample(10_000, seed=7, complexity=(5, 15))
    walk_seconds = time.process_time() - start
    in_range = sum(5 <= s.complexity <= 15 for s in samples) / len(samples)
    print(f"walk: 10,000 samples, 1,000 policies, {len(graph.weights):,} edges")
    print(
        f"  {walk_seconds:.2f} CPU-s; ratio to the 2 s target: {walk_seconds / 2:.2f} (<= 1 passes)"
    )
    print(f"  samples within the complexity range: {in_range:.1%}")

    graph = random_graph(200, density=0.1, seed=2)
    for k, threshold in ((1, 8.0), (2, 7.0)):
        start = time.process_time()
        result = graph.coverage(k=k, edge_threshold=threshold, max_complexity=20)
        seconds = time.process_time() - start
        print(
            f"coverage k={k}, edges >= {threshold:g}, complexity <= 20: {len(result.samples)} samples, "
            f"lower bound {result.lower_bound}, ratio {len(result.samples) / result.lower_bound:.1f}, "
            f"{seconds:.2f} s, uncovered {len(result.uncovered)}"
        )


if __name__ == "__main__":
    main()
