"""Benchmark: event generation with a model, one sample at a time vs four at a time.

A model's latency, not CPU, decides how long generation takes. Against the fake
OpenAI-compatible server answering after 100 ms, the same 12 events are generated with
``concurrency`` 1 and 4 (``--agentsim-concurrency``); the snapshots must be identical.

    python bench/generate.py
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

from pytest_agentsim import FakeLLMServer
from pytest_agentsim import Gateway
from pytest_agentsim import LLMConfig
from pytest_agentsim import RecordedRequest
from pytest_agentsim import Reply
from pytest_agentsim import default_registry
from pytest_agentsim import load_pack
from pytest_agentsim import regenerate

LATENCY = 0.1
POLICIES = ["greet", "verify", "refund-limit", "open-orders", "no-codes", "handoff"]
PACK = (
    "domain: shop\ndatabase: shop.json\npolicies:\n"
    + "".join(
        f"  - {{id: {p}, description: Policy {p} of the shop., category: c{i % 3}, "
        f"risk_category: Operational Misuses, severity: medium, complexity: {1 + i % 3}}}\n"
        for i, p in enumerate(POLICIES)
    )
    + "generation: {count: 12, complexity: [2, 6]}\n"
)


def reply(request: RecordedRequest) -> Reply:
    time.sleep(LATENCY)
    prompt = request.messages[-1]["content"]
    if request.messages[0]["content"].startswith("You estimate how likely"):
        listed = re.findall(r"^- ([^:\s]+):", prompt, re.M)
        return Reply.json({"scores": [{"policy": p, "weight": 6} for p in listed]})
    policies = re.findall(r"^- `([^`]+)`", request.messages[1]["content"], re.M)
    seen = prompt.split("## Already written")[-1].count("\n- ") if "## Already" in prompt else 0
    return Reply.json(
        {
            "scenario": f"Case {seen} of {'+'.join(policies)}.",
            "facts": {"order_id": "o1"},
            "opening": "Hello, about order o1.",
            "policies": policies,
        }
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, FakeLLMServer(reply=reply) as server:
        root = Path(directory)
        (root / "shop.json").write_text(json.dumps({"orders": {"o1": {"total": 5}}}))
        (root / "shop.yaml").write_text(PACK)
        pack = load_pack(root / "shop.yaml", registry=default_registry())
        seconds = {}
        for concurrency in (1, 4):
            gateway = Gateway(LLMConfig(model="openai/bench", api_base=server.base_url))
            start = time.perf_counter()
            regenerate(
                {"shop": pack},
                {"shop": root / f"c{concurrency}.yaml"},
                registry=default_registry(),
                seed=1,
                gateway_for=lambda _pack, gateway=gateway: gateway,
                concurrency=concurrency,
            )
            seconds[concurrency] = time.perf_counter() - start
        same = (root / "c1.yaml").read_bytes() == (root / "c4.yaml").read_bytes()
    print(f"generation: 12 events, 6 policies, model latency {LATENCY * 1000:.0f} ms per call")
    print(f"  concurrency 1: {seconds[1]:.2f} s; concurrency 4: {seconds[4]:.2f} s")
    print(f"  ratio 4/1: {seconds[4] / seconds[1]:.2f} (lower is better); same snapshot: {same}")


if __name__ == "__main__":
    main()
