"""The README's quickstart, run as written: its conftest, tools, pack, events, ini file and
test, in a product repo of their own, with an agent of ours behind ``SupportAgent``."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

# Behind the quickstart's ``from my_product.agent import SupportAgent``: looks the user up
# with the tau-bench-style class tool, moves them, and says so.
AGENT = """
import json
import re

from pytest_agentsim import tool_call


class SupportAgent:
    EXTRA = {}

    def respond(self, messages, sandbox):
        said = " ".join(m.get("content") or "" for m in messages if m["role"] == "user")
        done = [m for m in messages if m["role"] == "tool"]
        user, city = re.search(r"user (\\w+)", said)[1], re.search(r"moved to (\\w+)", said)[1]
        if not done:
            return {"role": "assistant", "tool_calls": [tool_call("get_user_details", {"user_id": user})]}
        if len(done) == 1:
            return {
                "role": "assistant",
                "tool_calls": [tool_call("update_address", {"user_id": user, "city": city, **self.EXTRA})],
            }
        return f"Done: your city is now {city}."
"""


def quickstart_blocks() -> dict[str, str]:
    """The quickstart's fenced blocks, by the file each names on its first line."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quickstart for your product repo") :]
    section = section[: section.index("\n## ", 10)]
    blocks = {}
    for body in re.findall(r"```\w*\n(.*?)```", section, re.S):
        first = body.splitlines()[0]
        named = re.match(r"#\s*([\w./]+\.(?:py|ini|yaml))\b", first)
        if named:
            blocks[named.group(1)] = body
    return blocks


@pytest.fixture
def product(pytester: pytest.Pytester) -> pytest.Pytester:
    blocks = quickstart_blocks()
    assert set(blocks) >= {
        "conftest.py",
        "my_product/tools.py",
        "test_agent.py",
        "pytest.ini",
        "policies/support.yaml",
        "fixtures/events/support.yaml",
    }
    for name, body in blocks.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    (pytester.path / "my_product" / "__init__.py").write_text("")
    (pytester.path / "my_product" / "agent.py").write_text(textwrap.dedent(AGENT))
    database = re.search(r"database: \S+\s+#\s*(\{.*\})", blocks["policies/support.yaml"])
    assert database is not None
    (pytester.path / "fixtures" / "db").mkdir(parents=True)
    (pytester.path / "fixtures" / "db" / "support.json").write_text(database.group(1))
    pytester.syspathinsert()
    return pytester


def test_the_quickstart_runs_as_written(product: pytest.Pytester) -> None:
    result = product.runpytest_subprocess("--agentsim", "--agentsim-json=out.json")
    result.assert_outcomes(passed=1)
    (event,) = json.loads((product.path / "out.json").read_text())["events"]
    assert event["stop_reason"] == "script_done"
    assert event["tool_calls"] == 2  # the class tool and the plain function, no wrappers


def test_the_quickstart_expected_state_catches_a_change_nobody_asked_for(
    product: pytest.Pytester,
) -> None:
    agent = product.path / "my_product" / "agent.py"
    agent.write_text(agent.read_text().replace("EXTRA = {}", 'EXTRA = {"name": "Bob"}'))
    tools = product.path / "my_product" / "tools.py"
    tools.write_text(
        tools.read_text().replace(
            'def update_address(db: dict, user_id: str, city: str) -> str:\n    """Change a user\'s city."""\n',
            'def update_address(db: dict, user_id: str, city: str, name: str = "") -> str:\n    """Change a user\'s city."""\n    if name:\n        db["users"][user_id]["name"] = name\n',
        )
    )
    result = product.runpytest_subprocess("--agentsim")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*VIOLATED address-change*",
            "*final database is not the expected state*other changes (1): users.u1.name: "
            "changed from 'Ada' to 'Bob'*",
        ]
    )
