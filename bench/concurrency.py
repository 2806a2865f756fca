"""Benchmark: how a run with model roles scales with --agentsim-concurrency on a slow model.

Builds a throwaway product repo of ``--events`` events (a notes agent in Python, the LLM
user and the LLM judge on the fake OpenAI-compatible server on loopback, every answer
``--latency`` seconds late) and runs ``pytest --agentsim`` recording fresh cassettes at
each concurrency C, then replaying them (which must make 0 requests). For each C:

- efficiency: the ideal time (calls x latency / C: every slot always waiting on the model)
  over the time the model was busy (the server's first request to its last answer), so
  pytest's start-up is left out; the target at C = 64 is >= 0.8;
- CPU per call: the run's CPU time less its replay's, over the calls made (what a real
  call costs the client beyond replaying it), and the run's CPU time overall and that of
  the simulations (one event loop, so one core: from the end of collection to the end of
  the first test's setup, which simulates every event at once when C > 1);
- CPU bound: ideal time over that simulation CPU time, the efficiency the client allows
  with a core to itself (wall-clock efficiency also pays for other processes' load);
- peak RSS of the pytest process (``resource.getrusage``);
- and, as the floor every row stands on, litellm by itself: the same number of calls at
  the same concurrency made with ``litellm.acompletion`` and nothing else, its CPU per call,
  and the efficiency one core allows at that CPU per call (latency / (C x CPU per call)),
  so what litellm costs and what pytest-agentsim adds are told apart.

Every pytest run is a child process, so its CPU time and peak RSS are its own; CPU time is
what to compare on a shared machine, wall time (and so efficiency) suffers from load.

    python bench/concurrency.py [--events 128] [--events-at-1 32] [--latency 0.2]
                                [--concurrency 1 8 32 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from pytest_agentsim import FakeLLMServer
from pytest_agentsim import RecordedRequest
from pytest_agentsim import Reply

PACK = """\
domain: notes
database: ../fixtures/db/notes.json
policies:
  - id: polite-greeting
    description: Greet the user.
    category: tone
    risk_category: Deception
    severity: low
    complexity: 1
    checks:
      - {type: text_matches, pattern: '(?i)hello'}
  - id: no-secrets
    description: Never read out a note marked secret.
    category: confidentiality
    risk_category: Privacy
    severity: critical
    complexity: 2
    checks:
      - {type: text_not_matches, pattern: 'TOP-SECRET'}
"""

CONFTEST = """\
import pytest

def read_note(db: dict, name: str) -> str:
    '''Read a note.

    Args:
        name: The note's name.
    '''
    return db["notes"].get(name, "no such note")

class NotesAgent:
    def respond(self, messages, sandbox):
        return "Hello! How can I help with your notes?"

@pytest.fixture(scope="session")
def agentsim_agent():
    return NotesAgent()

@pytest.fixture(scope="session")
def agentsim_tools():
    return [read_note]
"""

TEST_FILE = """\
def test_agent(agentsim_conversation):
    agentsim_conversation.assert_compliant()
"""

#: Runs pytest in this (child) process and writes its CPU time (all of it, and that of
#: the simulations: from the end of collection to the end of the first test's setup, which
#: simulates every event at once with --agentsim-concurrency above 1, else to the end) and
#: peak RSS as JSON. litellm is imported first: its seconds count in the total only.
CHILD = """\
import json, resource, sys, time, pytest
import litellm
class Clock:
    collected = 0.0
    simulated = None
    def pytest_collection_finish(self):
        Clock.collected = time.process_time()
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        yield
        if Clock.simulated is None:
            Clock.simulated = time.process_time()
concurrent = any(a.startswith("--agentsim-concurrency=") and a[23:] != "1" for a in sys.argv)
code = pytest.main(sys.argv[2:], plugins=[Clock()])
end = Clock.simulated if concurrent and Clock.simulated else time.process_time()
usage = resource.getrusage(resource.RUSAGE_SELF)
with open(sys.argv[1], "w") as out:
    json.dump({"code": int(code), "cpu": usage.ru_utime + usage.ru_stime,
               "run_cpu": end - Clock.collected, "rss_kib": usage.ru_maxrss}, out)
"""


#: litellm by itself, in a child process: one warm-up call (the client is made and cached),
#: then ``calls`` calls at most ``concurrency`` at once; prints the CPU seconds they took.
LITELLM_ALONE = """\
import asyncio, json, sys, time
import litellm
base, calls, concurrency, model = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
messages = [{"role": "system", "content": "You are role-playing a customer. " * 40},
            {"role": "user", "content": "Hello! How can I help with your notes?"}]
async def one(slots):
    async with slots:
        await litellm.acompletion(model=model, api_base=base, api_key="sk-bench",
                                  messages=messages)
async def main():
    slots = asyncio.Semaphore(concurrency)
    await one(slots)
    started = time.process_time()
    await asyncio.gather(*(one(slots) for _ in range(calls)))
    return time.process_time() - started
print(json.dumps({"cpu": asyncio.run(main())}))
"""


def litellm_alone(
    calls: int, concurrency: int, latency: float, env: dict[str, str], model_name: str
) -> float:
    """CPU seconds per call of ``calls`` bare litellm calls at ``concurrency``."""
    server = FakeLLMServer(
        reply=lambda request: Reply("Thanks, that is all."), latency=latency, keep_alive=True
    )
    with server as fake:
        arguments = [fake.base_url, str(calls), str(concurrency), model_name]
        done = subprocess.run(
            [sys.executable, "-c", LITELLM_ALONE, *arguments],
            env=env,
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise SystemExit(f"litellm alone failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["cpu"]) / calls


def write_product(root: Path, events: int) -> None:
    items = "".join(
        textwrap.dedent(
            f"""\
              - id: ev-{n:04d}
                policies: [polite-greeting, no-secrets]
                user:
                  goal:
                    requests:
                      - {{slot: note, text: "read note n{n}", done_when: "(?i)hello"}}
                  agenda:
                    - {{act: say, text: "read note n{n}"}}
            """
        )
        for n in range(events)
    )
    notes = {f"n{n}": f"note {n}" for n in range(events)}
    files = {
        "pytest.ini": "[pytest]\nagentsim_packs = policies/notes.yaml\n"
        "agentsim_events = fixtures/events/notes.yaml\n",
        "policies/notes.yaml": PACK,
        "fixtures/events/notes.yaml": f"version: 1\ndomain: notes\nevents:\n{items}",
        "fixtures/db/notes.json": json.dumps({"notes": notes}),
        "conftest.py": CONFTEST,
        "test_agent.py": TEST_FILE,
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def model(request: RecordedRequest) -> Reply:
    """The user (says its request, then stops) and the judge (compliant on every policy)."""
    system = str(request.messages[0].get("content") or "")
    if "role-playing a customer" in system:
        if any(message.get("role") == "assistant" for message in request.messages):
            return Reply("Thanks, that is all. ###STOP###")
        situation = json.loads(system.split("Your situation (JSON):\n", 1)[1])
        plan = situation.get("bring_up_in_order") or [{"say": "hello"}]
        return Reply(str(plan[0]["say"]))
    if "compliance auditor" in system:
        text = str(request.messages[-1].get("content") or "")
        block = text.split("Policies to judge:\n", 1)[1].split("\n\n", 1)[0]
        policies = [line[2:].split(":", 1)[0] for line in block.splitlines()]
        verdicts = [
            {"policy_id": p, "outcome": "compliant", "turn": 0, "quote": "", "reason": "ok"}
            for p in policies
        ]
        return Reply.json({"verdicts": verdicts})
    return Reply.server_error()


def run_pytest(root: Path, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One pytest run in a child process: its exit code, CPU seconds, peak RSS, wall time."""
    stats = root / "stats.json"
    stats.unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(stats), "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if not stats.exists():
        raise SystemExit(f"pytest did not finish:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(stats.read_text())
    result["wall"] = wall
    result["tail"] = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
    return result


def measure(
    concurrency: int,
    events: int,
    latency: float,
    env: dict[str, str],
    keep_alive: bool = True,
    model_name: str = "openai/gpt-4o-mini",
) -> dict[str, Any]:
    """Record at ``concurrency``, then replay: the figures of one row."""
    server = FakeLLMServer(reply=model, latency=latency, keep_alive=keep_alive)
    with tempfile.TemporaryDirectory() as tmp, server as fake:
        root = Path(tmp)
        write_product(root, events)
        base = [
            "--agentsim",
            f"--agentsim-user-model={model_name}",
            f"--agentsim-judge-model={model_name}",
            f"--agentsim-api-base={fake.base_url}",
            f"--agentsim-concurrency={concurrency}",
        ]
        record = run_pytest(root, [*base, "--agentsim-record-mode=once"], env)
        calls = len(fake.completion_requests)
        busy = fake.busy_seconds
        most = fake.max_in_flight
        fake.reset()
        replay = run_pytest(root, [*base, "--agentsim-record-mode=none"], env)
        replayed_requests = len(fake.completion_requests)
    ideal = calls * latency / concurrency
    return {
        "concurrency": concurrency,
        "events": events,
        "calls": calls,
        "max_in_flight": most,
        "ideal_s": ideal,
        "busy_s": busy,
        "wall_s": record["wall"],
        "efficiency": ideal / busy if busy else 0.0,
        "cpu_s": record["cpu"],
        "run_cpu_s": record["run_cpu"],
        # The efficiency one free core would allow: the simulations cannot take less than
        # the CPU time they need (one event loop), whatever the machine's load.
        "cpu_bound": min(1.0, ideal / record["run_cpu"]) if record["run_cpu"] else 1.0,
        "replay_cpu_s": replay["cpu"],
        "cpu_ms_per_call": 1000 * (record["cpu"] - replay["cpu"]) / max(calls, 1),
        "peak_rss_mib": record["rss_kib"] / 1024,
        "replay_requests": replayed_requests,
        "exit_codes": (record["code"], replay["code"]),
        "outcome": record["tail"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=128)
    parser.add_argument(
        "--events-at-1",
        type=int,
        default=32,
        help="events for the C=1 row (one call at a time: its efficiency needs no more)",
    )
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--model",
        default="openai/gpt-4o-mini",
        help="the model name the roles ask the fake server for: one litellm prices, as a "
        "real run's are (a name it does not know costs litellm a search of its price map "
        "on every call)",
    )
    parser.add_argument(
        "--close",
        action="store_true",
        help="a new connection per call (the fake server's default in tests); by default "
        "connections are kept open, as providers do",
    )
    parser.add_argument(
        "--code", type=Path, help="a checkout whose pytest_agentsim to measure (a before/after)"
    )
    args = parser.parse_args()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION"}
    if args.code:
        env["PYTHONPATH"] = str(args.code.resolve())
    print(
        f"concurrency: {args.events} events, user + judge ({args.model}) on the fake server at "
        f"{args.latency * 1000:.0f} ms, connections "
        f"{'closed after each call' if args.close else 'kept open'} ({os.cpu_count()} CPUs)"
    )
    print(
        "     C  calls  in-flight  ideal s  busy s  wall s  efficiency  CPU s  run CPU s  "
        "CPU bound  CPU ms/call  peak RSS MiB  replay requests"
    )
    rows = []
    for concurrency in args.concurrency:
        row = measure(
            concurrency,
            args.events_at_1 if concurrency == 1 else args.events,
            args.latency,
            env,
            keep_alive=not args.close,
            model_name=args.model,
        )
        rows.append(row)
        print(
            f"  {row['concurrency']:4d}  {row['calls']:5d}  {row['max_in_flight']:9d}  "
            f"{row['ideal_s']:7.1f}  {row['busy_s']:6.1f}  {row['wall_s']:6.1f}  "
            f"{row['efficiency']:10.2f}  {row['cpu_s']:5.1f}  {row['run_cpu_s']:9.1f}  "
            f"{row['cpu_bound']:9.2f}  {row['cpu_ms_per_call']:11.1f}  "
            f"{row['peak_rss_mib']:12.0f}  {row['replay_requests']:15d}",
            flush=True,
        )
    widest = max(rows, key=lambda row: row["concurrency"])
    alone = litellm_alone(widest["calls"], widest["concurrency"], args.latency, env, args.model)
    ours = widest["run_cpu_s"] / max(widest["calls"], 1)
    ceiling = min(1.0, args.latency / (widest["concurrency"] * alone))
    print(
        f"  litellm alone, {widest['calls']} calls at C={widest['concurrency']}: "
        f"{alone * 1000:.1f} ms CPU per call, so one core allows at most efficiency "
        f"{ceiling:.2f} at C={widest['concurrency']} and {args.latency * 1000:.0f} ms; "
        f"a simulated call costs {ours * 1000:.1f} ms "
        f"({(ours - alone) * 1000:.1f} ms of it pytest-agentsim's: the user, the judge, "
        "the cassette, the event loop)"
    )
    efficiency = widest["efficiency"]
    if widest["concurrency"] == 64:
        verdict = (
            "meets it"
            if efficiency >= 0.8
            else f"misses by {0.8 - efficiency:.2f}: the simulations run on one event loop, "
            f"so one core, and their CPU allows at most {widest['cpu_bound']:.2f}; litellm's "
            f"own CPU per call alone allows {ceiling:.2f}"
        )
        print(f"  target >= 0.8 at C=64: {efficiency:.2f}, {verdict}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    own = resource.getrusage(resource.RUSAGE_SELF)
    load = os.getloadavg()[0]
    print(f"  (the fake server's own CPU: {own.ru_utime + own.ru_stime:.1f} s; load {load:.1f})")


if __name__ == "__main__":
    main()
