"""Every benchmark in one run: ``python -m bench`` (from the repository root).

Runs each script of this package in turn (plugin-off start-up overhead, the policy
graph, cassette writes, generation with a slow model, the concurrency sweep when
bench/concurrency.py is present, and the offline hot path), prints what each measures as
ratios made in this same run, and writes all of it to bench/RESULTS.md with the machine
noted (CPU count, RAM, Python). Keep the default run within about five minutes;
``--full`` runs every script at its own default size.

    python -m bench [--full] [--only offline graph ...]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime
from datetime import timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (script, arguments of the default run, arguments of --full)
SCRIPTS: list[tuple[str, list[str], list[str]]] = [
    ("startup", ["--runs", "15"], []),  # fewer runs measure noise at this 3% target
    ("graph", [], []),
    ("cassette", [], []),
    ("generate", [], []),
    # C=64 needs at least 128 events to have 64 in flight; C=1 runs 32 (96 calls of
    # 200 ms one at a time), --full 128.
    (
        "concurrency",
        ["--events", "128", "--concurrency", "1", "8", "32", "64"],
        ["--events-at-1", "128"],
    ),
    ("offline", [], []),
]


def machine() -> str:
    """CPU count, RAM, Python and OS: what the figures were measured on."""
    memory = ""
    with contextlib.suppress(OSError, ValueError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        memory = f", {total / 2**30:.1f} GiB RAM"
    load = ""
    with contextlib.suppress(OSError):
        load = f", load average {os.getloadavg()[0]:.1f} at the start"
    return (
        f"nproc {os.cpu_count()}{memory}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}{load}"
    )


class _Tee(io.TextIOBase):
    """Prints as it goes and keeps a copy for RESULTS.md."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream = stream
        self.kept = io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.stream.flush()
        return self.kept.write(text)


def run(name: str, args: list[str]) -> tuple[str, float]:
    """One script's main() with ``args`` as its command line: what it printed, and seconds."""
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{name}":
            skipped = f"{name}: skipped (bench/{name}.py is not here)\n"
            print(skipped, end="")
            return skipped, 0.0
        raise
    main: Callable[[], None] = module.main
    tee = _Tee(sys.stdout)  # type: ignore[arg-type]
    saved = sys.argv
    sys.argv = [f"bench/{name}.py", *args]
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(tee):
            main()
    except SystemExit as exc:  # a script that gives up says why; the others still run
        print(f"{name}: stopped: {exc}", file=tee)
    finally:
        sys.argv = saved
    return tee.kept.getvalue(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="each script at its own defaults")
    parser.add_argument("--only", nargs="+", help="run only these scripts")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    options = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    about = machine()
    print(f"machine: {about}\n")
    sections = []
    for name, quick, full in SCRIPTS:
        if options.only and name not in options.only:
            continue
        text, seconds = run(name, full if options.full else quick)
        print(f"  ({seconds:.0f} s)\n")
        sections.append(f"## {name}\n\n```\n{text.rstrip()}\n```\n")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m bench" + (" --full" if options.full else "")
    options.output.write_text(
        "# Benchmark results\n\n"
        f"Written by `{command}` on {started}. Machine: {about}.\n"
        "Every ratio below was measured within this one run; CPU time where the machine "
        "is shared, wall time only where the point is parallelism or latency.\n\n"
        + "\n".join(sections)
    )
    print(f"written: {options.output}")


if __name__ == "__main__":
    main()
