"""Reading a baseline: a results file (``--agentsim-json``) a later run is gated against.

A baseline decides whether a run passes, so it is validated like any other user input:
a file that is not a results file, a count that is not a whole number, a policy without
counts or with more violations than events is a one-line usage error naming the file,
the line and the field. Nothing in it may be quietly read as zero: a baseline that
lists no policy at all would compare nothing and let a failing run pass.

Only what the gate reads is validated (each policy's ``events``, ``violated`` and
``not_applicable``, and the other outcome counts when present); other keys pass through,
so results files that gain fields stay valid baselines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StrictInt
from pydantic import ValidationError

from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.core.sources import json_lines
from pytest_agentsim.core.sources import line_of
from pytest_agentsim.core.sources import read_user_text
from pytest_agentsim.core.sources import validation_error_message
from pytest_agentsim.reporting.results import RESULTS_SCHEMA
from pytest_agentsim.reporting.results import RESULTS_VERSION

_WHAT = "baseline results file"
#: Results files grow with events x trials (a kilobyte or so per record); the gate reads
#: them with the json module, which is fast, so the limit is well above the YAML files'.
MAX_BASELINE_BYTES = 256 * 1024 * 1024
#: The outcome counts a policy's entry may carry besides ``events``; each is a share of it.
OUTCOME_COUNTS = ("compliant", "violated", "errors", "not_applicable", "inconclusive")


class BaselineSamples(BaseModel):
    """A policy's counts over distinct transcripts (identical trials once)."""

    model_config = ConfigDict(extra="allow")

    violated: StrictInt = Field(ge=0)
    judged: StrictInt = Field(ge=0)


class BaselinePolicy(BaseModel):
    """One policy's counts in a baseline (``policies.<id>`` of a results file)."""

    model_config = ConfigDict(extra="allow")

    events: StrictInt = Field(ge=0, description="Events the policy was judged in")
    violated: StrictInt = Field(ge=0)
    not_applicable: StrictInt = Field(ge=0)
    compliant: StrictInt | None = Field(default=None, ge=0)
    errors: StrictInt | None = Field(default=None, ge=0)
    inconclusive: StrictInt | None = Field(default=None, ge=0)
    samples: BaselineSamples | None = Field(
        default=None, description="Distinct samples (absent in files before it existed)"
    )


class Baseline(BaseModel):
    """What of a results file the baseline gate reads."""

    model_config = ConfigDict(extra="allow")

    policies: dict[str, BaselinePolicy] = Field(
        min_length=1, description="Policy id -> its counts; a baseline compares policies"
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise ValueError(f"duplicate key {duplicate!r}")
    return dict(pairs)


def load_baseline(path: Path) -> dict[str, Any]:
    """The results file at ``path``, checked to be a baseline the gate can trust."""
    where = display_path(path)
    text = read_user_text(path, what=_WHAT, max_bytes=MAX_BASELINE_BYTES)
    if not text.strip():
        raise ConfigError(f"{where}: the {_WHAT} is empty (write one with --agentsim-json)")
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}:{exc.lineno}: baseline is not valid JSON: {exc.msg}") from None
    except ValueError as exc:  # a duplicate key: read again, to name both of its lines
        json_lines(path, text, what=_WHAT)
        raise ConfigError(f"{where}: invalid JSON in {_WHAT}: {exc}") from None
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
    try:
        baseline = Baseline.model_validate(document)
    except ValidationError as exc:
        raw = json_lines(path, text, what=_WHAT)
        raise ConfigError(
            validation_error_message(
                path,
                raw,
                exc,
                model=Baseline,
                context=lambda loc: ("invalid baseline: ", loc),
            )
        ) from None
    for name, counts in baseline.policies.items():
        shares = {
            outcome: value
            for outcome in OUTCOME_COUNTS
            if (value := getattr(counts, outcome)) is not None
        }
        if sum(shares.values()) > counts.events:
            raw = json_lines(path, text, what=_WHAT)
            line = line_of(raw, ("policies", name))
            location = f"{where}:{line}" if line else where
            listed = " + ".join(f"{outcome} {value}" for outcome, value in shares.items())
            raise ConfigError(
                f"{location}: invalid baseline: policies.{name}: the outcome counts "
                f"({listed}) add up to more than events ({counts.events})"
            )
        samples = counts.samples
        if samples is not None and samples.violated > samples.judged:
            raw = json_lines(path, text, what=_WHAT)
            line = line_of(raw, ("policies", name, "samples"))
            location = f"{where}:{line}" if line else where
            raise ConfigError(
                f"{location}: invalid baseline: policies.{name}.samples: violated "
                f"({samples.violated}) is more than judged ({samples.judged})"
            )
    return document
