"""Judge calibration: how far a judge can be trusted, measured on labelled conversations.

A team's first question about an LLM judge is "can I trust it?", and after a change of
the judge's model or prompt, "did it get worse?". A calibration set answers both: real
or hand-written conversations (the transcript with its tool calls, the database before
and after, the event they came from) with the outcome a person decided for each policy
(``compliant``, ``violated`` or ``not_applicable``, with the turn and a note). Every judge
of the run judges every case, and its verdicts are compared with the labels
(:func:`agreement`): per policy and overall, the confusion matrix, the agreement,
Cohen's kappa, the false-violation and false-compliance rates and how often it could not
decide.

Agreement is counted on the decision a run makes of a verdict: violated, passed
(compliant or not applicable: neither fails a test) or undecided (inconclusive or an
error: the judge gave no usable verdict, which is a disagreement with any label). The
exact three-way agreement is reported beside it, since a judge that says "not
applicable" where a person says "compliant" decides the same but reads the policy
differently.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Literal

from pydantic import Field
from pydantic import model_validator

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.models import Conversation
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventResult
from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import Outcome
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import StrictModel
from pytest_agentsim.core.models import ToolCall
from pytest_agentsim.core.models import Verdict
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.core.sources import load_document
from pytest_agentsim.core.sources import validate_document
from pytest_agentsim.judging.judges import Judge
from pytest_agentsim.judging.judges import judge_event
from pytest_agentsim.packs.loading import load_pack

#: What a person may label a policy with: the outcomes a judge decides between.
LABELS: tuple[Outcome, ...] = (Outcome.compliant, Outcome.violated, Outcome.not_applicable)
LabelOutcome = Literal["compliant", "violated", "not_applicable"]

#: The decision a verdict makes in a run, which agreement is counted on.
Decision = Literal["violated", "passed", "undecided"]
DECISIONS: tuple[Decision, ...] = ("violated", "passed", "undecided")


def decision(outcome: Outcome) -> Decision:
    if outcome is Outcome.violated:
        return "violated"
    if outcome in (Outcome.compliant, Outcome.not_applicable):
        return "passed"
    return "undecided"


class CalibrationLabel(StrictModel):
    """A person's verdict on one policy of a case."""

    outcome: LabelOutcome
    turn: int | None = Field(default=None, ge=0, description="Message index that shows it")
    note: str = ""


class Transcript(StrictModel):
    """The conversation of a case: OpenAI-format messages, and the database around it.

    Tool calls are read from the messages (an assistant's ``tool_calls`` and the ``tool``
    message answering each); ``db_before``/``db_after`` are what state checks look at.
    """

    messages: list[Message] = Field(min_length=1)
    db_before: dict[str, Any] = Field(default_factory=dict)
    db_after: dict[str, Any] | None = Field(
        default=None, description="The database at the end (default: unchanged)"
    )
    stop_reason: StopReason = StopReason.goal_met


class CalibrationCase(StrictModel):
    """One labelled conversation: a YAML file of a calibration set."""

    version: Literal[1] = 1
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    pack: str = Field(min_length=1, description="The pack file, relative to the case file")
    note: str = ""
    source: str = Field(default="hand-written", description="Where the case came from")
    event: Event
    transcript: Transcript
    labels: dict[str, CalibrationLabel] = Field(min_length=1)

    @model_validator(mode="after")
    def _labelled_policies_listed(self) -> CalibrationCase:
        unlisted = sorted(set(self.labels) - set(self.event.policies))
        if unlisted:
            raise ValueError(
                f"labels name policies the event does not list: {', '.join(unlisted)} "
                f"(event.policies: {', '.join(self.event.policies)})"
            )
        return self

    def conversation(self) -> Conversation:
        """The conversation the judges see, as a run would have produced it."""
        return Conversation(
            event_id=self.event.id,
            messages=list(self.transcript.messages),
            tool_calls=tool_calls_of(self.transcript.messages),
            initial_db=self.transcript.db_before,
            final_db=(
                self.transcript.db_after
                if self.transcript.db_after is not None
                else self.transcript.db_before
            ),
            stop_reason=self.transcript.stop_reason,
        )


def tool_calls_of(messages: Sequence[Message]) -> list[ToolCall]:
    """The executed tool calls of a transcript: each request with the tool message
    answering it (a result that reads ``{"error": ...}`` is the call's error)."""
    answers = {m.tool_call_id: m.content for m in messages if m.role == "tool" and m.tool_call_id}
    calls = []
    for turn, message in enumerate(messages):
        for request in message.tool_calls or []:
            try:
                arguments = json.loads(request.function.arguments or "{}")
            except json.JSONDecodeError:
                arguments = {}
            content = answers.get(request.id)
            try:
                result = json.loads(content) if content is not None else None
            except json.JSONDecodeError:
                result = content
            error = result.get("error") if isinstance(result, dict) else None
            calls.append(
                ToolCall(
                    id=request.id,
                    name=request.function.name,
                    arguments=arguments if isinstance(arguments, dict) else {},
                    result=None if error else result,
                    error=str(error) if error else None,
                    turn=turn,
                )
            )
    return calls


@dataclass(frozen=True)
class LoadedCase:
    case: CalibrationCase
    pack: PolicyPack
    path: Path


def case_files(path: Path) -> list[Path]:
    """The case files of a set: a directory's ``*.yaml``/``*.yml`` (recursively), or one file."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
    if path.is_file():
        return [path]
    raise ConfigError(f"{display_path(path)}: no such calibration set (a directory of case files)")


def load_calibration_set(path: Path, *, registry: RuleRegistry) -> list[LoadedCase]:
    """Every case of a set, validated, each with its pack (loaded once per file)."""
    packs: dict[Path, PolicyPack] = {}
    loaded: list[LoadedCase] = []
    seen: dict[str, Path] = {}
    for file in case_files(Path(path)):
        raw = load_document(file, what="calibration case")
        case = validate_document(
            file, raw, CalibrationCase, what="calibration case", kind="case", collection=""
        )
        if case.id in seen:
            raise ConfigError(
                f"{display_path(file)}: case id {case.id!r} is also used by "
                f"{display_path(seen[case.id])}; ids must be unique in a set"
            )
        seen[case.id] = file
        pack_path = (file.parent / case.pack).resolve()
        if pack_path not in packs:
            if not pack_path.is_file():
                raise ConfigError(
                    f"{display_path(file)}: pack: no such pack file {case.pack!r} "
                    f"(a path relative to the case file)"
                )
            packs[pack_path] = load_pack(pack_path, registry=registry)
        pack = packs[pack_path]
        known = {policy.id for policy in pack.policies}
        unknown = sorted(set(case.event.policies) - known)
        if unknown:
            raise ConfigError(
                f"{display_path(file)}: event.policies: {', '.join(unknown)} not in the pack "
                f"{case.pack} (its policies: {', '.join(sorted(known))})"
            )
        loaded.append(LoadedCase(case=case, pack=pack, path=file))
    if not loaded:
        raise ConfigError(f"{display_path(path)}: the calibration set has no case files (*.yaml)")
    return loaded


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Judgement:
    """One judge's outcome on one labelled policy of one case."""

    case: str
    policy: str
    label: Outcome
    predicted: Outcome
    reason: str = ""
    #: Whether the judge gave a verdict on the policy at all. One that has nothing to say
    #: about a policy (no rule check of it, no expectation) did not judge it: that is
    #: its coverage, not a disagreement.
    covered: bool = True

    @property
    def agrees(self) -> bool:
        return decision(self.label) == decision(self.predicted)


async def judge_cases(
    cases: Sequence[LoadedCase],
    judges: Sequence[Judge],
    *,
    scope_for: Callable[[LoadedCase], Any] | None = None,
    concurrency: int = 4,
) -> dict[str, list[Judgement]]:
    """Each judge's judgements of every labelled policy, by judge name.

    Each judge judges alone (so its own agreement is measured), and all of them together
    as a run combines them (``combined``, worst verdict first). ``scope_for`` gives the
    context a case is judged in (the LLM scope recording its model calls to a cassette).
    """
    names = [judge.name for judge in judges] + (["combined"] if len(judges) > 1 else [])
    limit = asyncio.Semaphore(max(1, concurrency))
    found: dict[str, list[Judgement]] = {name: [] for name in names}

    async def one(loaded: LoadedCase) -> list[tuple[str, Judgement]]:
        async with limit:
            conversation = loaded.case.conversation()
            context = scope_for(loaded) if scope_for is not None else None
            with context if context is not None else nullcontext():
                # Each judge is asked once; "combined" weighs the verdicts they gave.
                recorded = [_Recorded(judge) for judge in judges]
                panels: list[tuple[str, Sequence[Judge]]] = [
                    (judge.name, [judge]) for judge in recorded
                ]
                if len(judges) > 1:
                    panels.append(("combined", [judge.replay() for judge in recorded]))
                out = []
                for name, panel in panels:
                    result = await judge_event(loaded.case.event, conversation, loaded.pack, panel)
                    out += [
                        (name, _judgement(loaded.case, policy, result))
                        for policy in loaded.case.labels
                    ]
            return out

    for pairs in await asyncio.gather(*(one(loaded) for loaded in cases)):
        for name, judgement in pairs:
            found[name].append(judgement)
    return found


class _Recorded:
    """A judge whose verdicts are kept, so that they can be combined without asking again."""

    def __init__(self, judge: Judge) -> None:
        self.inner = judge
        self.name = judge.name
        self.verdicts: list[Verdict] | None = None

    async def judge(
        self, event: Event, conversation: Conversation, pack: PolicyPack
    ) -> list[Verdict]:
        produced = self.inner.judge(event, conversation, pack)
        if inspect.isawaitable(produced):
            produced = await produced
        self.verdicts = [verdict.model_copy() for verdict in produced]
        return list(produced)

    def replay(self) -> Judge:
        return _Replayed(self)


class _Replayed:
    """What a :class:`_Recorded` judge said (or raised) the first time."""

    def __init__(self, recorded: _Recorded) -> None:
        self.recorded = recorded
        self.name = recorded.name

    def judge(self, event: Event, conversation: Conversation, pack: PolicyPack) -> list[Verdict]:
        if self.recorded.verdicts is None:
            raise RuntimeError(f"judge {self.name!r} failed on this case")
        return [verdict.model_copy() for verdict in self.recorded.verdicts]


def _judgement(case: CalibrationCase, policy: str, result: EventResult) -> Judgement:
    """How a judged event compares with the case's label of ``policy``."""
    policy_result = next((r for r in result.policies if r.policy_id == policy), None)
    predicted = policy_result.outcome if policy_result else Outcome.error
    verdicts = policy_result.verdicts if policy_result else []
    shown = next((v for v in verdicts if v.outcome is predicted), None)
    return Judgement(
        case=case.id,
        policy=policy,
        label=Outcome(case.labels[policy].outcome),
        predicted=predicted,
        reason=shown.reason if shown else "",
        covered=any(v.judge != "runner" for v in verdicts),
    )


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class Agreement:
    """How one judge's verdicts compare with the labels, over some judgements."""

    #: labelled policies the judge gave a verdict on (what the rates are over) ...
    n: int
    #: ... of all the labelled policies it was shown
    total: int
    matrix: Mapping[tuple[str, str], int]  # (label, predicted outcome) -> count
    agreement: float | None
    exact: float | None
    kappa: float | None
    false_violation_rate: float | None
    false_compliance_rate: float | None
    undecided_rate: float | None
    disagreements: tuple[Judgement, ...] = field(default=())


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of (label, prediction) pairs: agreement beyond what chance gives.

    None without pairs, and None when chance alone would agree on every pair (both sides
    use one and the same category throughout): kappa is undefined there, not perfect.
    """
    n = len(pairs)
    if not n:
        return None
    observed = sum(a == b for a, b in pairs) / n
    left = Counter(a for a, _ in pairs)
    right = Counter(b for _, b in pairs)
    expected = sum(left[c] * right[c] for c in set(left) | set(right)) / (n * n)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1 - expected)


def agreement(judgements: Iterable[Judgement]) -> Agreement:
    """Agreement over the judgements the judge covered (gave a verdict on)."""
    shown = list(judgements)
    items = [j for j in shown if j.covered]
    n = len(items)
    matrix = Counter((j.label.value, j.predicted.value) for j in items)
    decisions = [(decision(j.label), decision(j.predicted)) for j in items]
    labelled_violated = [j for j in items if j.label is Outcome.violated]
    labelled_passing = [j for j in items if j.label is not Outcome.violated]
    return Agreement(
        n=n,
        total=len(shown),
        matrix=dict(matrix),
        agreement=_rate(sum(j.agrees for j in items), n),
        exact=_rate(sum(j.label is j.predicted for j in items), n),
        kappa=cohen_kappa(decisions),
        false_violation_rate=_rate(
            sum(j.predicted is Outcome.violated for j in labelled_passing), len(labelled_passing)
        ),
        false_compliance_rate=_rate(
            sum(decision(j.predicted) == "passed" for j in labelled_violated),
            len(labelled_violated),
        ),
        undecided_rate=_rate(sum(decision(j.predicted) == "undecided" for j in items), n),
        disagreements=tuple(j for j in items if not j.agrees),
    )


@dataclass(frozen=True)
class JudgeCalibration:
    """One judge's agreement overall and per policy."""

    judge: str
    overall: Agreement
    per_policy: Mapping[str, Agreement]


def calibration(judgements: Mapping[str, Sequence[Judgement]]) -> list[JudgeCalibration]:
    report = []
    for judge, items in judgements.items():
        policies = sorted({j.policy for j in items})
        report.append(
            JudgeCalibration(
                judge=judge,
                overall=agreement(items),
                per_policy={p: agreement(j for j in items if j.policy == p) for p in policies},
            )
        )
    return report


# --------------------------------------------------------------------------- labelling


def case_document(
    *,
    case_id: str,
    pack_ref: str,
    event: Event,
    messages: Sequence[Message],
    db_before: Mapping[str, Any],
    db_after: Mapping[str, Any],
    stop_reason: StopReason,
    source: str,
) -> dict[str, Any]:
    """A calibration case file's document, without labels yet (see :func:`add_label`)."""
    return {
        "version": 1,
        "id": case_id,
        "pack": pack_ref,
        "source": source,
        "note": "",
        "event": event.model_dump(mode="json", exclude_defaults=True),
        "transcript": {
            "stop_reason": stop_reason.value,
            "messages": [message.to_openai() for message in messages],
            "db_before": dict(db_before),
            "db_after": dict(db_after),
        },
        "labels": {},
    }


def add_label(
    document: dict[str, Any],
    policy: str,
    outcome: LabelOutcome,
    *,
    turn: int | None = None,
    note: str = "",
) -> None:
    """Label (or relabel) one policy of a case document; an unlisted policy is listed."""
    policies = document["event"].setdefault("policies", [])
    if policy not in policies:
        policies.append(policy)
    label: dict[str, Any] = {"outcome": outcome}
    if turn is not None:
        label["turn"] = turn
    if note:
        label["note"] = note
    document["labels"][policy] = label
