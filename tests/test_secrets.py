"""Secrets in every spelling, end to end: planted everywhere a run can carry them, found
in no artefact it writes.

Three secrets with quotes, backslashes, non-ASCII characters and newlines are values of
env vars that are secrets (``*SECRET*``, ``*_TOKEN``, and one named in
``agentsim_secret_env``). The user's facts, the agent's replies, tool arguments, a tool's
error, the database, an agent crash, a scenario, the LLM judge's prompt and reply, a
provider error echoing the prompt and a failing test's arguments carry them; then every
file the run wrote (cassettes, results JSON, the allure-results directory, JUnit XML, the
GitHub step summary) and the terminal output are searched, as written and decoded, for
every spelling of every secret (tests/secret_spellings.py) and for markers inside the
secrets that no escape changes.

Runs are in-process with litellm imported beforehand (see tests/test_plugin_llm.py).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from secret_spellings import MARKERS
from secret_spellings import NASTY_SECRETS
from secret_spellings import leaks

from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import RecordedRequest
from pytest_agentsim.llm.fake_server import Reply
from pytest_agentsim.llm.redaction import REDACTED
from pytest_agentsim.simulation.llm_user import STOP_SIGNAL

#: Env var -> its secret: found by name (``*SECRET*``, ``*_TOKEN``) or named in the ini.
ENV = {
    "AGENTSIM_TEST_SECRET": NASTY_SECRETS[0],
    "NOTES_PASSPHRASE": NASTY_SECRETS[1],
    "NOTES_DEPLOY_TOKEN": NASTY_SECRETS[2],
}

# A careless agent that knows the secrets: it passes one to a tool (which fails with it in
# its error), saves two in the database, says one, and crashes naming one.
CONFTEST = """\
import os

import pytest

S1 = os.environ["AGENTSIM_TEST_SECRET"]
S2 = os.environ["NOTES_PASSPHRASE"]
S3 = os.environ["NOTES_DEPLOY_TOKEN"]


def delete_note(db: dict, name: str) -> str:
    '''Delete a note.

    Args:
        name: The note's name.
    '''
    del db["notes"][name]  # KeyError: its message is repr(name)
    return "deleted"


def save_note(db: dict, name: str, text: str) -> dict:
    '''Save a note.

    Args:
        name: The note's name.
        text: What it says.
    '''
    db["notes"][name] = text
    return {"saved": name, "text": text}


def call(tool, **arguments):
    return {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": tool, "arguments": arguments}}]}


class NotesAgent:
    def respond(self, messages, sandbox):
        last = messages[-1]
        if last["role"] == "tool":
            return f"Hello! TOP-SECRET result: {last['content']}; your token is {S3}"
        text = last["content"]
        if "crash" in text:
            raise RuntimeError(f"the vault refused {S1!r}")
        if "delete" in text:
            return call("delete_note", name=S1)
        if "save" in text:
            return call("save_note", name="copy", text=S2 + " / " + S1)
        return f"Hello, your passphrase is {S2}"


@pytest.fixture(scope="session")
def agentsim_agent():
    return NotesAgent()


@pytest.fixture(scope="session")
def agentsim_tools():
    return [delete_note, save_note]
"""


# A test body that fails on its own (its traceback shows its arguments, the event among
# them) and one left to the plugin's automatic check.
TESTS = """\
def test_asserted(agentsim_event, agentsim_conversation):
    agentsim_conversation.assert_compliant()


def test_automatic(agentsim_conversation):
    pass
"""


def events_file() -> str:
    """Three events; the user's facts and a scenario hold the secrets."""
    events = [
        {
            "id": "ev-1",
            "policies": ["confirm-delete"],
            "user": {
                "script": ["please delete note a"],
                "facts": {"passphrase": ENV["NOTES_PASSPHRASE"]},
            },
        },
        {
            "id": "ev-2",
            "policies": ["no-secrets"],
            "user": {"script": ["please save a copy"], "facts": {"pin": ENV["NOTES_DEPLOY_TOKEN"]}},
        },
        {
            "id": "ev-3",
            "policies": ["polite-greeting"],
            "scenario": f"The user knows the code {ENV['AGENTSIM_TEST_SECRET']}.",
            "user": {
                "script": ["hi there, crash now"],
                "facts": {"code": ENV["AGENTSIM_TEST_SECRET"]},
            },
        },
    ]
    document = {"version": 1, "domain": "notes", "events": events}
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def policies_to_judge(prompt: str) -> list[str]:
    block = prompt.split("Policies to judge:\n", 1)[1].split("\n\n", 1)[0]
    return [line[2:].split(":", 1)[0] for line in block.splitlines()]


def first_turn(prompt: str) -> str:
    """The words of turn 0 in the judge prompt: the first JSON line after the opening fence."""
    line = prompt.split(">>>\n", 1)[-1].split("\n", 1)[0]
    try:
        return str(json.loads(line).get("content", ""))
    except (ValueError, AttributeError):
        return ""


def play() -> Callable[[RecordedRequest], Reply]:
    """The fake model as the user (tells its facts, then stops) and as the judge (quotes the
    user and repeats a secret in its reasons); its first judge call is refused with an
    error that echoes the prompt, as some providers do."""
    refused: list[bool] = []

    def reply(request: RecordedRequest) -> Reply:
        system = request.messages[0]["content"]
        if "role-playing a customer" in system:
            if any(message["role"] == "assistant" for message in request.messages):
                return Reply(f"Thanks. {STOP_SIGNAL}")
            situation = json.loads(system.split("Your situation (JSON):\n", 1)[1])
            facts = "; ".join(f"my {k} is {v}" for k, v in situation["private_facts"].items())
            return Reply(f"{situation['bring_up_in_order'][0]['say']} ({facts})")
        prompt = request.messages[-1]["content"]
        if not refused:
            refused.append(True)
            echo = json.dumps({"error": {"message": f"rate limited: {prompt}"}})
            return Reply(status=429, headers={"Retry-After": "0"}, raw_body=echo)
        said = first_turn(prompt)
        verdicts = [
            {
                "policy_id": policy,
                "outcome": "compliant",
                "turn": 0,
                "quote": said,
                "reason": f"the agent kept {ENV['NOTES_PASSPHRASE']} to itself",
            }
            for policy in policies_to_judge(prompt)
        ]
        return Reply.json({"verdicts": verdicts})

    return reply


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    from pytest_agentsim.llm.gateway import load_litellm

    load_litellm()


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def strings(data: Any) -> Iterator[str]:
    """Every string of decoded JSON or YAML, keys included."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from strings(item)


def readings(path: Path) -> list[str]:
    """The file as written, and as its format decodes it (escapes undone)."""
    text = path.read_bytes().decode("utf-8", errors="replace")  # any file, even binary
    decoded: list[str] = []
    if path.suffix == ".json":
        decoded = list(strings(json.loads(text)))
    elif path.suffix == ".yaml":
        decoded = list(strings(yaml.safe_load(text)))
    elif path.suffix == ".xml":
        root = ElementTree.fromstring(text)
        decoded = [
            part
            for element in root.iter()
            for part in (element.text, element.tail, *element.attrib.values())
            if part
        ]
    return [text, "\n".join(decoded)]


@pytest.mark.parametrize("processes", [["-p", "no:xdist"], ["-n", "2"]], ids=["one", "xdist"])
def test_no_spelling_of_a_secret_reaches_any_artefact(
    product: pytest.Pytester,
    server: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    processes: list[str],
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    summary = product.path / "github-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # annotations on the terminal
    monkeypatch.setenv("GITHUB_WORKSPACE", str(product.path))
    (product.path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (product.path / "test_agent.py").write_text(TESTS, encoding="utf-8")
    (product.path / "fixtures" / "events" / "notes.yaml").write_text(
        events_file(), encoding="utf-8"
    )
    ini = product.path / "pytest.ini"
    ini.write_text(ini.read_text() + "agentsim_secret_env = NOTES_PASSPHRASE\n")
    inputs = {path for path in product.path.rglob("*") if path.is_file()}
    server.reply_function = play()

    result = product.runpytest(
        "--agentsim",
        "--agentsim-user-model=openai/fake-user",
        "--agentsim-judge-model=openai/fake-judge",
        f"--agentsim-api-base={server.base_url}",
        "--agentsim-record-mode=all",
        "--agentsim-json=results.json",
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=all",
        "--alluredir=allure-results",
        "-o",
        "log_cli=true",
        "--log-cli-level=WARNING",
        "-rA",
        "-v",
        *processes,  # with xdist, workers redact and the controller writes the reports
    )

    # The run did what the secrets were planted for: two violations and an agent crash,
    # each reported by both tests...
    result.assert_outcomes(failed=4, errors=2)
    # ...and the secrets reached the model in the user's words, the tool calls, the tool's
    # error and the database changes of the judge's prompt.
    sent = "\n".join(json.dumps(request.body) for request in server.completion_requests)
    assert all(marker in sent for marker in MARKERS)
    judge_prompts = [r for r in server.completion_requests if r.model == "fake-judge"]
    assert any("KeyError" in json.dumps(r.body) for r in judge_prompts)
    assert any("dictionary_item_added" in json.dumps(r.body) for r in judge_prompts)  # the DB

    terminal = result.stdout.str() + result.stderr.str()
    assert "attempt 1 failed" in terminal  # the provider's error, logged by the gateway
    assert "::error " in terminal  # GitHub annotations
    written = sorted(
        path for path in product.path.rglob("*") if path.is_file() and path not in inputs
    )
    artefacts: dict[str, list[str]] = {"terminal": [terminal]}
    artefacts.update({str(path.relative_to(product.path)): readings(path) for path in written})
    kinds = {
        "cassette": [name for name in artefacts if name.startswith("fixtures/cassettes/")],
        "results": ["results.json"],
        "junit": ["junit.xml"],
        "allure": [name for name in artefacts if name.startswith("allure-results/")],
        "summary": ["github-summary.md"],
        "terminal": ["terminal"],
    }
    found = {
        name: hits
        for name, texts in artefacts.items()
        if (hits := [leak for text in texts for leak in leaks(text)])
    }
    assert found == {}
    # Redaction happened in each kind of artefact: the search above could have found something.
    for kind, names in kinds.items():
        assert names and all(name in artefacts for name in names), kind
        assert any(REDACTED in text for name in names for text in artefacts[name]), kind
