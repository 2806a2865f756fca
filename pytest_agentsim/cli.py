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

from pytest_agentsim.core.errors import ConfigError
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
    label = commands.add_parser(
        "label",
        help="turn a judged event of a results file into a labelled calibration case",
        description="Writes (or adds a label to) SET/<case id>.yaml from an event of the "
        "JSON results (--agentsim-json): its transcript and database changes, as the run "
        "redacted them, and your verdict on one policy.",
    )
    label.add_argument("results", help="the JSON results file of a run (--agentsim-json)")
    label.add_argument("event", help="the event id")
    label.add_argument("policy", help="the policy id to label")
    label.add_argument(
        "--outcome", required=True, choices=["compliant", "violated", "not_applicable"]
    )
    label.add_argument("--note", default="", help="why: what a reviewer should know")
    label.add_argument("--turn", type=int, default=None, help="the message index that shows it")
    label.add_argument("--trial", type=int, default=1, help="which trial (--agentsim-repeat)")
    label.add_argument(
        "--set",
        dest="calibration_set",
        default=None,
        help="the calibration set directory (default fixtures/calibration/<domain>)",
    )
    label.add_argument("--id", dest="case_id", default=None, help="the case id (default EVENT)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "calibrate":
        return _calibrate_command(args.set, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "label":
        try:
            print(_label_command(args))
        except ConfigError as exc:
            print(f"agentsim: label: {exc}", file=sys.stderr)
            return 2
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return _extract_command(args)


class _NoAliases(yaml.SafeDumper):
    """Writes a part shared by both databases twice rather than as ``&id001``/``*id001``:
    a case is reviewed in pull requests."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _label_command(args: argparse.Namespace) -> str:
    """Append (or relabel) a case from a results file; the case loads as any case does."""
    import json
    import os

    from pytest_agentsim.core.dbstate import applied
    from pytest_agentsim.core.models import EventRecord
    from pytest_agentsim.core.sources import display_path
    from pytest_agentsim.judging.calibration import add_label
    from pytest_agentsim.judging.calibration import case_document
    from pytest_agentsim.judging.calibration import load_calibration_set
    from pytest_agentsim.judging.rules import default_registry
    from pytest_agentsim.packs.events import starting_db
    from pytest_agentsim.packs.loading import load_pack

    results_path = Path(args.results)
    try:
        document = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{args.results}: not a results file ({exc})") from None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        raise ConfigError(f"{args.results}: not a results file of --agentsim-json (no events)")
    found = [
        EventRecord.model_validate(item)
        for item in events
        if isinstance(item, dict) and item.get("event") == args.event
    ]
    record = next((r for r in found if r.trial == args.trial - 1), None)
    if record is None:
        trials = ", ".join(str(r.trial + 1) for r in found) or "none"
        raise ConfigError(
            f"{args.results}: no event {args.event!r} trial {args.trial} (its trials: {trials})"
        )
    if record.transcript is None:
        raise ConfigError(
            f"{args.results}: event {args.event!r} has no transcript (a file written before "
            "results kept them): run again with --agentsim-json"
        )
    pack_entry = next(
        (p for p in document.get("run", {}).get("packs", []) if p.get("domain") == record.domain),
        None,
    )
    if pack_entry is None:
        raise ConfigError(f"{args.results}: run.packs names no pack of domain {record.domain!r}")
    candidates = [Path(pack_entry["path"]), results_path.parent / pack_entry["path"]]
    pack_path = next((c.resolve() for c in candidates if c.is_file()), None)
    if pack_path is None:
        raise ConfigError(
            f"{args.results}: the pack {pack_entry['path']} is not found from here or "
            "beside the results file: run this in the repository the run was made in"
        )
    pack = load_pack(pack_path, registry=default_registry())
    if pack.policies and args.policy not in {p.id for p in pack.policies}:
        raise ConfigError(f"{display_path(pack_path)}: no policy {args.policy!r} in the pack")
    transcript = record.transcript
    target = Path(args.calibration_set or Path("fixtures") / "calibration" / record.domain)
    target.mkdir(parents=True, exist_ok=True)
    case_id = args.case_id or (args.event + (f"-r{args.trial}" if args.trial > 1 else ""))
    case_file = target / f"{case_id}.yaml"
    if case_file.is_file():
        case = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    else:
        before = starting_db(pack, transcript.event)
        case = case_document(
            case_id=case_id,
            pack_ref=os.path.relpath(pack_path, target.resolve()),
            event=transcript.event,
            messages=transcript.messages,
            db_before=before,
            db_after=applied(before, transcript.db_before, transcript.db_after),
            stop_reason=record.stop_reason,
            source=f"{display_path(results_path)}: event {args.event} trial {args.trial}",
        )
    add_label(case, args.policy, args.outcome, turn=args.turn, note=args.note)
    case_file.write_text(
        yaml.dump(case, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )
    cases = load_calibration_set(target, registry=default_registry())
    return (
        f"agentsim: wrote {display_path(case_file)}: {args.policy} labelled {args.outcome} "
        f"({len(cases)} cases in {display_path(target)})"
    )


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
