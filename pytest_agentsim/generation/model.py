"""Event generation with a model: the LLM fills each sampled event, and it is validated.

IntellAgent has a model write the event for a sampled policy combination. Here the
sampling is the offline one (:func:`pytest_agentsim.generation.filling.generate_events`, with the
model's edge weights when asked); only the per-sample builder changes. For each sample
the model fills one :class:`EventDraft` in one structured call, and
:func:`validate_draft` checks it against the pack before it becomes an
:class:`~pytest_agentsim.core.models.Event`:

- the draft claims exactly the sampled policies;
- database overrides touch only tables of the seed database, and an existing record
  only gets fields set (it is not replaced by something else);
- ids the user states (facts whose key ends in ``_id``) and ids the expectations name
  (``args`` keys ending in ``_id``, the table of a ``path``) exist in the starting
  database: a model that invents a reservation would otherwise test nothing;
- every expectation belongs to a sampled policy and parses as a rule check of the
  pack's registry; every ``done_when`` compiles as a regex.

An invalid draft is regenerated, the model being told what was wrong with it, up to
``attempts`` times (the pack's ``generation.model_attempts``); then the sample is reported in
the snapshot's skipped samples with the last reason, never dropped silently. A failing
model call (:class:`~pytest_agentsim.llm.messages.LLMError`: provider down after retries, budget
spent, bad key, cassette miss) gives a reason starting with ``LLM error:``
(:func:`model_failure`), and :func:`~pytest_agentsim.generation.snapshots.regenerate` then writes
nothing: a run that could not reach its model fails instead of shrinking the snapshot.

Prompts hold no timestamps and no credentials, and each sample is asked what it would be
asked in the seeded sampling order, whether samples are filled one at a time or several
at once (:meth:`EventFiller.prefetch`): the same replies give the same snapshot, and
recorded calls replay from a cassette at any concurrency.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import Field
from pydantic import ValidationError

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.errors import UnknownRuleType
from pytest_agentsim.core.models import DialogueAct
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import Expectation
from pytest_agentsim.core.models import GoalRequest
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import UserGoal
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.generation.filling import NOT_SENT
from pytest_agentsim.generation.filling import Generated
from pytest_agentsim.generation.filling import generate_events
from pytest_agentsim.generation.filling import stamp
from pytest_agentsim.generation.graph import PolicyGraph
from pytest_agentsim.generation.graph import PolicySample
from pytest_agentsim.generation.graph import llm_edge_weights
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.gateway import run_sync
from pytest_agentsim.llm.messages import LLMError
from pytest_agentsim.packs.events import deep_merge
from pytest_agentsim.packs.events import id_values
from pytest_agentsim.packs.events import record_ids
from pytest_agentsim.packs.loading import db_paths
from pytest_agentsim.packs.templates import GenerationError
from pytest_agentsim.packs.templates import check_policy

PURPOSE = "events"
#: The seed database is shown in full up to this many characters of compact JSON; a bigger
#: one is shown with fewer records per table (the model needs real ids, not every record).
DB_PROMPT_LIMIT = 12_000
LLM_ERROR_PREFIX = "LLM error: "
#: Samples in a row without a valid event after which the model is not asked again: a
#: model that cannot fill this pack's events would otherwise be asked for every sample.
GIVE_UP_AFTER = 10
#: Seconds between progress lines while a model generates.
PROGRESS_SECONDS = 10.0

# ----------------------------------------------------------------------------- the schema


class DraftRequest(BaseModel):
    """Something the simulated user wants done or told (becomes a GoalRequest)."""

    slot: str = Field(description="Short name of what is wanted, e.g. 'cancellation'")
    text: str = Field(description="How the user asks for it")
    done_when: str = Field(
        description="Python regex over the agent's messages that shows it was done"
    )


class DraftExpectation(BaseModel):
    """A rule check that decides whether the agent followed one policy in this event."""

    policy: str = Field(description="One of the sampled policy ids")
    check: dict[str, Any] = Field(description="A rule check: {'type': ..., fields of the type}")


class EventDraft(BaseModel):
    """What the model fills for one policy sample; :func:`validate_draft` makes it an Event.

    Lenient on extra keys (models add commentary fields); strict where it matters, in
    :func:`validate_draft`, whose reasons go back to the model.
    """

    scenario: str = Field(description="The situation in one or two sentences")
    persona: str = Field(default="", description="Who the user is and how they talk")
    facts: dict[str, Any] = Field(
        default_factory=dict,
        description="What the user knows and tells when asked (ids under keys ending in _id)",
    )
    opening: str = Field(default="", description="The user's first words")
    requests: list[DraftRequest] = Field(default_factory=list)
    confirm: bool = Field(
        default=True, description="Whether the user agrees when the agent asks to confirm"
    )
    agenda: list[DialogueAct] = Field(
        default_factory=list, description="Acts in the order the user brings them up"
    )
    db: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the seed database: table -> record id -> fields to set",
    )
    expected: list[DraftExpectation] = Field(default_factory=list)
    policies: list[str] = Field(description="The policy ids this event exercises")


# ----------------------------------------------------------------------------- validation


def _one_line(exc: Exception) -> str:
    """A pydantic or rule error as one line: reasons go into prompts and snapshots."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
            for error in exc.errors(include_url=False)[:5]
        )
    return " ".join(str(exc).split())


def _check_overrides(db: Mapping[str, Any], seed_db: Mapping[str, Any]) -> None:
    for table, records in db.items():
        if table not in seed_db:
            tables = ", ".join(sorted(seed_db)) or "none"
            raise GenerationError(
                f"db.{table}: table {table!r} is not in the seed database (tables: {tables})"
            )
        seed_table = seed_db[table]
        if not isinstance(seed_table, Mapping):
            if type(records) is not type(seed_table):
                raise GenerationError(
                    f"db.{table}: the seed's table is a {type(seed_table).__name__}, "
                    f"the override a {type(records).__name__}"
                )
            continue
        if not isinstance(records, Mapping):
            raise GenerationError(
                f"db.{table}: must map record ids to fields, got {type(records).__name__}"
            )
        for key, record in records.items():
            existing = seed_table.get(key)
            if isinstance(existing, Mapping) and not isinstance(record, Mapping):
                raise GenerationError(
                    f"db.{table}.{key}: an existing record only gets fields set (a mapping), "
                    f"got {record!r}"
                )
            if key not in seed_table and not isinstance(record, Mapping):
                raise GenerationError(
                    f"db.{table}.{key}: a new record must be a mapping of fields, got {record!r}"
                )


def _check_ids(where: str, values: list[str], ids: Mapping[str, str], tables: str) -> None:
    for value in values:
        if value not in ids:
            raise GenerationError(
                f"{where}: {value!r} is not the id of a record in the database (tables: {tables})"
            )


def validate_draft(
    draft: EventDraft,
    sample_policies: Sequence[str],
    pack: PolicyPack,
    registry: RuleRegistry,
    seed: int,
) -> Event:
    """The event a draft describes, or GenerationError with a one-line reason naming the field.

    The reason is written for the model as much as for the snapshot's reader: it goes
    back into the next attempt's prompt. ``seed`` (the generation seed) only picks a pack
    persona for a draft that gives none.
    """
    policies = list(sample_policies)
    if sorted(draft.policies) != sorted(policies):
        raise GenerationError(
            f"policies: the draft lists [{', '.join(draft.policies)}], but the event must "
            f"exercise exactly [{', '.join(policies)}]"
        )
    _check_overrides(draft.db, pack.seed_db)
    starting = deep_merge(pack.seed_db, draft.db)
    ids = record_ids(starting)
    tables = ", ".join(sorted(starting)) or "none"
    for key, value in draft.facts.items():
        if key.endswith("_id"):
            _check_ids(f"facts.{key}", id_values(value), ids, tables)

    expected: list[Expectation] = []
    for index, item in enumerate(draft.expected):
        where = f"expected[{index}]"
        if item.policy not in policies:
            raise GenerationError(
                f"{where}.policy: {item.policy!r} is not one of the sampled policies "
                f"({', '.join(policies)})"
            )
        try:
            rule = registry.parse(item.check)
        except (UnknownRuleType, ValidationError, ValueError) as exc:
            raise GenerationError(f"{where}.check: {_one_line(exc)}") from None
        args = getattr(rule, "args", None)
        if isinstance(args, Mapping):
            for name, value in args.items():
                if str(name).endswith("_id"):
                    _check_ids(f"{where}.check.args.{name}", id_values(value), ids, tables)
        for field_name, path in db_paths(rule):
            table = str(path.split(".")[0] if isinstance(path, str) else path[0])
            if table not in starting:
                raise GenerationError(
                    f"{where}.check.{field_name}: table {table!r} is not in the database "
                    f"(tables: {tables})"
                )
        expected.append(Expectation(policy=item.policy, check=item.check))

    requests: list[GoalRequest] = []
    for index, request in enumerate(draft.requests):
        try:
            re.compile(request.done_when)
        except re.error as exc:
            raise GenerationError(
                f"requests[{index}].done_when: {request.done_when!r} is not a valid regex: {exc}"
            ) from None
        requests.append(GoalRequest(**request.model_dump()))
    if not draft.opening.strip() and not requests:
        raise GenerationError("opening: the user needs an opening or at least one request")
    agenda = list(draft.agenda)
    for index, act in enumerate(agenda):
        if act.act == "inform" and act.slot not in draft.facts:
            raise GenerationError(
                f"agenda[{index}]: informs {act.slot!r}, which no fact gives "
                f"(facts: {', '.join(sorted(draft.facts)) or 'none'})"
            )
    if draft.opening.strip():
        say = DialogueAct(act="say", text=draft.opening.strip())
        if not agenda or agenda[0] != say:
            agenda.insert(0, say)
    persona = draft.persona.strip()
    if not persona and pack.generation.personas:
        rng = random.Random(f"persona:{seed}:{'+'.join(policies)}")
        persona = rng.choice(pack.generation.personas)
    event = Event(
        id="pending",
        domain=pack.domain,
        policies=policies,
        complexity=sum(pack.policy(p).complexity for p in policies),
        scenario=draft.scenario.strip(),
        user=UserProfile(
            persona=persona,
            goal=UserGoal(requests=requests, confirm=draft.confirm),
            facts=draft.facts,
            agenda=agenda,
        ),
        db=draft.db,
        expected=expected,
    )
    return stamp(event)


# ----------------------------------------------------------------------------- the prompt

_SHAPE = {
    "scenario": "The situation in one or two sentences (what happens, what the agent must do)",
    "persona": "Who the user is and how they talk",
    "facts": {"user_id": "<an id from the database>", "other_fact": "<value>"},
    "opening": "The user's first words",
    "requests": [
        {
            "slot": "<short name>",
            "text": "How the user asks for it",
            "done_when": "<regex over the agent's replies that shows it was done>",
        }
    ],
    "confirm": True,
    "agenda": [{"act": "inform", "slot": "user_id"}, {"act": "say", "text": "..."}],
    "db": {"<table>": {"<record id>": {"<field>": "<value to set>"}}},
    "expected": [{"policy": "<policy id>", "check": {"type": "<check type>", "...": "..."}}],
    "policies": ["<every policy id given, and no other>"],
}

SYSTEM_PROMPT = f"""\
You write test events for a customer-service AI agent. An event is one realistic \
conversation scenario in which the agent must follow the given business policies: a \
simulated user plays it against the agent, and rule checks decide whether the agent \
followed each policy.

Answer with one JSON object only, of this shape:
{json.dumps(_SHAPE, indent=1)}

Rules:
- "policies" lists exactly the policy ids you are given, no more and no fewer.
- "db" overrides the seed database for this event only: table -> record id -> the \
fields to set. Use only tables of the seed database; give an existing record only the \
fields that change; a new record is a full record.
- Every fact whose key ends in "_id" is the id of a record in the database (seed or \
overridden): the user talks about things that exist.
- "agenda" acts are say (text), inform (a slot of facts), request (a slot of requests), \
confirm, deny and bye. The opening is said first.
- "done_when" is a Python regular expression searched in the agent's messages.
- "expected" holds rule checks that pass only if the agent followed the policy in this \
event; each names one of the given policies and uses one of the listed check types, with \
the ids of this event.
- The user knows only their facts and persona, never the agent's policies; \
"confirm" says whether they agree when the agent asks them to confirm.
"""


def _compact(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def db_excerpt(db: Mapping[str, Any], limit: int = DB_PROMPT_LIMIT) -> str:
    """The seed database as compact JSON, cut to fewer records per table when too big.

    The cut keeps each table's first records (sorted ids) and says how many were left
    out, so the prompt stays bounded and deterministic however big the seed grows.
    """
    full = _compact(db)
    if len(full) <= limit:
        return full
    for keep in (50, 20, 10, 5, 3, 1):
        cut: dict[str, Any] = {}
        for table, records in sorted(db.items()):
            if isinstance(records, Mapping) and len(records) > keep:
                kept = dict(sorted(records.items())[:keep])
                kept["..."] = f"{len(records) - keep} more records"
                cut[table] = kept
            elif isinstance(records, list) and len(records) > keep:
                cut[table] = [*records[:keep], f"... {len(records) - keep} more records"]
            else:
                cut[table] = records
        text = _compact(cut)
        if len(text) <= limit:
            return text
    return full[:limit] + " ... (truncated)"


def _rule_types(registry: RuleRegistry) -> list[str]:
    lines = []
    for name in registry.names:
        schema = registry.type_of(name).model_json_schema()
        required = [name for name in schema.get("required", []) if name != "type"]
        optional = [
            name for name in schema.get("properties", {}) if name not in required and name != "type"
        ]
        fields = [f"{name}*" for name in required] + optional
        doc = (registry.type_of(name).__doc__ or "").strip().splitlines()
        summary = f" - {doc[0]}" if doc else ""
        lines.append(f"- {name}: {', '.join(fields)}{summary}")
    return lines


def _example_check(pack: PolicyPack, registry: RuleRegistry) -> dict[str, Any]:
    """A check of the pack itself (it names real tools), else a plain text check."""
    for policy in pack.policies:
        found = [*policy.checks, *(c for v in policy.scenario.variants for c in v.expected)]
        if found:
            charged, check = check_policy(found[0])
            return {"policy": charged or policy.id, "check": check}
    example: dict[str, Any] = {"type": "text_matches", "pattern": "(?i)cancelled"}
    if "text_matches" not in registry.names and registry.names:
        example = {"type": registry.names[0]}
    return {"policy": pack.policies[0].id, "check": example}


def event_prompt(
    policies: Sequence[str],
    pack: PolicyPack,
    registry: RuleRegistry,
    *,
    written: Sequence[str] = (),
) -> list[dict[str, str]]:
    """The messages asking for one event: the task, then everything the model must know.

    ``written`` are scenarios already generated for this policy combination, so a sample
    drawn twice asks for a different situation instead of the same event again.
    """
    parts = []
    if pack.description:
        parts.append(f"Domain: {pack.domain}: {pack.description.strip()}")
    else:
        parts.append(f"Domain: {pack.domain}")
    listing = []
    for policy_id in policies:
        policy = pack.policy(policy_id)
        listing.append(
            f"- `{policy.id}` ({policy.category}, complexity {policy.complexity}): "
            f"{' '.join(policy.description.split())}"
        )
        for check in policy.checks:
            listing.append(f"  always checked: {_compact(check)}")
    parts.append("## Policies this event must exercise, all of them\n" + "\n".join(listing))
    parts.append(
        "## Seed database (JSON; the event starts from it plus your db overrides)\n"
        + db_excerpt(pack.seed_db)
    )
    entities = pack.generation.entities
    if entities:
        lines = [
            f"- {name}: a record of {spec.table}"
            + (f" where {_compact(spec.where)}" if spec.where else "")
            for name, spec in entities.items()
        ]
        parts.append("## Entities events are about\n" + "\n".join(lines))
    parts.append(
        "## Check types for expected (* = required field)\n"
        + "\n".join(_rule_types(registry))
        + "\nExample expected item: "
        + json.dumps(_example_check(pack, registry), separators=(",", ":"), ensure_ascii=False)
    )
    if pack.generation.personas:
        parts.append(
            "## Personas you may use\n" + "\n".join(f"- {p}" for p in pack.generation.personas)
        )
    if written:
        parts.append(
            "## Already written for these policies (write a different situation)\n"
            + "\n".join(f"- {scenario}" for scenario in written)
        )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def regenerate_message(reason: str) -> str:
    """What the next attempt is told about the previous draft."""
    return (
        f"That event is invalid: {reason}. Regenerate the whole event as one JSON object, "
        "fixing this and keeping to every rule."
    )


# ----------------------------------------------------------------------------- filling


async def _fill(
    sample: PolicySample,
    pack: PolicyPack,
    gateway: Gateway,
    registry: RuleRegistry,
    seed: int,
    attempts: int,
    written: Sequence[str],
) -> Event | str:
    """:func:`fill_event`, raising the LLMErrors that end a sample (for EventFiller)."""
    base = event_prompt(sample.policies, pack, registry, written=written)
    messages: list[dict[str, str]] = base
    reason = "no attempt was made (attempts = 0)"
    for _ in range(attempts):
        try:
            draft, _response = await gateway.astructured(messages, EventDraft, purpose=PURPOSE)
        except LLMError as exc:
            if exc.kind != "invalid_output":
                raise
            reason = f"{LLM_ERROR_PREFIX}{_one_line(exc)}"
            messages = [
                *base,
                {
                    "role": "user",
                    "content": f"Your previous reply was not a valid event object: "
                    f"{_one_line(exc)}. Answer with the JSON object only.",
                },
            ]
            continue
        try:
            return validate_draft(draft, sample.policies, pack, registry, seed)
        except GenerationError as exc:
            reason = str(exc)
        messages = [
            *base,
            {"role": "assistant", "content": draft.model_dump_json()},
            {"role": "user", "content": regenerate_message(reason)},
        ]
    return reason


async def fill_event(
    sample: PolicySample,
    pack: PolicyPack,
    gateway: Gateway,
    registry: RuleRegistry,
    seed: int,
    attempts: int | None = None,
    *,
    written: Sequence[str] = (),
) -> Event | str:
    """One sample's event from the model, or the reason it could not be had.

    One structured call per attempt (``attempts`` defaults to the pack's
    ``generation.model_attempts``). A draft that fails :func:`validate_draft` is regenerated
    with the previous draft and its problem in the prompt; after the last attempt its
    reason is returned. A reply that never fits the schema (``invalid_output``, after the
    gateway's one repair) uses up an attempt the same way. Any other
    :class:`~pytest_agentsim.llm.messages.LLMError` (transient after the gateway's retries, budget,
    fatal, cassette miss) ends the sample at once: retrying would cost calls and fail the
    same way. Every reason from the model call starts with ``LLM error:``, so the
    snapshot's skipped samples show the model was the problem, not the pack; nothing
    escapes as an exception.
    """
    attempts = attempts if attempts is not None else pack.generation.model_attempts
    try:
        return await _fill(sample, pack, gateway, registry, seed, attempts, written)
    except LLMError as exc:
        return f"{LLM_ERROR_PREFIX}{_one_line(exc)}"


#: Failures that hold for every later call as well: the provider failed through all
#: retries, or the budget is spent.
_RUN_ENDING = frozenset({"transient", "budget"})


@dataclass
class EventFiller:
    """A :data:`~pytest_agentsim.generation.filling.BuildEvent` that has the model fill each sample.

    The sampling code is synchronous and decides each next sample from what was built,
    so each sample's coroutine runs to completion on its own loop (``run_sync``); the
    gateway supports successive loops. Scenarios written so far are remembered per policy
    combination and shown to the model when that combination is drawn again.

    Later samples are not sent, only reported, after a transient failure that outlasted
    the gateway's retries or a spent budget (an outage would cost every remaining sample
    its full retries for the same answer), and after :data:`GIVE_UP_AFTER` samples in a
    row gave no valid event (a model that cannot fill this pack's events would be asked
    for every sample the walk draws). Other errors (a bad request, a cassette miss) may be
    the sample's own, so the next sample is still tried.
    """

    pack: PolicyPack
    gateway: Gateway
    registry: RuleRegistry
    seed: int
    attempts: int | None = None
    progress: Callable[[str], None] | None = None
    concurrency: int = 1
    written: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    broken: str | None = None
    samples: int = 0
    events: int = 0
    failed_in_a_row: int = 0
    last_reason: str = ""
    _reported_at: float = field(default_factory=time.monotonic)
    #: sample policies -> (the scenarios its prompt showed, what the model gave)
    _prefetched: dict[tuple[str, ...], tuple[list[str], Event | str | LLMError]] = field(
        default_factory=dict
    )

    def _attempts(self) -> int:
        return self.attempts if self.attempts is not None else self.pack.generation.model_attempts

    async def _outcome(
        self, sample: PolicySample, written: Sequence[str]
    ) -> Event | str | LLMError:
        try:
            return await _fill(
                sample,
                self.pack,
                self.gateway,
                self.registry,
                self.seed,
                self._attempts(),
                written,
            )
        except LLMError as exc:
            return exc

    def prefetch(self, samples: Sequence[PolicySample]) -> None:
        """Fill upcoming samples ``concurrency`` at a time, ahead of their turn.

        Each is asked exactly what it would be asked in its turn (the scenarios written so
        far for its combination), and :meth:`__call__` uses the answer only if that is
        still so; otherwise it asks again. So results do not depend on the concurrency,
        and a recording replays at any concurrency. At most a window of calls is spent
        past a point where one at a time would have stopped asking.
        """
        if self.broken is not None or self.failed_in_a_row >= GIVE_UP_AFTER:
            return
        todo: dict[tuple[str, ...], tuple[PolicySample, list[str]]] = {}
        for sample in samples:
            if sample.policies not in self._prefetched and sample.policies not in todo:
                written = list(self.written.get(tuple(sorted(sample.policies)), []))
                todo[sample.policies] = (sample, written)
        if len(todo) < 2:
            return

        async def fill_all() -> list[Event | str | LLMError]:
            limit = asyncio.Semaphore(self.concurrency)

            async def one(sample: PolicySample, written: list[str]) -> Event | str | LLMError:
                async with limit:
                    return await self._outcome(sample, written)

            return await asyncio.gather(*(one(*item) for item in todo.values()))

        for (policies, (_, written)), outcome in zip(
            todo.items(), run_sync(fill_all()), strict=True
        ):
            self._prefetched[policies] = (written, outcome)

    def __call__(self, sample: PolicySample) -> Event | str:
        if self.broken is not None:
            return f"{LLM_ERROR_PREFIX}{NOT_SENT} after an earlier failure: {self.broken}"
        if self.failed_in_a_row >= GIVE_UP_AFTER:
            return (
                f"{NOT_SENT}: the model gave no valid event for the {GIVE_UP_AFTER} samples "
                f"before (the last: {self.last_reason})"
            )
        if self.samples == 0:
            self.report("started")
        key = tuple(sorted(sample.policies))
        written = self.written.get(key, [])
        self.samples += 1
        ahead = self._prefetched.pop(sample.policies, None)
        if ahead is not None and ahead[0] == written:
            outcome = ahead[1]
        else:
            outcome = run_sync(self._outcome(sample, written))
        if isinstance(outcome, LLMError):
            if outcome.kind in _RUN_ENDING:
                self.broken = _one_line(outcome)
            built: Event | str = f"{LLM_ERROR_PREFIX}{_one_line(outcome)}"
        else:
            built = outcome
        if isinstance(built, Event):
            self.events += 1
            self.failed_in_a_row = 0
            self.written.setdefault(key, []).append(built.scenario)
        else:
            self.failed_in_a_row += 1
            self.last_reason = built
        if time.monotonic() - self._reported_at >= PROGRESS_SECONDS:
            self.report("so far")
        return built

    def report(self, stage: str) -> None:
        """A progress line: generation with a model takes minutes, not milliseconds."""
        self._reported_at = time.monotonic()
        if self.progress is None:
            return
        tally = (self.gateway.tally or self.gateway.usage).tally()
        self.progress(
            f"agentsim: generating {self.pack.domain} events with {self.gateway.config.model}"
            f" ({stage}): {self.samples} samples, {self.events} valid events, "
            f"{tally.calls} calls, {tally.replayed_calls} replayed"
        )


def model_failure(generated: Generated) -> str | None:
    """Why the model failed this generation (its call, not a draft), or None if it did not.

    The reason quoted is a failure itself, not a sample left unsent because of it.
    """
    failed = [skip for skip in generated.skipped if skip.reason.startswith(LLM_ERROR_PREFIX)]
    if not failed:
        return None
    first = next((skip for skip in failed if NOT_SENT not in skip.reason), failed[0])
    count = sum(skip.count for skip in failed)
    return (
        f"{first.reason.removeprefix(LLM_ERROR_PREFIX)} "
        f"({count} {'sample' if count == 1 else 'samples'} not generated)"
    )


def generate_events_llm(
    pack: PolicyPack,
    gateway: Gateway,
    *,
    registry: RuleRegistry,
    seed: int,
    cache_dir: Path | None = None,
    attempts: int | None = None,
    progress: Callable[[str], None] | None = None,
    concurrency: int = 1,
) -> Generated:
    """Events for a pack with a model: LLM edge weights, the usual sampling, LLM filling.

    Edge scores are cached in ``cache_dir`` by pack fingerprint and model (none: scored
    on every run); declared edges still win over scored ones.
    """
    scored = llm_edge_weights(pack, gateway, cache_dir=cache_dir)
    graph = PolicyGraph.from_pack(pack, scored=scored)
    filler = EventFiller(
        pack=pack,
        gateway=gateway,
        registry=registry,
        seed=seed,
        attempts=attempts,
        progress=progress,
        concurrency=concurrency,
    )
    generated = generate_events(
        pack,
        registry=registry,
        seed=seed,
        graph=graph,
        build=filler,
        prefetch=filler.prefetch if concurrency > 1 else None,
        window=concurrency,
    )
    if filler.samples:
        filler.report("done")
    return generated
