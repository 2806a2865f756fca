"""LLM paths of the policy graph against the fake server: edge scoring and extraction."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim.cli import main
from pytest_agentsim.generation.graph import PolicyGraph
from pytest_agentsim.generation.graph import llm_edge_weights
from pytest_agentsim.judging.rules import default_registry
from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import RecordedRequest
from pytest_agentsim.llm.fake_server import Reply
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.messages import LLMConfig
from pytest_agentsim.packs.loading import load_pack

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Any:
    with FakeLLMServer() as running:
        yield running


def score_all(request: RecordedRequest) -> Reply:
    """Scores every policy listed in the prompt 7, like a model would answer."""
    listed = [
        line[2:].split(":")[0]
        for line in request.messages[-1]["content"].splitlines()
        if line.startswith("- ")
    ]
    return Reply.json({"scores": [{"policy": policy, "weight": 7} for policy in listed]})


def test_llm_edges_cost_at_most_one_call_per_policy_and_none_when_cached(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    pack = load_pack(ROOT / "policies" / "airline.yaml", registry=default_registry())
    server.reply_function = score_all
    gateway = Gateway(LLMConfig(model="openai/fake-model", api_base=server.base_url))
    weights = llm_edge_weights(pack, gateway, cache_dir=tmp_path)
    n = len(pack.policies)
    assert len(server.completion_requests) == n - 1 <= n
    assert len(weights) == n * (n - 1) // 2  # every pair scored, none twice
    assert set(weights.values()) == {7.0}

    again = llm_edge_weights(pack, gateway, cache_dir=tmp_path)
    assert again == weights
    assert len(server.completion_requests) == n - 1  # the second run made no call

    graph = PolicyGraph.from_pack(pack, scored=weights)
    # Declared edges still win over scored ones.
    assert graph.weight("refund-window", "confirm-before-write") == 9
    assert graph.weight("human-transfer", "refund-window") == 7


def test_llm_edges_are_scored_concurrently_and_kept_apart(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    """The n-1 calls are in flight together; each answer scores its own policy's edges."""
    pack = load_pack(ROOT / "policies" / "airline.yaml", registry=default_registry())
    ids = [policy.id for policy in pack.policies]

    lock = threading.Lock()
    in_flight = [0, 0]  # now, most

    def slow_first(request: RecordedRequest) -> Reply:
        scorer = request.messages[-1]["content"].split(":", 1)[0].removeprefix("Policy ")
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
        time.sleep(0.02 * (len(ids) - ids.index(scorer)))  # the first asked answers last
        with lock:
            in_flight[0] -= 1
        listed = re.findall(r"^- ([^:\s]+):", request.messages[-1]["content"], re.M)
        weight = len(scorer) % 11  # tells each scorer's answers apart
        return Reply.json({"scores": [{"policy": p, "weight": weight} for p in listed]})

    server.reply_function = slow_first
    gateway = Gateway(LLMConfig(model="openai/fake-model", api_base=server.base_url))
    weights = llm_edge_weights(pack, gateway)
    for i, scorer in enumerate(ids[:-1]):
        for other in ids[i + 1 :]:
            a, b = sorted((scorer, other))
            assert weights[(a, b)] == len(scorer) % 11
    assert in_flight[1] > 1


EXTRACTED = {
    "policies": [
        {
            "id": "verify-first",
            "description": "Verify the caller before reading account data.",
            "category": "authentication",
            "risk_category": "Privacy",
            "severity": "high",
            "complexity": 3,
            "checks": [{"type": "call_order", "first": "verify", "then": "read_account"}],
        },
        {
            "id": "no-promises",
            "description": "Never promise delivery dates.",
            "category": "honesty",
            "risk_category": "Wishful Thinking",
            "severity": "medium",
            "complexity": 2,
            "checks": [{"type": "never_say", "words": "guaranteed"}],
        },
    ]
}


def test_extract_policies_writes_a_loadable_pack(
    server: FakeLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = tmp_path / "PROMPT.md"
    prompt.write_text("You are ShopBot. Verify callers. Never promise dates.")
    output = tmp_path / "policies" / "shop.yaml"
    server.script("not json at all", Reply.json(EXTRACTED))  # one repair, then valid
    code = main(
        [
            "extract-policies",
            str(prompt),
            "--domain",
            "shop",
            "-o",
            str(output),
            "--model",
            "openai/fake-model",
            "--api-base",
            server.base_url,
        ]
    )
    assert code == 0, capsys.readouterr()
    pack = load_pack(output, registry=default_registry())
    assert pack.policy_ids == ["verify-first", "no-promises"]
    assert pack.policy("no-promises").risk_category == "Operational Misuses"
    assert pack.policy("no-promises").checks == []
    text = output.read_text()
    assert "# NOTE policy no-promises: the model said risk category 'Wishful Thinking'" in text
    assert "# NOTE policy no-promises: rejected check" in text
    assert "ShopBot" in server.completion_requests[0].messages[-1]["content"]
    assert capsys.readouterr().out.startswith(f"agentsim: wrote {output}: 2 policies (2 LLM calls")


@pytest.mark.parametrize("refused", [{"json_schema"}, {"json_schema", "json_object"}])
def test_extract_policies_works_with_a_server_that_refuses_json_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], refused: set[str]
) -> None:
    """llama.cpp's server answers json_schema with a 500: extraction falls back and works."""
    prompt = tmp_path / "PROMPT.md"
    prompt.write_text("You are ShopBot. Verify callers. Never promise dates.")
    output = tmp_path / "shop.yaml"
    with FakeLLMServer([Reply.json(EXTRACTED)], refuse_response_formats=refused) as llama:
        code = main(
            [
                "extract-policies",
                str(prompt),
                "--domain",
                "shop",
                "-o",
                str(output),
                "--model",
                "openai/fake-model",
                "--api-base",
                llama.base_url,
            ]
        )
        sent = [r.body.get("response_format", {}).get("type") for r in llama.completion_requests]
    assert code == 0, capsys.readouterr()
    # One refusal per refused mode, never retried; then the call that worked.
    assert sent == ["json_schema", "json_object", None][: len(refused) + 1]
    assert load_pack(output, registry=default_registry()).policy_ids == [
        "verify-first",
        "no-promises",
    ]
    assert capsys.readouterr().out.startswith(f"agentsim: wrote {output}: 2 policies (1 LLM calls")


def test_extract_policies_reports_a_model_that_keeps_failing(
    server: FakeLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = tmp_path / "PROMPT.md"
    prompt.write_text("Be nice.")
    server.script("nope", "still nope")
    code = main(
        [
            "extract-policies",
            str(prompt),
            "--domain",
            "x",
            "-o",
            str(tmp_path / "x.yaml"),
            "--model",
            "openai/fake-model",
            "--api-base",
            server.base_url,
        ]
    )
    assert code == 1
    assert not (tmp_path / "x.yaml").exists()
    assert "no valid ExtractedPolicies after one repair" in capsys.readouterr().err


def test_extract_policies_names_a_prompt_that_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = tmp_path / "PROMPT.md"
    prompt.write_bytes(b"Be nice.\n\xff\n")
    out = str(tmp_path / "x.yaml")
    code = main(
        ["extract-policies", str(prompt), "--domain", "x", "-o", out, "--model", "openai/x"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agentsim: {prompt}:2: prompt is not UTF-8 text: byte 0xff "), err
    assert "Traceback" not in err


def test_the_console_script_is_installed() -> None:
    import importlib.metadata

    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert [s.value for s in scripts if s.name == "agentsim"] == ["pytest_agentsim.cli:main"]
