"""Benchmark: recording many calls into one cassette (a pack's event generation).

Every recorded call is written at once (atomically), so an interrupted run loses nothing.
Writing must not grow with the cassette: the last calls of 400 (10 KB prompts, as event
generation sends) should cost about what the first ones did.

    python bench/cassette.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pytest_agentsim import Cassette
from pytest_agentsim import LLMRequest
from pytest_agentsim import LLMResponse

CALLS = 400
WINDOW = 50
PROMPT = "\n".join(f'- record r{n}: {{"name": "customer {n}", "tier": "gold"}}' for n in range(200))


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        cassette = Cassette(Path(directory) / "_generation.yaml", "all")
        seconds = []
        for n in range(CALLS):
            request = LLMRequest(
                model="openai/bench",
                messages=[{"role": "user", "content": f"event {n}\n{PROMPT}"}],
                purpose="events",
            )
            response = LLMResponse(
                message={"role": "assistant", "content": '{"scenario": "x"}'},
                model="openai/bench",
            )
            start = time.process_time()
            cassette.record(request, response)
            seconds.append(time.process_time() - start)
        size = cassette.path.stat().st_size
    first = sum(seconds[:WINDOW]) / WINDOW
    last = sum(seconds[-WINDOW:]) / WINDOW
    print(f"cassette: {CALLS} recorded calls, {size / 1e6:.1f} MB file")
    print(f"  first {WINDOW}: {first * 1000:.1f} ms per call; last {WINDOW}: {last * 1000:.1f} ms")
    print(f"  ratio last/first: {last / first:.2f} (target <= 3: writing does not grow with n)")


if __name__ == "__main__":
    main()
