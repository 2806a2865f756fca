"""The example's LLM configuration: LLM user, judge and agent from committed cassettes.

Offline, the suite replays ``fixtures/cassettes/airline/`` with zero HTTP requests. Live,
against the fake server answering as the scripted model that recorded them, it makes
exactly the recorded requests and writes the same files again.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from conftest import ExampleRun

from pytest_agentsim.llm.fake_server import FakeLLMServer

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "fixtures" / "cassettes" / "airline"
PLANTED = {"refund-window", "confirm-before-write", "verify-identity"}


@pytest.fixture
def scripted_model(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``example_tests/scripted_llm.py``, importable only once its directory is on the path.

    Imported by name at run time, so type checkers (which cannot see that path) are not
    asked to find it; its functions are used as the module's attributes.
    """
    monkeypatch.syspath_prepend(str(ROOT / "example_tests"))
    return importlib.import_module("scripted_llm")


def interactions(path: Path) -> int:
    return len(yaml.safe_load(path.read_text())["interactions"])


def test_llm_configuration_replays_offline_with_zero_requests(
    scripted_model: ModuleType, run_example: ExampleRun
) -> None:
    with FakeLLMServer() as server:  # reachable, so a request would be seen, not refused
        run = run_example(*scripted_model.llm_options(server.base_url))
        assert server.requests == []
    out = run.stdout
    assert run.returncode == 1, out[-3000:] + run.stderr
    assert re.search(r"\b7 failed, 32 passed\b", out.splitlines()[-1]), out[-500:]
    violated = set(re.findall(r"^\s+VIOLATED\s+ev-\w+ (\S+) turn \d+:", out, re.M))
    assert violated == PLANTED
    recorded = sum(interactions(path) for path in CASSETTES.glob("ev-*.yaml"))
    # The simulated_user tests' conversations (their cassettes are named after the tests).
    driven = sum(interactions(path) for path in CASSETTES.glob("test_*-run*.yaml"))
    assert driven > 0
    assert (
        f"0 tokens in 0 LLM calls, {recorded + driven} replayed from cassettes "
        f"({driven} of them in simulated_user tests)"
    ) in out
    assert "ERROR" not in out
    assert "litellm" not in run.stderr  # nothing was imported to make a call


def test_llm_configuration_live_makes_the_recorded_requests(
    scripted_model: ModuleType, run_example: ExampleRun, tmp_path: Path
) -> None:
    events = ["ev-0002", "ev-0007"]
    with FakeLLMServer(reply=scripted_model.reply) as server:
        run = run_example(
            *scripted_model.llm_options(server.base_url),
            "--agentsim-record-mode=all",
            f"--agentsim-cassettes={tmp_path}",
            "-k",
            " or ".join(events),
        )
        requests = len(server.completion_requests)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr
    assert requests == sum(interactions(CASSETTES / f"{event}.yaml") for event in events)
    for event in events:
        rerecorded = (tmp_path / "airline" / f"{event}.yaml").read_text()
        assert rerecorded == (CASSETTES / f"{event}.yaml").read_text(), event
    assert re.search(rf"[\d,]+ tokens in {requests} LLM calls", run.stdout)
