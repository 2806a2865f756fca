"""What one run's session shares between processes."""

from __future__ import annotations

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
