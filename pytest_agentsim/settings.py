"""Options resolved once per run: command line over ini file over defaults.

Every bad value is a one-line usage error naming the option (or the ini file and key)
and what was expected.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.llm.messages import ModelPrice
from pytest_agentsim.llm.run import INCONCLUSIVE_MODES
from pytest_agentsim.llm.run import LLMSettings
from pytest_agentsim.reporting.gates import GateSettings
from pytest_agentsim.reporting.gates import parse_rate
from pytest_agentsim.reporting.gates import parse_thresholds
from pytest_agentsim.reporting.results import RESULTS_SCHEMA
from pytest_agentsim.reporting.results import RESULTS_VERSION


@dataclass(frozen=True)
class Settings:
    """Options resolved once: command line over ini over defaults."""

    packs: tuple[Path, ...]
    events: tuple[Path, ...]
    generate: bool
    seed: int
    max_turns: int
    progress_seconds: int
    repeat: int
    concurrency: int
    json_path: Path | None
    gates: GateSettings
    llm: LLMSettings


def _int_setting(config: pytest.Config, option: str, ini: str, default: int, minimum: int) -> int:
    value = config.getoption(option, None)  # some settings exist only in the ini file
    source = f"--{option.replace('_', '-')}"
    if value is None:
        raw = config.getini(ini)
        if raw in ("", None):
            return default
        source = f"{ini} in {display_path(config.inipath) if config.inipath else 'ini'}"
        value = raw
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: expected an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{source}: expected an integer >= {minimum}, got {number}")
    return number


def _paths(config: pytest.Config, option: str, ini: str, default_glob: str) -> tuple[Path, ...]:
    given = config.getoption(option)
    if given:
        return tuple(Path(config.invocation_params.dir, path).resolve() for path in given)
    from_ini = config.getini(ini)
    if from_ini:
        return tuple(Path(path).resolve() for path in from_ini)
    return tuple(sorted(config.rootpath.glob(default_glob)))


def resolve_settings(config: pytest.Config) -> Settings:
    packs = _paths(config, "agentsim_packs", "agentsim_packs", "policies/*.yaml")
    if not packs:
        raise ConfigError(
            "--agentsim: no policy pack found; pass --agentsim-pack PATH, set agentsim_packs "
            f"in the ini file, or put packs under {display_path(config.rootpath / 'policies')}/"
        )
    events = _paths(config, "agentsim_events", "agentsim_events", "fixtures/events/*.yaml")
    generate = bool(config.getoption("agentsim_generate", False))
    if not events and not generate:
        raise ConfigError(
            "--agentsim: no events file found; generate one with --agentsim-generate, pass "
            "--agentsim-events PATH, set agentsim_events in the ini file, or put snapshots under "
            f"{display_path(config.rootpath / 'fixtures' / 'events')}/"
        )
    if config.getoption("agentsim_generate_model", None) and not generate:
        raise ConfigError(
            "--agentsim-generate-model: only used with --agentsim-generate (add it to "
            "regenerate the snapshots with the model)"
        )
    return Settings(
        packs=packs,
        events=events,
        generate=generate,
        seed=_int_setting(config, "agentsim_seed", "agentsim_seed", 0, 0),
        max_turns=_int_setting(config, "agentsim_max_turns", "agentsim_max_turns", 20, 1),
        progress_seconds=_int_setting(
            config, "agentsim_progress_seconds", "agentsim_progress_seconds", 10, 0
        ),
        repeat=_int_setting(config, "agentsim_repeat", "agentsim_repeat", 1, 1),
        concurrency=_int_setting(config, "agentsim_concurrency", "agentsim_concurrency", 1, 1),
        json_path=_path_setting(config, "agentsim_json"),
        gates=_gate_settings(config),
        llm=_llm_settings(config),
    )


def _where(config: pytest.Config, option: str, from_ini: bool) -> str:
    if not from_ini:
        return f"--{option.replace('_', '-')}"
    return f"{option} in {display_path(config.inipath) if config.inipath else 'ini'}"


def _text_setting(config: pytest.Config, option: str) -> tuple[str | None, str]:
    """(value, where it came from): the command line's, else the ini file's, else None."""
    value = config.getoption(option, None)
    if value not in (None, ""):
        return str(value).strip(), _where(config, option, False)
    raw = str(config.getini(option) or "").strip()
    return (raw or None), _where(config, option, True)


def _llm_settings(config: pytest.Config) -> LLMSettings:
    from pytest_agentsim.llm.cassettes import RECORD_MODES

    record_mode, where = _text_setting(config, "agentsim_record_mode")
    if record_mode is not None and record_mode not in RECORD_MODES:
        raise ConfigError(
            f"{where}: expected one of {', '.join(RECORD_MODES)}, got {record_mode!r}"
        )
    inconclusive, where = _text_setting(config, "agentsim_inconclusive")
    if inconclusive is not None and inconclusive not in INCONCLUSIVE_MODES:
        raise ConfigError(
            f"{where}: expected one of {', '.join(INCONCLUSIVE_MODES)}, got {inconclusive!r}"
        )
    max_cost_text, where = _text_setting(config, "agentsim_max_cost")
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
    agent_model, _ = _text_setting(config, "agentsim_agent_model")
    agent_prompt = _path_setting(config, "agentsim_agent_prompt")
    if agent_prompt is not None and not agent_model:
        raise ConfigError(
            "agentsim_agent_prompt is set but no model: set agentsim_agent_model in the ini "
            "file or pass --agentsim-agent-model MODEL"
        )
    return LLMSettings(
        cassette_dir=_path_setting(config, "agentsim_cassettes")
        or config.rootpath / "fixtures" / "cassettes",
        record_mode=record_mode or "none",
        api_base=_text_setting(config, "agentsim_api_base")[0],
        api_key_env=_text_setting(config, "agentsim_api_key_env")[0],
        max_cost=max_cost,
        user_model=_text_setting(config, "agentsim_user_model")[0],
        judge_model=_text_setting(config, "agentsim_judge_model")[0],
        judge_samples=_int_setting(
            config, "agentsim_judge_samples", "agentsim_judge_samples", 1, 1
        ),
        agent_model=agent_model,
        agent_prompt=agent_prompt,
        generate_model=_text_setting(config, "agentsim_generate_model")[0],
        inconclusive=inconclusive or "fail",
        prices=_prices(config),
        secret_env=tuple(
            name for line in config.getini("agentsim_secret_env") for name in line.split()
        ),
        secret_patterns=_secret_patterns(config),
    )


def _prices(config: pytest.Config) -> dict[str, ModelPrice]:
    """``model = input, output`` lines: USD per million prompt and completion tokens."""
    where = _where(config, "agentsim_prices", True)
    prices = {}
    for line in config.getini("agentsim_prices"):
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


def _secret_patterns(config: pytest.Config) -> tuple[str, ...]:
    where = _where(config, "agentsim_secret_patterns", True)
    patterns = []
    for line in config.getini("agentsim_secret_patterns"):
        try:
            re.compile(line)
        except re.error as exc:
            raise ConfigError(f"{where}: {line!r} is not a valid regex: {exc}") from None
        patterns.append(line)
    return tuple(patterns)


def _rate_setting(config: pytest.Config, option: str) -> float | None:
    value = config.getoption(option, None)  # some settings exist only in the ini file
    where = f"--{option.replace('_', '-')}"
    if value is None:
        value = config.getini(option)
        where = f"{option} in {display_path(config.inipath) if config.inipath else 'ini'}"
    if value in ("", None):
        return None
    try:
        return parse_rate(str(value), where=where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _gate_settings(config: pytest.Config) -> GateSettings:
    ini = display_path(config.inipath) if config.inipath else "ini"
    try:
        per_risk = parse_thresholds(
            config.getini("agentsim_max_violation_rate_per_risk"),
            where=f"agentsim_max_violation_rate_per_risk in {ini}",
        )
        per_policy = parse_thresholds(
            config.getini("agentsim_max_violation_rate_per_policy"),
            where=f"agentsim_max_violation_rate_per_policy in {ini}",
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    baseline_path = _path_setting(config, "agentsim_baseline")
    alpha_text = config.getini("agentsim_baseline_alpha")
    try:
        alpha = (
            parse_rate(alpha_text, where=f"agentsim_baseline_alpha in {ini}")
            if alpha_text
            else 0.05
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return GateSettings(
        max_violation_rate=_rate_setting(config, "agentsim_max_violation_rate"),
        per_risk=per_risk,
        per_policy=per_policy,
        min_pass_k=_rate_setting(config, "agentsim_min_pass_k"),
        baseline=_load_baseline(baseline_path),
        baseline_name=display_path(baseline_path) if baseline_path else "",
        alpha=alpha,
    )


def _path_setting(config: pytest.Config, option: str) -> Path | None:
    """A file option: from the command line relative to the invocation directory, from the
    ini file relative to the ini file."""
    given = config.getoption(option)
    if given:
        return Path(config.invocation_params.dir, given).resolve()
    from_ini = config.getini(option)
    if from_ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return (base / str(from_ini)).resolve()
    return None


def _load_baseline(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    where = display_path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: baseline results file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}:{exc.lineno}: baseline is not valid JSON: {exc.msg}") from None
    if not isinstance(document, dict) or document.get("schema") != RESULTS_SCHEMA:
        raise ConfigError(
            f"{where}: not a pytest-agentsim results file (expected schema {RESULTS_SCHEMA!r}; "
            "write one with --agentsim-json)"
        )
    if document.get("version") != RESULTS_VERSION:
        raise ConfigError(
            f"{where}: results version {document.get('version')!r} is not supported "
            f"(expected {RESULTS_VERSION})"
        )
    return document
