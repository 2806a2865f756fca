"""What one run's session shares between processes."""

from __future__ import annotations

import gc
import re

import pytest

# Run in the controller after it has loaded the events, before each worker starts: a
# worker that read the events file again would find it broken.
BREAK_EVENTS = """

@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    from pathlib import Path

    Path("fixtures/events/notes.yaml").write_text("version: 1\\ndomain: [broken\\n")
"""


def test_xdist_workers_use_the_events_the_controller_validated(product: pytest.Pytester) -> None:
    single = product.runpytest_subprocess("--agentsim", "-p", "no:xdist")
    expected = re.findall(r"\d+ (?:failed|passed)", single.stdout.str())
    conftest = product.path / "conftest.py"
    conftest.write_text(conftest.read_text() + BREAK_EVENTS)
    result = product.runpytest_subprocess("--agentsim", "-n", "2")
    assert "invalid YAML" not in result.stdout.str() + result.stderr.str()
    assert re.findall(r"\d+ (?:failed|passed)", result.stdout.str()) == expected
    # The file was broken indeed: a run that reads it says so.
    again = product.runpytest_subprocess("--agentsim", "-p", "no:xdist")
    assert "invalid YAML in events file" in again.stdout.str() + again.stderr.str()


FREEZE_TEST = """
import gc


def test_collection_is_frozen():
    assert gc.get_freeze_count() > 0
"""


def test_the_run_keeps_its_heap_out_of_collections_and_gives_it_back(
    product: pytest.Pytester,
) -> None:
    """While the run goes, what lived at collection is out of the collector's reach; a
    process that called pytest.main gets it back when the run ends (nothing leaks)."""
    product.makepyfile(test_freeze=FREEZE_TEST)
    product.runpytest_inprocess("--agentsim", "test_freeze.py").assert_outcomes(passed=1)
    assert gc.get_freeze_count() == 0
