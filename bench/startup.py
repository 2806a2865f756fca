"""Benchmark: what the installed plugin costs a plain ``pytest`` run (no --agentsim).

Builds a throwaway repo of ordinary tests and times ``pytest -q`` with the plugin loaded
(the default once installed) against ``-p no:agentsim``, in the same run, alternating to
cancel drift, in CPU time of the child process (the machine may be shared). Prints the
median of each and their ratio; the target is a ratio <= 1.03.
Also reports whether litellm, pydantic or yaml got imported by the plain run.

    python bench/startup.py [--runs 15] [--tests 300]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def timed(cmd: list[str], cwd: Path) -> float:
    """CPU time of the child (user + system): wall time is noisy on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        (repo / "pytest.ini").write_text("[pytest]\n")
        body = "\n".join(f"def test_{i}():\n    assert {i} == {i}\n" for i in range(args.tests))
        (repo / "test_plain.py").write_text(body)
        (repo / "test_modules.py").write_text(
            "import sys\n\ndef test_light():\n"
            "    print(sorted({'litellm', 'pydantic', 'yaml', 'deepdiff'} & set(sys.modules)))\n"
        )
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        with_plugin: list[float] = []
        without: list[float] = []
        for _ in range(args.runs):
            with_plugin.append(timed(base, repo))
            without.append(timed([*base, "-p", "no:agentsim"], repo))
        loaded = subprocess.run(
            [*base, "-s", "test_modules.py"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.splitlines()[0]
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"plain pytest, {args.tests} tests, median of {args.runs} runs")
    print(f"  with pytest-agentsim installed: {a * 1000:7.1f} ms CPU")
    print(f"  with -p no:agentsim:            {b * 1000:7.1f} ms CPU")
    print(f"  ratio: {a / b:.3f} (target <= 1.03)")
    print(f"  heavy modules imported by a plain run: {loaded}")


if __name__ == "__main__":
    main()
