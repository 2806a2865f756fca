"""The ``agentsim`` console command: work on packs outside a test run.

``agentsim extract-policies PROMPT.md --domain NAME -o policies/NAME.yaml`` is
IntellAgent's first step: a model reads the agent's system prompt and proposes its
policies (id, description, category, risk category, severity, complexity, suggested
rule checks) in one structured call. The result is written as a pack for a human to
review, and loaded back with the same validation as any pack, so what is written loads.
Suggested checks that do not validate are kept as comments, not silently dropped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

import yaml
from pydantic import BaseModel
from pydantic import Field

from pytest_agentsim.core.taxonomy import RiskTaxonomy
from pytest_agentsim.llm.messages import FALLBACK_MAX_TOKENS

Number = TypeVar("Number", int, float)

if TYPE_CHECKING:
    # Only for the annotations: the command imports them when it runs, so that
    # ``agentsim --help`` does not load the gateway or the rule types.
    from pytest_agentsim.core.checks import RuleRegistry
    from pytest_agentsim.llm.gateway import Gateway


class ExtractedPolicy(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = Field(min_length=1)
    category: str = Field(min_length=1)
    risk_category: str
    severity: str = Field(pattern=r"^(low|medium|high|critical)$")
    complexity: int = Field(ge=1, le=10)
    checks: list[dict[str, Any]] = Field(default_factory=list)


class ExtractedPolicies(BaseModel):
    """The model's reply: the policies it found in the prompt."""

    policies: list[ExtractedPolicy] = Field(min_length=1)


def extraction_messages(
    prompt: str, domain: str, risks: Sequence[str], checks: Sequence[str]
) -> list[dict[str, Any]]:
    return [
        {
            "role": "system",
            "content": "You extract the business policies a customer-service agent must follow "
            "from its system prompt, one policy per rule. Answer with JSON only.",
        },
        {
            "role": "user",
            "content": f"Domain: {domain}\n\nSystem prompt:\n<<<\n{prompt}\n>>>\n\n"
            "For each policy give: id (a short slug), description, category, risk_category "
            f"(one of: {', '.join(risks)}), severity (low, medium, high or critical), "
            "complexity (1-10: how hard it is to follow), and checks: rule checks that "
            f"would detect a violation, each with a type among {', '.join(checks)}. "
            'Reply as {"policies": [...]}.',
        },
    ]


def extract_policies(
    prompt: str, *, domain: str, gateway: Gateway, registry: RuleRegistry, taxonomy: RiskTaxonomy
) -> tuple[dict[str, Any], list[str]]:
    """The pack document and the comments (rejected suggestions) to write above it."""
    messages = extraction_messages(prompt, domain, taxonomy.names, registry.names)
    extracted, _ = gateway.structured(messages, ExtractedPolicies)
    notes: list[str] = []
    policies = []
    for policy in extracted.policies:
        data = policy.model_dump()
        if policy.risk_category not in taxonomy:
            notes.append(
                f"policy {policy.id}: the model said risk category {policy.risk_category!r}, "
                "which the taxonomy lacks; set to Operational Misuses"
            )
            data["risk_category"] = "Operational Misuses"
        kept = []
        for check in policy.checks:
            try:
                registry.parse(check)
            except Exception as exc:
                notes.append(f"policy {policy.id}: rejected check {check}: {exc}".splitlines()[0])
            else:
                kept.append(check)
        data["checks"] = kept
        if not kept:
            del data["checks"]
        policies.append(data)
    return {"domain": domain, "policies": policies}, notes


def _extract_command(args: argparse.Namespace) -> int:
    from pytest_agentsim.core.errors import ConfigError
    from pytest_agentsim.core.sources import read_user_text
    from pytest_agentsim.judging.rules import default_registry
    from pytest_agentsim.llm.gateway import Gateway
    from pytest_agentsim.llm.messages import LLMConfig
    from pytest_agentsim.llm.messages import LLMError
    from pytest_agentsim.packs.loading import load_pack

    prompt_path = Path(args.prompt)
    try:
        prompt = read_user_text(prompt_path, what="prompt")
    except ConfigError as exc:
        print(f"agentsim: {exc}", file=sys.stderr)
        return 2
    gateway = Gateway(
        LLMConfig(
            model=args.model,
            api_base=args.api_base,
            api_key_env=args.api_key_env,
            max_tokens=args.max_tokens,
            timeout=args.timeout,
        )
    )
    registry = default_registry()
    try:
        document, notes = extract_policies(
            prompt, domain=args.domain, gateway=gateway, registry=registry, taxonomy=RiskTaxonomy()
        )
    except LLMError as exc:
        print(f"agentsim: extract-policies: {exc}", file=sys.stderr)
        return 1
    header = [
        f"# Policies extracted from {prompt_path.name} by {args.model}: review before use.",
        *(f"# NOTE {note}" for note in notes),
    ]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    output.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    try:
        pack = load_pack(output, registry=registry)
    except ConfigError as exc:
        print(f"agentsim: wrote {output}, but it does not load: {exc}", file=sys.stderr)
        return 1
    print(
        f"agentsim: wrote {output}: {len(pack.policies)} policies "
        f"({gateway.usage.calls} LLM calls, ${gateway.usage.cost_usd:.4f}); review it"
    )
    return 0


def _positive(kind: Callable[[str], Number]) -> Callable[[str], Number]:
    """An argparse type: ``kind`` of the text, > 0, else a usage error naming the value."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            value = kind("0")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentsim", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    extract = commands.add_parser(
        "extract-policies", help="propose a policy pack from an agent's system prompt"
    )
    extract.add_argument("prompt", help="the agent's system prompt (a text or Markdown file)")
    extract.add_argument("--domain", required=True, help="the pack's domain slug")
    extract.add_argument("-o", "--output", required=True, help="the pack file to write")
    extract.add_argument("--model", required=True, help="litellm model, e.g. openai/gpt-4o")
    extract.add_argument("--api-base", default=None, help="OpenAI-compatible endpoint URL")
    extract.add_argument(
        "--api-key-env", default=None, help="name of the env var that holds the API key"
    )
    extract.add_argument(
        "--max-tokens",
        type=_positive(int),
        default=FALLBACK_MAX_TOKENS,
        help=f"max_tokens of the call, so a looping model stops (default {FALLBACK_MAX_TOKENS})",
    )
    extract.add_argument(
        "--timeout",
        type=_positive(float),
        default=60.0,
        help="seconds one request may take before it is retried (default 60)",
    )
    calibrate = commands.add_parser(
        "calibrate",
        help="measure every judge against a labelled calibration set (runs pytest)",
        description="Runs `pytest --agentsim --agentsim-calibrate=SET -m agentsim_calibration "
        "[PYTEST_ARGS]`: the judges your conftest and ini file configure (rule checks, the "
        "LLM judge, plugin judges) judge every labelled case, and each judge's agreement with "
        "the labels is printed. Give the test directory and any options after the set, e.g. "
        "`agentsim calibrate fixtures/calibration/airline example_tests "
        "--agentsim-judge-model=openai/gpt-4o-mini --agentsim-min-judge-agreement=0.9`.",
    )
    calibrate.add_argument("set", help="the calibration set: a directory of case files")
    args, rest = parser.parse_known_args(argv)
    if args.command == "calibrate":
        return _calibrate_command(args.set, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return _extract_command(args)


def _calibrate_command(calibration_set: str, pytest_args: Sequence[str]) -> int:
    import pytest

    return int(
        pytest.main(
            [
                "--agentsim",
                f"--agentsim-calibrate={calibration_set}",
                "-m",
                "agentsim_calibration",
                # this process has imported the package already (it runs this command)
                "-W",
                "ignore::pytest.PytestAssertRewriteWarning",
                *pytest_args,
            ]
        )
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
