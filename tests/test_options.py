"""The options table is the one source of the command line, the ini keys, the defaults and
the README's options table: each is checked against it here."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim import options
from pytest_agentsim.llm.cassettes import RECORD_MODES
from pytest_agentsim.llm.messages import DEFAULT_MAX_TOKENS
from pytest_agentsim.llm.messages import max_tokens_text
from pytest_agentsim.llm.messages import parse_max_tokens
from pytest_agentsim.llm.run import INCONCLUSIVE_MODES
from pytest_agentsim.options import OPTIONS
from pytest_agentsim.options import Option
from pytest_agentsim.settings import Settings
from pytest_agentsim.settings import resolve_settings

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| option | ini | default |"
WITH_FLAG = [option for option in OPTIONS if option.flag]
WITH_INI = [option for option in OPTIONS if option.ini]


def readme_options_table() -> str:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER)
    end = next(i for i in range(start, len(lines)) if not lines[i] or lines[i].startswith("#"))
    return "\n".join(lines[start:end])


def test_readme_table_is_the_rendered_one() -> None:
    assert readme_options_table() == options.readme_table(), (
        "README.md's options table differs from pytest_agentsim/options.py; paste "
        "`python -c 'from pytest_agentsim.options import readme_table; print(readme_table())'`"
    )


def test_table_is_consistent() -> None:
    names = [option.name for option in OPTIONS]
    flags = [option.flag for option in WITH_FLAG]
    inis = [option.ini for option in WITH_INI]
    assert len(set(names)) == len(names)
    assert len(set(flags)) == len(flags)
    assert len(set(inis)) == len(inis)
    for option in OPTIONS:
        assert option.flag or option.ini, option.name
        assert (option.kind == "flag") == (option.ini is None), option.name
        assert (option.kind == "int") == (option.minimum is not None), option.name
        assert (option.kind == "choice") == bool(option.choices), option.name
        assert not option.choices or option.default in option.choices, option.name
        assert (option.metavar is None) == (option.kind == "flag" or not option.flag), option.name
        assert option.shown_default != "None", f"{option.name}: say what applies by default"
        assert not option.help.endswith("."), option.name


def test_choices_are_the_modes_the_llm_layer_knows() -> None:
    assert options.RECORD_MODE.choices == RECORD_MODES
    assert options.INCONCLUSIVE.choices == INCONCLUSIVE_MODES


def test_options_import_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import pytest_agentsim.options; "
        "print(*sorted(set(sys.modules) - before))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    outside = {
        name
        for name in loaded
        if name.partition(".")[0] not in sys.stdlib_module_names
        and name not in ("pytest_agentsim", "pytest_agentsim.options")
    }
    assert not outside


def test_help_lists_every_flag_and_ini_key(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--help").stdout.str()
    for option in WITH_FLAG:
        listed = f"{option.flag}={option.metavar}" if option.metavar else f"{option.flag} "
        assert listed in text, option.name
    for option in WITH_INI:
        assert f"{option.ini} ({option.ini_type}):" in text, option.name


def _given(option: Option[object]) -> tuple[list[str], object]:
    """Command line arguments that set ``option``, and the value pytest should parse."""
    if option.kind == "flag":
        return [str(option.flag)], True
    if option.kind == "paths":
        return [f"{option.flag}=a.yaml", f"{option.flag}=b.yaml"], ["a.yaml", "b.yaml"]
    return [f"{option.flag}=x"], "x"


@pytest.mark.parametrize("option", WITH_FLAG, ids=lambda option: option.name)
def test_every_flag_is_accepted(pytester: pytest.Pytester, option: Option[object]) -> None:
    args, value = _given(option)
    assert pytester.parseconfig(*args).getoption(option.name) == value


def test_every_ini_key_is_registered(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    for option in WITH_INI:
        assert config.getini(str(option.ini)) == ([] if option.ini_type != "string" else "")


@pytest.fixture
def unset(pytester: pytest.Pytester) -> Settings:
    """The settings of a run that sets nothing (a pack and an events file where the
    defaults look for them)."""
    pytester.makeini("[pytest]\n")
    for path in ("policies/p.yaml", "fixtures/events/e.yaml"):
        (pytester.path / path).parent.mkdir(parents=True)
        (pytester.path / path).touch()
    return resolve_settings(pytester.parseconfig("--agentsim"))


DEFAULTS: list[tuple[Option[object], object, Callable[[Settings], Any]]] = [
    (options.SEED, 0, lambda settings: settings.seed),
    (options.MAX_TURNS, 20, lambda settings: settings.max_turns),
    (options.REPEAT, 1, lambda settings: settings.repeat),
    (options.CONCURRENCY, 1, lambda settings: settings.concurrency),
    (options.PROGRESS_SECONDS, 10, lambda settings: settings.progress_seconds),
    (options.JSON_FILE, None, lambda settings: settings.json_path),
    (options.MAX_VIOLATION_RATE, None, lambda settings: settings.gates.max_violation_rate),
    (options.MIN_PASS_K, None, lambda settings: settings.gates.min_pass_k),
    (options.BASELINE_ALPHA, 0.05, lambda settings: settings.gates.comparison.alpha),
    (
        options.BASELINE_NEW_VIOLATION,
        "fail",
        lambda settings: settings.gates.comparison.new_violation,
    ),
    (options.BASELINE_DETECT, 0.2, lambda settings: settings.gates.comparison.detect),
    (
        options.BASELINE_TOO_FEW_SAMPLES,
        "warn",
        lambda settings: settings.gates.comparison.too_few,
    ),
    (options.RECORD_MODE, "none", lambda settings: settings.llm.record_mode),
    (options.INCONCLUSIVE, "fail", lambda settings: settings.llm.inconclusive),
    (options.JUDGE_SAMPLES, 1, lambda settings: settings.llm.judge_samples),
    (options.USER_MODEL, None, lambda settings: settings.llm.user_model),
    (options.MAX_COST, None, lambda settings: settings.llm.max_cost),
    (options.TIMEOUT, 60.0, lambda settings: settings.llm.timeout),
    (options.ATTEMPTS, 4, lambda settings: settings.llm.attempts),
    (options.TURN_TIMEOUT, None, lambda settings: settings.turn_timeout),
]


@pytest.mark.parametrize(
    ("option", "expected", "resolved"),
    [pytest.param(*case, id=case[0].name) for case in DEFAULTS],
)
def test_table_default_is_what_resolution_gives(
    unset: Settings,
    option: Option[object],
    expected: object,
    resolved: Callable[[Settings], Any],
) -> None:
    assert option.default == expected
    assert resolved(unset) == expected


def test_path_defaults_are_under_the_rootdir(pytester: pytest.Pytester, unset: Settings) -> None:
    assert unset.packs == (pytester.path / "policies" / "p.yaml",)
    assert unset.events == (pytester.path / "fixtures" / "events" / "e.yaml",)
    assert unset.llm.cassette_dir == pytester.path / options.CASSETTES.default


def test_max_tokens_default_is_the_llm_layers(unset: Settings) -> None:
    """The README's default cell is the table the gateway's roles really use."""
    assert options.MAX_TOKENS.default_text == f"`{max_tokens_text(DEFAULT_MAX_TOKENS)}`"
    assert unset.llm.max_tokens == DEFAULT_MAX_TOKENS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", {"user": 1000, "judge": 1000, "agent": 1000, "generate": 1000}),
        (
            "user=200, judge=2000, agent=1000",
            {"user": 200, "judge": 2000, "agent": 1000, "generate": 4096},
        ),
        ("2000, user=300", {"user": 300, "judge": 2000, "agent": 2000, "generate": 2000}),
        ("judge = 500\n generate=8000", {**DEFAULT_MAX_TOKENS, "judge": 500, "generate": 8000}),
    ],
)
def test_max_tokens_forms(text: str, expected: dict[str, int]) -> None:
    assert parse_max_tokens(text) == expected


@pytest.mark.parametrize("text", ["", "user=0", "bot=5", "many", "=5", "user=1.5", "-3"])
def test_bad_max_tokens_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"^expected "):
        parse_max_tokens(text)


@pytest.mark.parametrize(
    ("ini", "expected"),
    [("agentsim_timeout = 2.5", 2.5), ("agentsim_timeout = 5s", 5.0)],
)
def test_seconds_from_the_ini_file(pytester: pytest.Pytester, ini: str, expected: float) -> None:
    pytester.makeini(f"[pytest]\n{ini}\nagentsim_turn_timeout = 7\n")
    for path in ("policies/p.yaml", "fixtures/events/e.yaml"):
        (pytester.path / path).parent.mkdir(parents=True)
        (pytester.path / path).touch()
    settings = resolve_settings(pytester.parseconfig("--agentsim"))
    assert settings.llm.timeout == expected
    assert settings.turn_timeout == 7.0
