"""No false verdicts from broken runs, no pass without evidence: the example, end to end.

The example's LLM configuration runs live against the fake server answering as the
scripted model that recorded its cassettes (``example_tests/scripted_llm.py``), as a team
would meet a flaky provider: a share of the user's and the agent's model calls fail
(status 500 on every attempt, so the gateway's retries give up and the conversation breaks
off). A broken conversation is evidence only up to the break, so the run may lose
verdicts but never gain a violation; and every event still ends as a passed, failed or
errored test. Then the other way round: a user or agent that only babbles, so that no
conversation reaches its goal, passes no test.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import ExampleRun

from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import RecordedRequest
from pytest_agentsim.llm.fake_server import Reply

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 32  # the example's hand-checked and generated events
TESTS = 37  # test_support.py's tests over them: one per event, five more on basic economy


@pytest.fixture(scope="module")
def scripted_model() -> ModuleType:
    """``example_tests/scripted_llm.py``: the scripted model behind the example's models."""
    import sys

    sys.path.insert(0, str(ROOT / "example_tests"))
    try:
        return importlib.import_module("scripted_llm")
    finally:
        sys.path.remove(str(ROOT / "example_tests"))


def share(request: RecordedRequest) -> float:
    """Where a request falls in [0, 1): the same for every attempt of one call."""
    text = json.dumps([request.model, request.messages], sort_keys=True)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


def failing(scripted: ModuleType, rate: float) -> Callable[[RecordedRequest], Reply]:
    """The scripted model, but ``rate`` of the user's and the agent's calls answer 500."""

    def reply(request: RecordedRequest) -> Reply:
        if request.model in ("airline-user", "airline-agent") and share(request) < rate:
            return Reply.server_error(500)
        reply: Reply = scripted.reply(request)
        return reply

    return reply


def run_live(
    run_example: ExampleRun,
    reply: Callable[[RecordedRequest], Reply],
    options: list[str],
    tmp_path: Path,
    name: str,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The example's event tests against the fake server; the output and the results file."""
    results = tmp_path / f"{name}.json"
    with FakeLLMServer(reply=reply) as server:
        run = run_example(
            *options,
            f"--agentsim-api-base={server.base_url}",
            "--agentsim-record-mode=all",
            f"--agentsim-cassettes={tmp_path / name}",
            f"--agentsim-json={results}",
            # Conversations wait on the model's retries: at once, they wait together.
            "--agentsim-concurrency=16",
            "-k",
            "test_support",
            "-p",
            "no:randomly",
        )
    assert run.returncode in (0, 1), run.stdout[-3000:] + run.stderr
    return run, json.loads(results.read_text())


def violations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (event["event"], item["policy"])
        for event in document["events"]
        for item in event["policies"]
        if item["outcome"] == "violated"
    }


def outcomes(run: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """pytest's final counts: {'failed': 7, 'passed': 25, ...}."""
    last = run.stdout.splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}


def test_failing_model_calls_never_add_a_violation(
    scripted_model: ModuleType, run_example: ExampleRun, tmp_path: Path
) -> None:
    options = scripted_model.llm_options()
    rates = (0.0, 0.3, 0.6)
    # Each run waits mostly on the gateway's backoff between retries: run them at once.
    with ThreadPoolExecutor(len(rates)) as pool:
        runs = dict(
            zip(
                rates,
                pool.map(
                    lambda rate: run_live(
                        run_example,
                        failing(scripted_model, rate),
                        options,
                        tmp_path,
                        f"rate{rate}",
                    ),
                    rates,
                ),
                strict=True,
            )
        )
    clean, baseline = runs[0.0]
    assert outcomes(clean) == {"failed": 7, "passed": 30, "deselected": 2}
    planted = violations(baseline)
    assert {policy for _, policy in planted} == {
        "refund-window",
        "confirm-before-write",
        "verify-identity",
    }
    # A breach that happened before the break is still a violation (the forbidden refund
    # of ev-bf44be, the unverified lookup of ev-425b75 are made before a call fails).
    assert violations(runs[0.3][1]), runs[0.3][0].stdout[-3000:]
    for rate in rates[1:]:
        run, document = runs[rate]
        out = run.stdout
        # Faults happened: conversations broke off, and their tests errored.
        errored = document["totals"]["errored_events"]
        assert errored >= 5, (rate, document["totals"])
        assert document["totals"]["by_kind"]["agent_crash"] == errored
        # Not one violation the fault-free run does not have: in the results file, in the
        # summary's lines, in the failure reports.
        assert violations(document) <= planted, rate
        shown = set(re.findall(r"^\s+VIOLATED\s+(ev-\w+) (\S+)(?: turn \d+)?:", out, re.M))
        assert shown <= planted, rate
        reported = set(re.findall(r"^(?:E\s+)?VIOLATED (\S+) \[", out, re.M))
        assert reported <= {policy for _, policy in planted}, rate
        # Nothing lost: every event is one record, and one passed, failed or errored test.
        assert len(document["events"]) == EVENTS
        counts = outcomes(run)
        assert counts.get("passed", 0) + counts.get("failed", 0) + counts.get("errors", 0) == (
            TESTS
        ), counts
        assert counts.get("errors", 0) >= errored, (counts, errored)
        assert f"{errored} could not be judged (" in out
        # What broke off says why, and names the break, not a violation.
        assert re.search(
            r"conversation: the conversation ended with (user|agent)_error before \S+", out
        ), out[-3000:]


def babble(scripted: ModuleType, role: str) -> Callable[[RecordedRequest], Reply]:
    """The scripted model, but the ``role`` ('user' or 'agent') only babbles."""
    lines = [
        "Did you know penguins can't fly?",
        "The weather is lovely today.",
        "I once had a goldfish named Bob.",
    ]

    def reply(request: RecordedRequest) -> Reply:
        if request.model == f"airline-{role}":
            turn = sum(message["role"] == "assistant" for message in request.messages)
            return Reply(lines[turn % len(lines)])
        answer: Reply = scripted.reply(request)
        return answer

    return reply


@pytest.mark.parametrize(
    ("role", "options", "ending"),
    [
        # An LLM user that never says what it wants, against the example's Python agent:
        # nothing stops it but the turn limit.
        ("user", ["--agentsim-user-model=openai/airline-user"], "max_turns"),
        # The built-in LLM agent babbling at the offline user, who asks again until it
        # would repeat itself a third time.
        ("agent", ["--agentsim-agent-model=openai/airline-agent"], "stalled"),
    ],
)
def test_a_babbling_conversation_that_never_reaches_its_goal_passes_no_test(
    scripted_model: ModuleType,
    run_example: ExampleRun,
    tmp_path: Path,
    role: str,
    options: list[str],
    ending: str,
) -> None:
    run, document = run_live(run_example, babble(scripted_model, role), options, tmp_path, role)
    unmet = [event for event in document["events"] if event["stop_reason"] == ending]
    assert len(unmet) >= 20, [event["stop_reason"] for event in document["events"]]
    for event in unmet:
        listed = [item for item in event["policies"] if item["listed"]]
        # Not one listed policy passes on garbage: each is inconclusive, not exercised.
        assert {item["outcome"] for item in listed} == {"inconclusive"}, event
        assert all(item["reason"].startswith("not exercised: ") for item in listed), event
        assert event["kind"] == "inconclusive"
    # The events that still end normally are those with no goal to miss (an agenda to
    # say, then goodbye); everything that could not reach its goal failed.
    others = {event["stop_reason"] for event in document["events"] if event not in unmet}
    assert others <= {"agenda_done"}, others
    assert outcomes(run).get("failed", 0) >= len(unmet)
    wording = {
        "max_turns": "the conversation ended at max_turns with the goal unmet",
        # It answered the babble by asking again, until it would a third time.
        "stalled": "the conversation stalled: the simulated user got no further after turn",
    }[ending]
    assert f"INCONCLUSIVE ev-0006 human-transfer: not exercised: {wording}" in re.sub(
        r"\s+", " ", run.stdout
    )
