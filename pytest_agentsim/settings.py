"""Options resolved once per run: command line over ini file over defaults.

Every bad value is a one-line usage error naming the option (or the ini file and key)
and what was expected. Flags, ini keys, defaults, minimums and choices come from
:mod:`pytest_agentsim.options`, the table the command line and the README are made from.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from pathlib import PurePath
from typing import Any
from typing import Literal
from typing import TypeVar

import pytest
from pydantic import ValidationError

from pytest_agentsim import options
from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.llm.messages import DEFAULT_MAX_TOKENS
from pytest_agentsim.llm.messages import ModelPrice
from pytest_agentsim.llm.messages import RateLimit
from pytest_agentsim.llm.messages import RoleName
from pytest_agentsim.llm.messages import parse_max_tokens
from pytest_agentsim.llm.run import LLMSettings
from pytest_agentsim.options import Option
from pytest_agentsim.reporting.baseline import load_baseline
from pytest_agentsim.reporting.calibration import AgreementThresholds
from pytest_agentsim.reporting.comparison import BaselineSettings
from pytest_agentsim.reporting.gates import GateSettings
from pytest_agentsim.reporting.gates import parse_rate
from pytest_agentsim.reporting.gates import parse_thresholds

Choice = TypeVar("Choice", bound=str)
RateDefault = TypeVar("RateDefault", float, None)


@dataclass(frozen=True)
class Settings:
    """Options resolved once: command line over ini over defaults."""

    packs: tuple[Path, ...]
    events: tuple[Path, ...]
    generate: bool
    seed: int
    max_turns: int
    max_tool_rounds: int
    turn_timeout: float | None
    #: "event": a test per event; "policy": a test per (event, policy of its pack)
    test_per: Literal["event", "policy"]
    progress_seconds: int
    repeat: int
    concurrency: int
    json_path: Path | None
    gates: GateSettings
    llm: LLMSettings
    calibration: Path | None = None
    agreement: AgreementThresholds = field(default_factory=AgreementThresholds)


def _given(config: pytest.Config, option: Option[object]) -> Any:
    """The command line's value, or None for a setting that exists only in the ini file."""
    return config.getoption(option.name) if option.flag else None


def _ini(config: pytest.Config, option: Option[object]) -> Any:
    """The ini file's value, or None for a setting that exists only on the command line."""
    return config.getini(option.ini) if option.ini else None


def _int_setting(config: pytest.Config, option: Option[int]) -> int:
    value = _given(config, option)
    source = _where(config, option, False)
    if value is None:
        raw = _ini(config, option)
        if raw in ("", None):
            return option.default
        source = _where(config, option, True)
        value = raw
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: expected an integer, got {value!r}") from None
    if option.minimum is not None and number < option.minimum:
        raise ConfigError(f"{source}: expected an integer >= {option.minimum}, got {number}")
    if option.maximum is not None and number > option.maximum:
        raise ConfigError(f"{source}: expected an integer <= {option.maximum}, got {number}")
    return number


SecondsDefault = TypeVar("SecondsDefault", float, None)

#: A day: longer is surely a unit mistake (milliseconds?), and a timer that long is no limit.
_MAX_SECONDS = 86_400.0


def _seconds_setting(
    config: pytest.Config, option: Option[SecondsDefault]
) -> float | SecondsDefault:
    """A duration in seconds (``5``, ``0.5``, ``5s``), > 0 and at most a day."""
    value, where = _text_setting(config, option)
    if value is None:
        return option.default
    try:
        seconds = float(value.removesuffix("s").strip())
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= _MAX_SECONDS:  # also rejects nan
        raise ConfigError(
            f"{where}: expected a number of seconds > 0 and <= {_MAX_SECONDS:g}, got {value!r}"
        )
    return seconds


def _max_tokens(config: pytest.Config) -> dict[RoleName, int]:
    value, where = _text_setting(config, options.MAX_TOKENS)
    if value is None:
        return dict(DEFAULT_MAX_TOKENS)
    try:
        return parse_max_tokens(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _paths(config: pytest.Config, option: Option[str]) -> tuple[Path, ...]:
    given = _given(config, option)
    if given:
        return tuple(Path(config.invocation_params.dir, path).resolve() for path in given)
    from_ini = _ini(config, option)
    if from_ini:
        return tuple(Path(path).resolve() for path in from_ini)
    return tuple(sorted(config.rootpath.glob(option.default)))


def _default_dir(config: pytest.Config, option: Option[str]) -> str:
    """Where a ``paths`` setting looks by default, for the message that finds nothing."""
    return display_path(config.rootpath / PurePath(option.default).parent)


def _ini_keys(config: pytest.Config) -> list[str]:
    """The keys the ini file (and ``-o``) set: pytest reports unknown ones only as a
    warning, and offers no other way to list them (``inicfg`` is deprecated, still there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [str(key) for key in config.inicfg]


def _ini_line(config: pytest.Config, key: str) -> str:
    """``file:line`` of an ini key, or where else it came from."""
    overrides = getattr(config.option, "override_ini", None) or []
    if any(str(item).split("=", 1)[0].strip() == key for item in overrides):
        return f"-o {key}"
    if config.inipath is None:
        return "ini"
    where = display_path(config.inipath)
    try:
        lines = config.inipath.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return where
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*[=:]")
    number = next((n for n, line in enumerate(lines, 1) if pattern.match(line)), None)
    return f"{where}:{number}" if number else where


def check_ini_keys(config: pytest.Config) -> None:
    """An ini key that looks like one of ours but is not is a usage error naming the
    nearest known key: pytest only warns, and a misspelt gate would silently not apply.

    Keys another plugin registered are known to pytest and left alone; so are unknown
    keys that neither start with ``agentsim`` nor come close to one of ours.
    """
    ours = sorted(option.ini for option in options.OPTIONS if option.ini)
    for key in sorted(_ini_keys(config)):
        if key in ours:
            continue
        try:
            config.getini(key)
            continue  # registered by pytest or another plugin
        except ValueError:
            pass
        nearest = difflib.get_close_matches(key, ours, n=1, cutoff=0.8)
        if not key.lower().startswith("agentsim") and not nearest:
            continue
        hint = (
            f"did you mean {nearest[0]!r}?"
            if nearest
            else "not a pytest-agentsim setting; `pytest --help` lists them"
        )
        raise ConfigError(f"{_ini_line(config, key)}: unknown ini key {key!r} ({hint})")


def resolve_settings(config: pytest.Config) -> Settings:
    check_ini_keys(config)
    packs = _paths(config, options.PACKS)
    if not packs:
        raise ConfigError(
            "--agentsim: no policy pack found; pass --agentsim-pack PATH, set agentsim_packs "
            f"in the ini file, or put packs under {_default_dir(config, options.PACKS)}/"
        )
    events = _paths(config, options.EVENTS)
    generate = bool(_given(config, options.GENERATE))
    if not events and not generate:
        raise ConfigError(
            "--agentsim: no events file found; generate one with --agentsim-generate, pass "
            "--agentsim-events PATH, set agentsim_events in the ini file, or put snapshots under "
            f"{_default_dir(config, options.EVENTS)}/"
        )
    if _given(config, options.GENERATE_MODEL) and not generate:
        raise ConfigError(
            "--agentsim-generate-model: only used with --agentsim-generate (add it to "
            "regenerate the snapshots with the model)"
        )
    return Settings(
        packs=packs,
        events=events,
        generate=generate,
        seed=_int_setting(config, options.SEED),
        max_turns=_int_setting(config, options.MAX_TURNS),
        max_tool_rounds=_int_setting(config, options.MAX_TOOL_ROUNDS),
        test_per=_choice_setting(config, options.TEST_PER),
        turn_timeout=_seconds_setting(config, options.TURN_TIMEOUT),
        progress_seconds=_int_setting(config, options.PROGRESS_SECONDS),
        repeat=_int_setting(config, options.REPEAT),
        concurrency=_int_setting(config, options.CONCURRENCY),
        json_path=_path_setting(config, options.JSON_FILE),
        gates=_gate_settings(config),
        llm=_llm_settings(config),
        calibration=_path_setting(config, options.CALIBRATE),
        agreement=_agreement_thresholds(config),
    )


def _judge_instructions(config: pytest.Config) -> str | None:
    """The judge prompt file's text; it must name where the transcript's fences go."""
    path = _path_setting(config, options.JUDGE_PROMPT)
    if path is None:
        return None
    from pytest_agentsim.core.sources import read_user_text
    from pytest_agentsim.judging.llm_judge import INSTRUCTION_PLACEHOLDERS

    text = read_user_text(path, what="judge prompt")
    missing = [p for p in INSTRUCTION_PLACEHOLDERS if p not in text]
    if missing:
        raise ConfigError(
            f"{display_path(path)}: the judge prompt must contain {' and '.join(missing)} "
            "(where the lines fencing the transcript are named, e.g. 'The conversation is "
            "given between the lines {begin} and {end}')"
        )
    return text


def _agreement_thresholds(config: pytest.Config) -> AgreementThresholds:
    per_policy = _thresholds_setting(config, options.MIN_JUDGE_AGREEMENT_PER_POLICY)
    baseline_path = _path_setting(config, options.CALIBRATION_BASELINE)
    baseline = None
    if baseline_path is not None:
        document = load_baseline(baseline_path)
        baseline = document.get("calibration")
        if not isinstance(baseline, dict):
            raise ConfigError(
                f"{display_path(baseline_path)}: no calibration in it (expected the results "
                "file of a run with --agentsim-calibrate and --agentsim-json)"
            )
    return AgreementThresholds(
        overall=_rate_setting(config, options.MIN_JUDGE_AGREEMENT),
        per_policy=per_policy,
        baseline=baseline,
        baseline_name=display_path(baseline_path) if baseline_path else "",
        alpha=_rate_setting(config, options.BASELINE_ALPHA),
    )


def _where(config: pytest.Config, option: Option[object], from_ini: bool) -> str:
    if option.flag and not from_ini:
        return option.flag
    return f"{option.ini} in {display_path(config.inipath) if config.inipath else 'ini'}"


def _text_setting(config: pytest.Config, option: Option[object]) -> tuple[str | None, str]:
    """(value, where it came from): the command line's, else the ini file's, else None."""
    value = _given(config, option)
    if value not in (None, ""):
        return str(value).strip(), _where(config, option, False)
    raw = str(_ini(config, option) or "").strip()
    return (raw or None), _where(config, option, True)


def _choice_setting(config: pytest.Config, option: Option[Choice]) -> Choice:
    value, where = _text_setting(config, option)
    if value is None:
        return option.default
    for choice in option.choices:
        if value == choice:
            return choice
    raise ConfigError(f"{where}: expected one of {', '.join(option.choices)}, got {value!r}")


def _llm_settings(config: pytest.Config) -> LLMSettings:
    record_mode = _choice_setting(config, options.RECORD_MODE)
    inconclusive = _choice_setting(config, options.INCONCLUSIVE)
    max_cost_text, where = _text_setting(config, options.MAX_COST)
    max_cost = None
    if max_cost_text is not None:
        try:
            max_cost = float(max_cost_text.lstrip("$"))
        except ValueError:
            max_cost = -1.0
        if not max_cost >= 0:  # also rejects nan
            raise ConfigError(
                f"{where}: expected a budget in USD (a number >= 0), got {max_cost_text!r}"
            )
    agent_model, _ = _text_setting(config, options.AGENT_MODEL)
    agent_prompt = _path_setting(config, options.AGENT_PROMPT)
    if agent_prompt is not None and not agent_model:
        raise ConfigError(
            "agentsim_agent_prompt is set but no model: set agentsim_agent_model in the ini "
            "file or pass --agentsim-agent-model MODEL"
        )
    return LLMSettings(
        cassette_dir=_path_setting(config, options.CASSETTES)
        or config.rootpath / options.CASSETTES.default,
        record_mode=record_mode,
        api_base=_text_setting(config, options.API_BASE)[0],
        api_key_env=_text_setting(config, options.API_KEY_ENV)[0],
        max_cost=max_cost,
        user_model=_text_setting(config, options.USER_MODEL)[0],
        judge_model=_text_setting(config, options.JUDGE_MODEL)[0],
        judge_samples=_int_setting(config, options.JUDGE_SAMPLES),
        judge_instructions=_judge_instructions(config),
        agent_model=agent_model,
        agent_prompt=agent_prompt,
        generate_model=_text_setting(config, options.GENERATE_MODEL)[0],
        inconclusive=inconclusive,
        prices=_prices(config),
        rate_limits=_rate_limits(config),
        secret_env=tuple(
            name for line in _ini(config, options.SECRET_ENV) for name in line.split()
        ),
        secret_patterns=_secret_patterns(config),
        timeout=_seconds_setting(config, options.TIMEOUT),
        attempts=_int_setting(config, options.ATTEMPTS),
        max_tokens=_max_tokens(config),
        concurrency=_int_setting(config, options.CONCURRENCY),
    )


def _prices(config: pytest.Config) -> dict[str, ModelPrice]:
    """``model = input, output`` lines: USD per million prompt and completion tokens."""
    where = _where(config, options.PRICES, True)
    prices = {}
    for line in _ini(config, options.PRICES):
        model, sep, values = line.rpartition("=")
        parts = [part.strip().lstrip("$") for part in values.split(",")]
        try:
            if not sep or not model.strip() or len(parts) != 2:
                raise ValueError
            prices[model.strip()] = ModelPrice(
                input_per_million=float(parts[0]), output_per_million=float(parts[1])
            )
        except (ValueError, ValidationError):
            raise ConfigError(
                f"{where}: expected 'model = input, output' (USD per million tokens, "
                f"numbers >= 0), got {line.strip()!r}"
            ) from None
    return prices


def _rate_limits(config: pytest.Config) -> dict[str, RateLimit]:
    """``model = N rpm, M tpm`` lines: requests and tokens per minute, either optional."""
    where = _where(config, options.RATE_LIMITS, True)
    limits = {}
    for line in _ini(config, options.RATE_LIMITS):
        model, sep, values = line.rpartition("=")
        given: dict[str, int] = {}
        try:
            for part in values.split(","):
                number, unit = part.split()
                field = {"rpm": "requests_per_minute", "tpm": "tokens_per_minute"}[unit.lower()]
                if field in given:
                    raise ValueError
                given[field] = int(number.replace("_", ""))
            if not sep or not model.strip() or not given:
                raise ValueError
            limits[model.strip()] = RateLimit(**given)
        except (ValueError, KeyError, ValidationError):
            raise ConfigError(
                f"{where}: expected 'model = N rpm, M tpm' (whole numbers >= 1, either part "
                f"may be left out), got {line.strip()!r}"
            ) from None
    return limits


def _secret_patterns(config: pytest.Config) -> tuple[str, ...]:
    where = _where(config, options.SECRET_PATTERNS, True)
    patterns = []
    for line in _ini(config, options.SECRET_PATTERNS):
        try:
            re.compile(line)
        except re.error as exc:
            raise ConfigError(f"{where}: {line!r} is not a valid regex: {exc}") from None
        patterns.append(line)
    return tuple(patterns)


def _thresholds_setting(config: pytest.Config, option: Option[object]) -> dict[str, float]:
    """An ini option's ``name = rate`` lines; a bad line is a usage error naming it."""
    try:
        return parse_thresholds(_ini(config, option), where=_where(config, option, True))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _rate_setting(config: pytest.Config, option: Option[RateDefault]) -> float | RateDefault:
    value = _given(config, option)
    where = _where(config, option, False)
    if value is None:
        value = _ini(config, option)
        where = _where(config, option, True)
    if value in ("", None):
        return option.default
    try:
        return parse_rate(str(value), where=where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _gate_settings(config: pytest.Config) -> GateSettings:
    per_risk = _thresholds_setting(config, options.MAX_VIOLATION_RATE_PER_RISK)
    per_policy = _thresholds_setting(config, options.MAX_VIOLATION_RATE_PER_POLICY)
    baseline_path = _path_setting(config, options.BASELINE)
    comparison = BaselineSettings(
        alpha=_rate_setting(config, options.BASELINE_ALPHA),
        new_violation=_choice_setting(config, options.BASELINE_NEW_VIOLATION),
        detect=_rate_setting(config, options.BASELINE_DETECT),
        too_few=_choice_setting(config, options.BASELINE_TOO_FEW_SAMPLES),
    )
    return GateSettings(
        max_violation_rate=_rate_setting(config, options.MAX_VIOLATION_RATE),
        per_risk=per_risk,
        per_policy=per_policy,
        min_pass_k=_rate_setting(config, options.MIN_PASS_K),
        baseline=_load_baseline(baseline_path),
        baseline_name=display_path(baseline_path) if baseline_path else "",
        comparison=comparison,
        max_error_rate=_rate_setting(config, options.MAX_ERROR_RATE),
    )


def _path_setting(config: pytest.Config, option: Option[str | None]) -> Path | None:
    """A file option: from the command line relative to the invocation directory, from the
    ini file relative to the ini file."""
    given = _given(config, option)
    if given:
        return Path(config.invocation_params.dir, given).resolve()
    from_ini = _ini(config, option)
    if from_ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return (base / str(from_ini)).resolve()
    return None


def _load_baseline(path: Path | None) -> dict[str, Any] | None:
    return None if path is None else load_baseline(path)
