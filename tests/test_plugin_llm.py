"""The LLM options end to end: a product repo run with pytester against the fake server.

Runs are in-process, with litellm imported beforehand: imported inside a pytester run,
it would be unloaded at the end of it (pytester restores ``sys.modules``) with parts of
``importlib.metadata`` it pulled in, and the next run could not find plugin metadata.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from pytest_agentsim.llm.fake_server import FakeLLMServer
from pytest_agentsim.llm.fake_server import RecordedRequest
from pytest_agentsim.llm.fake_server import Reply
from pytest_agentsim.simulation.llm_user import STOP_SIGNAL


def policies_to_judge(request: RecordedRequest) -> list[str]:
    text = request.messages[-1]["content"]
    block = text.split("Policies to judge:\n", 1)[1].split("\n\n", 1)[0]
    return [line[2:].split(":", 1)[0] for line in block.splitlines()]


def role_model(judge_outcome: Callable[[str, int], str] | None = None) -> Callable[..., Reply]:
    """A fake model playing the user (first thing to say, then stop) and the judge."""
    judged: dict[str, int] = {}

    def reply(request: RecordedRequest) -> Reply:
        system = request.messages[0]["content"]
        if "role-playing a customer" in system:
            situation = json.loads(system.split("Your situation (JSON):\n", 1)[1])
            said_before = [m for m in request.messages if m["role"] == "assistant"]
            if said_before:
                return Reply(f"Thanks. {STOP_SIGNAL}")
            plan = situation.get("bring_up_in_order") or [{"say": "hello"}]
            return Reply(plan[0]["say"])
        if "compliance auditor" in system:
            verdicts = []
            for policy in policies_to_judge(request):
                judged[policy] = judged.get(policy, 0) + 1
                outcome = judge_outcome(policy, judged[policy]) if judge_outcome else "compliant"
                verdicts.append(
                    {
                        "policy_id": policy,
                        "outcome": outcome,
                        "turn": 0,
                        "quote": "",
                        "reason": "ok",
                    }
                )
            return Reply.json({"verdicts": verdicts})
        return Reply.server_error()

    return reply


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    from pytest_agentsim.llm.gateway import load_litellm

    load_litellm()


@pytest.fixture
def server() -> Any:
    with FakeLLMServer() as running:
        yield running


def llm_args(server: FakeLLMServer, *extra: str) -> list[str]:
    return [
        "--agentsim",
        "--agentsim-user-model=openai/fake-user",
        "--agentsim-judge-model=openai/fake-judge",
        f"--agentsim-api-base={server.base_url}",
        *extra,
    ]


def test_record_once_then_replay_offline_with_zero_requests(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    server.reply_function = role_model()
    first = product.runpytest(*llm_args(server, "--agentsim-record-mode=once"))
    first.assert_outcomes(passed=1, failed=2)
    made = len(server.completion_requests)
    # Per event: the user's opening, the agent answers, the user stops; one judge call.
    assert made == 3 * 3
    cassettes = sorted(
        p.name for p in (product.path / "fixtures" / "cassettes" / "notes").iterdir()
    )
    assert cassettes == ["ev-1.yaml", "ev-2.yaml", "ev-3.yaml"]
    out = first.stdout.str()
    assert "agentsim llm: user openai/fake-user, judge openai/fake-judge" in out
    assert re.search(r"cost: \$0\.0000, [\d,]+ tokens in 9 LLM calls", out), out

    replay_args = llm_args(server, "--agentsim-record-mode=none")
    server.stop()  # nothing can be reached now
    again = product.runpytest(*replay_args)
    again.assert_outcomes(passed=1, failed=2)
    assert len(server.completion_requests) == made
    assert "0 tokens in 0 LLM calls, 9 replayed from cassettes" in again.stdout.str()
    # The rule judge still finds the violations; the LLM judge said compliant: flagged.
    again.stdout.fnmatch_lines(
        [
            "*judges disagree on 2 verdicts:*",
            "*ev-1 confirm-delete: llm: compliant; rules: violated*",
        ]
    )


def test_the_llm_judge_works_with_a_server_that_refuses_json_schema(
    product: pytest.Pytester,
) -> None:
    """llama.cpp's server answers json_schema with a 500: the judge falls back to
    json_object once, keeps to it for the run, and the cassettes replay offline."""
    with FakeLLMServer(reply=role_model(), refuse_response_formats={"json_schema"}) as llama:
        first = product.runpytest(*llm_args(llama, "--agentsim-record-mode=once"))
        judge_calls = [
            r.body.get("response_format", {}).get("type")
            for r in llama.completion_requests
            if "compliance auditor" in r.messages[0]["content"]
        ]
        replay_args = llm_args(llama, "--agentsim-record-mode=none")
    first.assert_outcomes(passed=1, failed=2)
    # Refused once (not retried), then json_object for this and the other two events.
    assert judge_calls == ["json_schema", "json_object", "json_object", "json_object"]
    cassette = (product.path / "fixtures" / "cassettes" / "notes" / "ev-1.yaml").read_text()
    assert "type: json_object" in cassette and "json_schema:" not in cassette
    # The rule judge's violations, and the LLM judge's verdicts beside them.
    first.stdout.fnmatch_lines(["*ev-1 confirm-delete: llm: compliant; rules: violated*"])

    again = product.runpytest(*replay_args)  # the server is gone: replay only
    again.assert_outcomes(passed=1, failed=2)
    assert "0 tokens in 0 LLM calls, 9 replayed from cassettes" in again.stdout.str()


def test_replay_miss_is_a_clear_error(product: pytest.Pytester, server: FakeLLMServer) -> None:
    result = product.runpytest(*llm_args(server), "-k", "ev-3")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*fixtures/cassettes/notes/ev-3.yaml: no recorded user call to openai/fake-user for *"
            "(record mode 'none'); rerun with --agentsim-record-mode=new_episodes to record it*"
        ]
    )
    assert server.completion_requests == []


def test_an_unreadable_cassette_gives_errors_not_violations(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    server.reply_function = role_model()
    product.runpytest(*llm_args(server, "--agentsim-record-mode=once"), "-k", "ev-1")
    cassette = product.path / "fixtures" / "cassettes" / "notes" / "ev-1.yaml"
    text = cassette.read_text()
    cassette.write_text(text[: len(text) // 2] + "\n  - {{{broken")
    replay_args = llm_args(server)
    server.stop()
    result = product.runpytest(*replay_args, "-k", "ev-1")
    result.assert_outcomes(errors=1, deselected=2)
    out = result.stdout.str()
    # The conversation aborted before the agent said a word: "no agent message matched
    # /hello/" and "final database has notes.a" prove nothing either way.
    assert "VIOLATED" not in out
    result.stdout.fnmatch_lines(
        [
            "*invalid YAML in LLM cassette*",
            "  ERROR     ev-1 confirm-delete: the conversation ended with user_error before "
            "db_contains(notes.a) could be judged (so far compliant: final database has notes.a)",
            "  ERROR     ev-1 polite-greeting: the conversation ended with user_error before "
            "text_matches(pattern='(?i)hello') could be judged (so far violated: *",
        ]
    )


@pytest.mark.parametrize(
    ("mode", "outcomes"),
    [("fail", {"failed": 1}), ("xfail", {"xfailed": 1}), ("error", {"errors": 1})],
)
def test_split_vote_is_inconclusive_as_configured(
    product: pytest.Pytester, server: FakeLLMServer, mode: str, outcomes: dict[str, int]
) -> None:
    server.reply_function = role_model(lambda policy, n: "compliant" if n % 2 else "violated")
    result = product.runpytest(
        *llm_args(server, "--agentsim-record-mode=all", "--agentsim-judge-samples=2"),
        f"--agentsim-inconclusive={mode}",
        "-k",
        "ev-3",
    )
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines(
        ["*INCONCLUSIVE*polite-greeting*samples disagree: compliant 1, violated 1*"]
    )


def test_budget_stops_new_calls_and_the_events_error(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    server.reply_function = role_model()
    result = product.runpytest(
        "--agentsim",
        # A model litellm has a price for, served by the fake server.
        "--agentsim-user-model=openai/gpt-4o-mini",
        f"--agentsim-api-base={server.base_url}",
        "--agentsim-record-mode=all",
        "--agentsim-max-cost=0.0000001",
    )
    result.assert_outcomes(errors=3)
    # The first call (ev-1's opening) spent the budget; ev-1's next user turn, ev-2 and
    # ev-3 were refused before reaching the server.
    assert len(server.completion_requests) == 1
    out = result.stdout.str()
    assert "LLM budget spent" in out and "no new calls are made" in out
    assert re.search(r"LLM budget: \$0\.0000\d+ spent of \$0\.0000001 after 1 calls; 3 calls", out)


def test_the_budget_line_reports_what_was_spent_not_the_limit(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    path = product.path / "pytest.ini"
    # $0.01 a token: each call of 100 + 100 tokens costs $2.00.
    path.write_text(path.read_text() + "agentsim_prices =\n    openai/fake-user = 10000, 10000\n")
    play = role_model()

    def metered(request: RecordedRequest) -> Reply:
        reply = play(request)
        reply.prompt_tokens, reply.completion_tokens = 100, 100
        return reply

    server.reply_function = metered
    result = product.runpytest(
        "--agentsim",
        "--agentsim-user-model=openai/fake-user",
        f"--agentsim-api-base={server.base_url}",
        "--agentsim-record-mode=all",
        "--agentsim-max-cost=5",
    )
    # ev-1: opening, stop ($4.00); ev-2: opening ($6.00, over the limit), then refused.
    assert len(server.completion_requests) == 3
    out = result.stdout.str()
    assert "LLM budget: $6.00 spent of $5.00 after 3 calls; 2 calls refused" in out, out


def test_secrets_never_reach_any_written_file(
    product: pytest.Pytester, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-live-0123456789abcdefSECRET"
    monkeypatch.setenv("NOTES_LLM_KEY", key)
    events = product.path / "fixtures" / "events" / "notes.yaml"
    events.write_text(events.read_text().replace("please delete note a", f"my key is {key}"))
    server.reply_function = role_model()
    result = product.runpytest(
        *llm_args(server, "--agentsim-record-mode=all", "--agentsim-api-key-env=NOTES_LLM_KEY"),
        "--agentsim-json=results.json",
        "--junitxml=junit.xml",
    )
    assert result.ret == 1
    # The key went to the server (as the key, and in the user's words)...
    assert any(key in r.headers.get("authorization", "") for r in server.completion_requests)
    # ...and nowhere into what the run wrote.
    written = [
        p
        for p in product.path.rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".json", ".xml") and "events" not in p.parts
    ]
    assert any("cassettes" in p.parts for p in written)
    for path in written:
        assert key not in path.read_text(), path


def test_built_in_llm_agent_from_the_ini_file(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    (product.path / "conftest.py").write_text(
        (product.path / "conftest.py")
        .read_text()
        .split('@pytest.fixture(scope="session")\ndef agentsim_agent')[0]
        + '@pytest.fixture(scope="session")\ndef agentsim_tools():\n    return [delete_note, read_note]\n'
    )
    (product.path / "prompts").mkdir()
    (product.path / "prompts" / "notes.md").write_text("You are a careful notes assistant.\n")
    with open(product.path / "pytest.ini", "a") as ini:
        ini.write(
            "agentsim_agent_prompt = prompts/notes.md\nagentsim_agent_model = openai/notes-agent\n"
        )

    def agent(request: RecordedRequest) -> Reply:
        if request.messages[-1]["role"] == "tool":
            return Reply("Hello! It is done.")
        text = request.messages[-1]["content"]
        name = text.split()[-1]
        if "delete" in text:
            return Reply(tool_calls=[{"name": "delete_note", "arguments": {"name": name}}])
        return Reply("Hello, how can I help?")

    server.reply_function = agent
    result = product.runpytest(
        "--agentsim", f"--agentsim-api-base={server.base_url}", "--agentsim-record-mode=all"
    )
    # ev-1: deleted without asking (violated); ev-2: never read the secret; ev-3: greeted.
    result.assert_outcomes(passed=2, failed=1)
    first = server.completion_requests[0]
    assert first.messages[0] == {
        "role": "system",
        "content": "You are a careful notes assistant.\n",
    }
    assert {t["function"]["name"] for t in first.body["tools"]} == {"delete_note", "read_note"}
    assert "agent openai/notes-agent" in result.stdout.str()


def test_user_model_per_test_with_a_marker(product: pytest.Pytester, server: FakeLLMServer) -> None:
    product.makepyfile(
        test_agent="""
        import pytest

        @pytest.mark.agentsim_user_model("openai/marked-user")
        def test_llm_user(agentsim_conversation):
            assert agentsim_conversation.conversation.stop_reason.value == "user_stopped"

        def test_offline_user(agentsim_conversation):
            assert agentsim_conversation.conversation.stop_reason.value != "user_stopped"
        """
    )
    server.reply_function = role_model()
    result = product.runpytest(
        "--agentsim",
        f"--agentsim-api-base={server.base_url}",
        "--agentsim-record-mode=all",
        "-k",
        "ev-3",
    )
    result.assert_outcomes(passed=2)
    assert {r.body["model"] for r in server.completion_requests} == {"marked-user"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--agentsim-record-mode=sometimes"],
            "--agentsim-record-mode: expected one of none, once, new_episodes, all, got 'sometimes'",
        ),
        (
            ["--agentsim-max-cost=lots"],
            "--agentsim-max-cost: expected a budget in USD (a number >= 0), got 'lots'",
        ),
        (
            ["--agentsim-inconclusive=pass"],
            "--agentsim-inconclusive: expected one of fail, xfail, error, got 'pass'",
        ),
        (
            ["--agentsim-judge-samples=0"],
            "--agentsim-judge-samples: expected an integer >= 1, got 0",
        ),
        (["--agentsim-agent-prompt=p.md"], "agentsim_agent_prompt is set but no model*"),
        (
            ["--agentsim-timeout=0"],
            "--agentsim-timeout: expected a number of seconds > 0 and <= 86400, got '0'",
        ),
        (
            ["--agentsim-turn-timeout=soon"],
            "--agentsim-turn-timeout: expected a number of seconds > 0 and <= 86400, got 'soon'",
        ),
        (["--agentsim-attempts=0"], "--agentsim-attempts: expected an integer >= 1, got 0"),
        (
            ["--agentsim-max-tokens=user=200, bot=5"],
            "--agentsim-max-tokens: expected N or role=N items (roles: user, judge, agent, "
            "generate; N an integer >= 1), got 'bot=5'",
        ),
    ],
)
def test_bad_llm_options_are_usage_errors(
    product: pytest.Pytester, args: list[str], message: str
) -> None:
    result = product.runpytest("--agentsim", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_cassette_files_are_reviewable(product: pytest.Pytester, server: FakeLLMServer) -> None:
    server.reply_function = role_model()
    product.runpytest(*llm_args(server, "--agentsim-record-mode=once"), "-k", "ev-2")
    text = (product.path / "fixtures" / "cassettes" / "notes" / "ev-2.yaml").read_text()
    assert text.startswith("version: 1\ninteractions:\n- key: ")
    assert "purpose: judge" in text and "purpose: user" in text
    assert "<<<TRANSCRIPT" in text  # the judge prompt, readable in a diff


def test_judge_server_failure_is_a_pytest_error(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    server.reply_function = lambda request: Reply.server_error(502)
    result = product.runpytest(
        "--agentsim",
        "--agentsim-judge-model=openai/fake-judge",
        f"--agentsim-api-base={server.base_url}",
        "--agentsim-record-mode=all",
        "-k",
        "ev-3",
    )
    # Offline user and agent, a judge that cannot answer: an error, not a pass or a fail.
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR polite-greeting*", "*judge 'llm' failed: LLMError: *gave up after 4 attempts*"]
    )


def test_configured_secrets_never_reach_a_report(
    product: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets named in the ini file are redacted from every report, judged all the same."""
    passphrase = "open-sesame-4242"
    monkeypatch.setenv("NOTES_PASSPHRASE", passphrase)  # not named like a credential
    events = product.path / "fixtures" / "events" / "notes.yaml"
    events.write_text(
        events.read_text().replace("please delete note a", f"{passphrase}: please delete note a")
    )
    ini = product.path / "pytest.ini"
    ini.write_text(
        ini.read_text()
        + "agentsim_secret_env = NOTES_PASSPHRASE\n"
        + "agentsim_secret_patterns =\n    SECRET plans\n"
    )
    inputs = set(product.path.rglob("*"))
    result = product.runpytest(
        "--agentsim",
        "--agentsim-json=results.json",
        "--junitxml=junit.xml",
        "--alluredir=allure-results",
    )
    # The judges saw the conversation as it was: the secret note read aloud is a violation.
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*VIOLATED*no-secrets*", "*TOP-[[]REDACTED[]]*"])
    output = result.stdout.str() + result.stderr.str()
    assert passphrase not in output and "SECRET plans" not in output
    written = [path for path in product.path.rglob("*") if path.is_file() and path not in inputs]
    assert {p.suffix for p in written} >= {".json", ".xml"}
    assert any("allure-results" in p.parts for p in written)
    for path in written:
        text = path.read_text(errors="replace")
        assert passphrase not in text and "SECRET plans" not in text, path


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        (
            "agentsim_prices =\n    openai/x = 0.5\n",
            "agentsim_prices in pytest.ini: expected 'model = input, output' (USD per million "
            "tokens, numbers >= 0), got 'openai/x = 0.5'",
        ),
        (
            "agentsim_prices =\n    openai/x = 1, -2\n",
            "agentsim_prices in pytest.ini: expected 'model = input, output' *got 'openai/x = 1, -2'",
        ),
        (
            "agentsim_rate_limits =\n    openai/x = 500 rpm, 0 tpm\n",
            "agentsim_rate_limits in pytest.ini: expected 'model = N rpm, M tpm' *"
            "got 'openai/x = 500 rpm, 0 tpm'",
        ),
        (
            "agentsim_rate_limits =\n    openai/x = 500 per minute\n",
            "agentsim_rate_limits in pytest.ini: expected 'model = N rpm, M tpm' *",
        ),
        (
            "agentsim_secret_patterns =\n    acct-(\\d+\n",
            "agentsim_secret_patterns in pytest.ini: 'acct-(\\\\d+' is not a valid regex: *",
        ),
    ],
)
def test_bad_price_and_secret_settings_are_usage_errors(
    product: pytest.Pytester, ini: str, message: str
) -> None:
    path = product.path / "pytest.ini"
    path.write_text(path.read_text() + ini)
    result = product.runpytest("--agentsim")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_prices_from_the_ini_file_cost_the_calls(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    path = product.path / "pytest.ini"
    path.write_text(
        path.read_text()
        + "agentsim_prices =\n    openai/fake-user = 1, 2\n    openai/fake-judge = $3, $4\n"
    )
    play = role_model()

    def metered(request: RecordedRequest) -> Reply:
        reply = play(request)
        reply.prompt_tokens, reply.completion_tokens = 1000, 100
        return reply

    server.reply_function = metered
    result = product.runpytest(
        *llm_args(server, "--agentsim-record-mode=all", "--agentsim-json=results.json")
    )
    result.assert_outcomes(passed=1, failed=2)
    assert "LLM cost unknown" not in result.stdout.str()
    judge_calls = sum(
        "compliance auditor" in r.messages[0]["content"] for r in server.completion_requests
    )
    user_calls = len(server.completion_requests) - judge_calls
    # USD per million tokens: the user 1 in, 2 out; the judge 3 in, 4 out.
    expected = user_calls * (1000 * 1 + 100 * 2) / 1e6 + judge_calls * (1000 * 3 + 100 * 4) / 1e6
    document = json.loads((product.path / "results.json").read_text())
    assert document["cost"]["usd"] == pytest.approx(expected)
    assert judge_calls == 3 and user_calls == 6


def test_max_tokens_is_sent_on_every_call_per_role_and_keys_no_cassette(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    server.reply_function = role_model()
    first = product.runpytest(*llm_args(server, "--agentsim-record-mode=once"), "-k", "ev-3")
    first.assert_outcomes(passed=1)

    def limits() -> dict[str, set[int]]:
        sent: dict[str, set[int]] = {}
        for request in server.completion_requests:
            judge = "compliance auditor" in request.messages[0]["content"]
            sent.setdefault("judge" if judge else "user", set()).add(request.body["max_tokens"])
        return sent

    # The defaults: a short user message, a judge's verdicts.
    assert limits() == {"user": {1024}, "judge": {4096}}
    cassette = (product.path / "fixtures" / "cassettes" / "notes" / "ev-3.yaml").read_text()
    assert "max_tokens: null" in cassette  # a limit, not part of what is asked

    # Other limits replay the same recordings (no request), like another timeout would.
    again = product.runpytest(
        *llm_args(server, "--agentsim-max-tokens=user=200, judge=2000"), "-k", "ev-3"
    )
    again.assert_outcomes(passed=1)
    made = len(server.completion_requests)
    server.reset()
    server.reply_function = role_model()
    product.runpytest(
        *llm_args(
            server, "--agentsim-record-mode=all", "--agentsim-max-tokens=user=200, judge=2000"
        ),
        "-k",
        "ev-3",
    ).assert_outcomes(passed=1)
    assert limits() == {"user": {200}, "judge": {2000}}
    assert made == 3

    ini = product.path / "pytest.ini"
    ini.write_text(ini.read_text() + "agentsim_max_tokens = 300\n")
    server.reset()
    server.reply_function = role_model()
    product.runpytest(*llm_args(server, "--agentsim-record-mode=all"), "-k", "ev-3")
    assert limits() == {"user": {300}, "judge": {300}}


def test_a_hung_model_ends_as_an_error_within_its_timeout(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    """--agentsim-timeout bounds each attempt and --agentsim-attempts their number: a
    model that never answers errors the test in about attempts x timeout (plus backoff)."""
    server.reply_function = lambda request: Reply.hang(60)
    started = time.monotonic()
    result = product.runpytest(
        "--agentsim",
        "--agentsim-user-model=openai/fake-user",
        f"--agentsim-api-base={server.base_url}",
        "--agentsim-record-mode=all",
        "--agentsim-timeout=0.5",
        "--agentsim-attempts=2",
        "-k",
        "ev-3",
    )
    elapsed = time.monotonic() - started
    result.assert_outcomes(errors=1)
    assert len(server.completion_requests) == 2  # two attempts, each cut after 0.5 s
    assert elapsed < 10 * 2 * 0.5 + 5, elapsed  # loosely: nowhere near the 60 s hang
    result.stdout.fnmatch_lines(
        [
            "LLM error: openai/fake-user: gave up after 2 attempts: Timeout: *",
            "agentsim event ev-3*",
        ]
    )


@pytest.mark.parametrize("concurrency", [16, 2])
def test_concurrency_puts_that_many_calls_in_flight_at_the_model(
    product: pytest.Pytester, concurrency: int
) -> None:
    """--agentsim-concurrency N: N conversations at once, so N calls waiting on a slow
    model at once (counted by the server), not a fixed cap of the gateway's."""
    answer = role_model()
    first_arrival: list[float] = []

    def held(request: RecordedRequest) -> Reply:
        # Until N calls are in flight (or 10 s have passed), each waits: however slowly a
        # loaded machine starts them, the first calls do not end before the last begin.
        first_arrival.append(time.monotonic())
        while slow.max_in_flight < concurrency and time.monotonic() < first_arrival[0] + 10:
            time.sleep(0.01)
        return answer(request)

    with FakeLLMServer(reply=held, latency=0.1) as slow:
        result = product.runpytest(
            *llm_args(slow, "--agentsim-record-mode=all"),
            f"--agentsim-concurrency={concurrency}",
            "--agentsim-repeat=6",  # 3 events x 6 trials: 18 conversations
        )
        most = slow.max_in_flight
        made = len(slow.completion_requests)
    result.assert_outcomes(passed=6, failed=12)
    assert made == 18 * 3
    assert most == concurrency


def test_the_cost_line_counts_the_calls_of_simulated_user_tests(
    product: pytest.Pytester, server: FakeLLMServer
) -> None:
    product.makepyfile(
        test_dialogue="""
        def test_dialogue(simulated_user):
            simulated_user.run(["please read note s"], policies=["no-secrets"])
            simulated_user.run(["hello"], policies=["polite-greeting"])
        """
    )
    server.reply_function = role_model()
    everything = product.runpytest(
        *llm_args(server, "--agentsim-record-mode=once", "--agentsim-json=r.json")
    )
    everything.assert_outcomes(passed=2, failed=2)
    # 3 per parametrized event (user, user, judge); one judge call per scripted dialogue.
    assert len(server.completion_requests) == 9 + 2
    assert re.search(
        r"cost: \$0\.0000, [\d,]+ tokens in 11 LLM calls \(2 of them in simulated_user tests\)",
        everything.stdout.str(),
    ), everything.stdout.str()
    assert json.loads((product.path / "r.json").read_text())["cost"]["llm_calls"] == 11

    alone = product.runpytest(*llm_args(server, "--agentsim-record-mode=once"), "test_dialogue.py")
    alone.assert_outcomes(passed=1)
    alone.stdout.fnmatch_lines(
        ["*agentsim summary*", "cost: * 0 LLM calls, 2 replayed from cassettes (2 of them in *"]
    )
