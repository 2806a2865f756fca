"""Benchmark: the offline hot path (no model anywhere), at 1,000 events.

A throwaway repo holds the example airline pack, agent and tools, an events file of
1,000 events (the example's hand-written events, repeated under new ids) and a seed
database: the example's (1.5 KB), or the same grown to several MB with generated users
and reservations. Each figure is measured in this run, as CPU time of the pytest
process (user + system of the child; the machine may be shared), against a bare
``@pytest.mark.parametrize`` test of as many cases:

- events per CPU-second, and the ratio to the bare test (targets >= 100/s, <= 10x);
- the per-event overhead of a multi-MB database: (CPU on the big database - CPU on the
  small one) / events (target <= 50 ms), and peak RSS at 250 and 1,000 events (flat):
  the growth per event between the two, next to the bare test's growth per test between
  250 and 1,000 cases (what pytest itself keeps of each test);
- ``-n 2`` against one process on 1,000 events (wall time: the point is two cores;
  target >= 1.6x).

    python bench/offline.py [--events 1000] [--db-mb 5] [--no-xdist]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    cpu: float
    wall: float
    rss_mb: float
    tail: str


def run_pytest(args: list[str], cwd: Path) -> Run:
    """One pytest process: its CPU time (children included), wall time and peak RSS (of
    the pytest process itself: xdist workers are not counted)."""
    code = (
        "import resource, sys, pytest\n"
        "status = pytest.main(sys.argv[1:])\n"
        "self = resource.getrusage(resource.RUSAGE_SELF)\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        # ru_maxrss survives exec on Linux (a child starts at its parent's peak): the
        # process's own high-water mark is VmHWM.
        "peak = self.ru_maxrss\n"
        "try:\n"
        "    status = open('/proc/self/status').read()\n"
        "    peak = int(status.split('VmHWM:')[1].split()[0])\n"
        "except (OSError, IndexError, ValueError):\n"
        "    pass\n"
        "print(f'@@cpu {self.ru_utime + self.ru_stime + kids.ru_utime + kids.ru_stime} {peak}')\n"
        "sys.exit(status)\n"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONHASHSEED": "0"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - start
    line = next((s for s in done.stdout.splitlines() if s.startswith("@@cpu")), None)
    if line is None or done.returncode not in (0, 1):
        raise SystemExit(
            f"pytest {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    _, cpu, rss_kb = line.split()
    tail = [s for s in done.stdout.splitlines() if s and not s.startswith("@@")][-1]
    return Run(float(cpu), wall, int(rss_kb) / 1024, tail)


def big_database(seed_db: dict, megabytes: float) -> dict:
    """The example's seed database with generated users and reservations up to ``megabytes``."""
    db = json.loads(json.dumps(seed_db))
    template = next(iter(db["reservations"].values()))
    n = 0
    while len(json.dumps(db)) < megabytes * 1_000_000:
        for _ in range(500):
            user = f"user_{n:06d}"
            db["users"][user] = {
                "name": f"Traveller {n}",
                "zip_code": f"{10000 + n % 89999}",
                "email": f"traveller{n}@example.com",
                "phone": f"+1-555-{n:07d}",
                "membership": ("gold", "silver", "regular")[n % 3],
                "saved_payment_methods": [{"id": f"card_{n}", "brand": "visa", "last4": "4242"}],
            }
            db["reservations"][f"R{n:06d}"] = {
                **template,
                "user_id": user,
                "passengers": [{"first_name": "Pat", "last_name": f"Doe{n}", "dob": "1990-01-01"}],
            }
            n += 1
    return db


def make_repo(root: Path, events: int, db: dict) -> None:
    """The example product repo, reduced to one test over ``events`` events."""
    for name in ("airline_agent.py", "airline_tools.py", "conftest.py"):
        shutil.copy(ROOT / "example_tests" / name, root / name)
    shutil.copytree(ROOT / "example_tests" / "prompts", root / "prompts")
    (root / "db").mkdir()
    (root / "db" / "airline.json").write_text(json.dumps(db, indent=1))
    pack = yaml.safe_load((ROOT / "policies" / "airline.yaml").read_text())
    pack["database"] = "db/airline.json"
    (root / "airline.yaml").write_text(yaml.safe_dump(pack, sort_keys=False))
    base = yaml.safe_load((ROOT / "fixtures" / "events" / "airline.yaml").read_text())["events"]
    out = []
    for n in range(events):
        event = json.loads(json.dumps(base[n % len(base)]))
        event["id"] = f"{event['id']}-{n:05d}"
        out.append(event)
    (root / "events.yaml").write_text(
        yaml.safe_dump({"version": 1, "domain": "airline", "events": out}, sort_keys=False)
    )
    (root / "pytest.ini").write_text(
        "[pytest]\nagentsim_packs = airline.yaml\nagentsim_events = events.yaml\n"
        "agentsim_seed = 0\nagentsim_max_turns = 12\n"
    )
    (root / "test_events.py").write_text(
        "from pytest_agentsim import EventResult\n\n\n"
        "def test_support(agentsim_conversation: EventResult) -> None:\n"
        "    agentsim_conversation.assert_compliant()\n"
    )


def make_bare(root: Path, cases: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_bare.py").write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('case', range({cases}))\n"
        "def test_bare(case: int) -> None:\n"
        "    assert case == case\n"
    )


def measure(events: int, db_mb: float, xdist: bool) -> dict[str, float]:
    """Every figure of the offline hot path, printed as it is measured."""
    seed = json.loads((ROOT / "fixtures" / "db" / "airline.json").read_text())
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        small, big, bare = Path(tmp, "small"), Path(tmp, "big"), Path(tmp, "bare")
        quarter, bare_quarter = Path(tmp, "quarter"), Path(tmp, "bare_quarter")
        for path in (small, big, bare, quarter, bare_quarter):
            path.mkdir()
        big_db = big_database(seed, db_mb)
        make_repo(small, events, seed)
        make_repo(big, events, big_db)
        make_repo(quarter, events // 4, big_db)
        make_bare(bare, events)
        make_bare(bare_quarter, events // 4)
        size = (big / "db" / "airline.json").stat().st_size / 1e6
        plugin = ["--agentsim", "-p", "no:randomly"]
        bare_run = run_pytest([], bare)
        small_run = run_pytest(plugin, small)
        big_run = run_pytest(plugin, big)
        quarter_run = run_pytest(plugin, quarter)
        bare_quarter_run = run_pytest([], bare_quarter)
        more = events - events // 4
        figures["events_per_cpu_s"] = events / small_run.cpu
        figures["ratio_to_bare"] = small_run.cpu / bare_run.cpu
        figures["db_mb"] = size
        figures["overhead_ms"] = (big_run.cpu - small_run.cpu) / events * 1000
        figures["rss_quarter_mb"] = quarter_run.rss_mb
        figures["rss_mb"] = big_run.rss_mb
        figures["rss_small_mb"] = small_run.rss_mb
        # KiB more peak RSS per event (per test) from events // 4 to events.
        figures["rss_kib_per_event"] = (big_run.rss_mb - quarter_run.rss_mb) * 1024 / more
        figures["bare_rss_kib_per_test"] = (bare_run.rss_mb - bare_quarter_run.rss_mb) * 1024 / more
        print(f"offline: {events} events, example agent and tools, one test per event")
        print(f"  bare parametrized test: {bare_run.cpu:.2f} CPU-s ({bare_run.tail})")
        print(f"  agentsim, 1.5 KB database: {small_run.cpu:.2f} CPU-s ({small_run.tail})")
        print(
            f"  events per CPU-second: {figures['events_per_cpu_s']:.0f} (target >= 100); "
            f"ratio to the bare test: {figures['ratio_to_bare']:.1f} (target <= 10)"
        )
        print(
            f"  {size:.1f} MB database: {big_run.cpu:.2f} CPU-s; per-event overhead "
            f"{figures['overhead_ms']:.1f} ms (target <= 50)"
        )
        print(
            f"  peak RSS: {small_run.rss_mb:.0f} MiB (1.5 KB db, {events} events); "
            f"{quarter_run.rss_mb:.0f} MiB ({size:.1f} MB db, {events // 4} events); "
            f"{big_run.rss_mb:.0f} MiB ({size:.1f} MB db, {events} events)"
        )
        print(
            f"  peak RSS growth from {events // 4} to {events} events: "
            f"{figures['rss_kib_per_event']:.1f} KiB per event; the bare test from "
            f"{events // 4} to {events} cases ({bare_quarter_run.rss_mb:.0f} -> "
            f"{bare_run.rss_mb:.0f} MiB): {figures['bare_rss_kib_per_test']:.1f} KiB per test; "
            f"ratio {figures['rss_kib_per_event'] / max(figures['bare_rss_kib_per_test'], 0.1):.1f}"
        )
        if figures["rss_kib_per_event"] > 4 * max(figures["bare_rss_kib_per_test"], 1.0):
            print(
                "  not flat: the summary keeps each event's record (policies, verdict "
                "reasons) to the end for the tables, the results file and the gate; the "
                "loaded events stay for the run; a conversation is let go after its last test"
            )
        if xdist:
            one = small_run  # the same one-process run of the same events
            two = run_pytest([*plugin, "-n", "2"], small)
            # The floor xdist itself sets, measured now: the bare test of as many cases.
            bare_two = run_pytest(["-n", "2"], bare)
            figures["xdist_speedup"] = one.wall / two.wall
            figures["xdist_cpu_ratio"] = two.cpu / one.cpu
            # On a shared machine the wall-time ratio says more about the neighbours than
            # about xdist: 2 / (CPU of -n 2 over CPU of one process) is the speed-up two
            # free cores would give, if the workers share the events evenly.
            figures["xdist_cpu_speedup"] = 2 / figures["xdist_cpu_ratio"]
            figures["xdist_bare_speedup"] = bare_run.wall / bare_two.wall
            # xdist's own cost: what -n 2 of the bare test takes beyond half of one process
            # (spawning two interpreters, collecting every test in each, sending the
            # reports). Paid on top of half the work, it caps the speed-up of any suite.
            own = max(bare_two.wall - bare_run.wall / 2, 0.0)
            figures["xdist_own_wall_s"] = own
            figures["xdist_own_cpu_s"] = bare_two.cpu - bare_run.cpu
            figures["xdist_ceiling"] = one.wall / (one.wall / 2 + own)
            print(
                f"  -n 2: {two.wall:.1f} s wall against {one.wall:.1f} s in one process: "
                f"{figures['xdist_speedup']:.2f}x (target >= 1.6); CPU {two.cpu:.1f} s "
                f"against {one.cpu:.1f} s: {figures['xdist_cpu_speedup']:.2f}x on two free "
                "cores"
            )
            print(
                f"  bare test -n 2 (xdist's floor): {bare_two.wall:.1f} s wall against "
                f"{bare_run.wall:.1f} s in one process: {figures['xdist_bare_speedup']:.2f}x; "
                f"xdist's own cost {own:.1f} s wall, {figures['xdist_own_cpu_s']:.1f} CPU-s "
                f"per {events} tests"
            )
            # What -n 2 costs beyond half of one process and xdist's own cost: ours.
            figures["xdist_agentsim_wall_s"] = two.wall - one.wall / 2 - own
            print(
                f"  ceiling at -n 2 with that cost: {one.wall:.1f} / ({one.wall:.1f} / 2 + "
                f"{own:.1f}) = {figures['xdist_ceiling']:.2f}x; agentsim reaches "
                f"{figures['xdist_speedup'] / figures['xdist_ceiling']:.0%} of it, its own "
                f"cost under -n 2 beyond that is {figures['xdist_agentsim_wall_s']:.1f} s wall"
            )
            if figures["xdist_ceiling"] < 1.6:
                print(
                    "  1.6x is out of reach on this machine: xdist alone costs "
                    f"{own:.1f} s wall per {events} tests, more than the "
                    f"{one.wall / 1.6 - one.wall / 2:.1f} s that 1.6x would allow on top of "
                    "half of one process"
                )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--db-mb", type=float, default=5.0)
    parser.add_argument("--no-xdist", action="store_true")
    args = parser.parse_args()
    measure(args.events, args.db_mb, not args.no_xdist)


if __name__ == "__main__":
    main()
