"""Offline event generation: policy samples + the pack's templates -> validated events.

IntellAgent builds an event from a sampled policy combination with an LLM. Offline, the
pack carries the material instead: each policy lists *variants* (ways it can come up in
a conversation), each a template for part of an event (scenario words, the user's facts,
opening, requests and agenda, database overrides, and the expectations that judge it).
An event for a sample picks one variant per policy (the least used first, so every
variant gets exercised), draws the entities it is about from the seed database, renders
the templates and merges the parts. Parts that cannot live in one conversation (two
different tasks, a fact or database field set two ways, a yes and a no to confirmation)
make the attempt fail; after ``attempts`` tries the sample is reported, never dropped
silently.

The template language is small on purpose:

- ``{entity}`` is the id of the record chosen for an entity of the pack's
  ``generation.entities`` (``reservation: {table: reservations, where: {user_id: '{user}'}}``);
- ``{entity.field}`` is a field of that record in the event's starting database;
- ``{name}`` is a value drawn from the variant's ``choose: {name: [..]}``;
- a string that is exactly one placeholder keeps the value's type (numbers stay numbers);
- ``{{`` and ``}}`` are literal braces.

Everything is seeded with string seeds (same seed, same events in every process), and
the snapshot is written with sorted keys and content-derived ids, so ``--agentsim-generate
--agentsim-seed 7`` twice gives byte-identical files.

With a model (``regenerate(..., gateway_for=...)``), the sampling here stays the same and only
the per-sample builder changes: :mod:`pytest_agentsim.generation.model` has the model fill
each event and validates it the way this module validates a rendered template.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.models import DialogueAct
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import Expectation
from pytest_agentsim.core.models import GoalRequest
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import SkippedSample
from pytest_agentsim.core.models import UserGoal
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.core.models import Variant
from pytest_agentsim.generation.graph import PolicyGraph
from pytest_agentsim.generation.graph import PolicySample
from pytest_agentsim.generation.variety import entity_candidates
from pytest_agentsim.generation.variety import entity_conditions
from pytest_agentsim.generation.variety import merge_strict
from pytest_agentsim.generation.variety import template_capacity
from pytest_agentsim.generation.variety import wanted_entities
from pytest_agentsim.packs.events import deep_merge
from pytest_agentsim.packs.templates import GenerationError
from pytest_agentsim.packs.templates import TemplateContext
from pytest_agentsim.packs.templates import check_policy

if TYPE_CHECKING:
    pass

NOT_SENT = "not sent"


class GenerationFailed(Exception):
    """A pack's generation gave nothing worth writing; its snapshot was left as it was.

    Raised when no event at all could be built (templates or model), and when the model
    could not be reached or replayed. The message is one line naming the pack, the
    failure and the snapshot left untouched.
    """


# ----------------------------------------------------------------------------- templates


#: Event fields added after content ids were first given: left out of the hash while
#: unset, so that adding a field to Event does not rename every committed event.
LATER_EVENT_FIELDS = ("expected_state",)


def content_id(event: Event) -> str:
    """``ev-`` and 6 hex digits of a hash of the event's content.

    Ids derived from content stay stable across runs and generators: an unchanged event
    keeps its id (and its test id) in a snapshot's diff.
    """
    # Labels are not content (and ids stay what they were before events had them).
    payload = event.model_dump(mode="json", exclude={"id", "seed", "metadata"})
    for name in LATER_EVENT_FIELDS:
        if name not in event.model_fields_set:
            payload.pop(name, None)
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()
    return f"ev-{digest[:6]}"


def stamp(event: Event) -> Event:
    """Give a finished event its content id and the simulation seed derived from it.

    Every generator ends with this, so template and model events are identified alike.
    """
    event.id = content_id(event)
    event.seed = int(event.id[3:], 16)
    return event


@dataclass
class EventBuilder:
    """Builds events for one pack, remembering which variants were used so far."""

    pack: PolicyPack
    registry: RuleRegistry
    seed: int
    used: Counter[tuple[str, str]] = field(default_factory=Counter)

    def _pick_variants(self, rng: random.Random, policies: Sequence[str]) -> list[Variant]:
        picked = []
        for policy_id in policies:
            variants = self.pack.policy(policy_id).scenario.variants
            if not variants:
                raise GenerationError(f"policy {policy_id!r} has no scenario variants")
            weights = [1 / (1 + self.used[(policy_id, v.name)]) ** 2 for v in variants]
            picked.append(rng.choices(variants, weights=weights)[0])
        return picked

    def _choose_entities(
        self, rng: random.Random, variants: Sequence[Variant], context: TemplateContext
    ) -> None:
        names = wanted_entities(self.pack, variants, context)
        conditions = entity_conditions(variants)
        for name in names:  # declaration order: later ones may use earlier
            candidates = entity_candidates(self.pack, name, conditions, context)
            context.entities[name] = rng.choice(candidates)
            context.tables[name] = self.pack.generation.entities[name].table

    def build(self, sample: PolicySample, attempt: int) -> Event:
        """One attempt at an event for ``sample``; raises GenerationError with the reason."""
        rng = random.Random(f"event:{self.seed}:{'+'.join(sample.policies)}:{attempt}")
        policies = list(sample.policies)
        variants = self._pick_variants(rng, policies)
        tasks = {v.task for v in variants if v.task}
        if len(tasks) > 1:
            raise GenerationError(f"variants want different tasks ({', '.join(sorted(tasks))})")
        context = TemplateContext(db=self.pack.seed_db)
        for variant in variants:
            for name, options in sorted(variant.choose.items()):
                if name in context.choices:
                    continue
                context.choices[name] = copy.deepcopy(rng.choice(options))
        self._choose_entities(rng, variants, context)

        overrides: dict[str, Any] = {}
        for variant in variants:
            merge_strict(overrides, context.render(variant.db), "db")
        for table, records in overrides.items():
            seed_table = self.pack.seed_db.get(table)
            if not isinstance(seed_table, Mapping):
                raise GenerationError(f"db override of table {table!r}, which the seed lacks")
            if isinstance(records, Mapping):
                for key in records:
                    if key not in seed_table:
                        raise GenerationError(
                            f"db override of {table}.{key}, which is not in the seed database"
                        )
        context.db = deep_merge(self.pack.seed_db, overrides)

        facts: dict[str, Any] = {}
        aliases: dict[str, list[str]] = {}
        requests: dict[str, GoalRequest] = {}
        agenda: list[DialogueAct] = []
        expected: list[Expectation] = []
        texts: list[str] = []
        confirm: set[bool] = set()
        opening = persona = None
        # The task's variants speak first, so the opening states what the user came for.
        for policy_id, variant in sorted(
            zip(policies, variants, strict=True), key=lambda pair: pair[1].task is None
        ):
            merge_strict(facts, context.render(variant.facts), "facts")
            for slot, words in variant.aliases.items():
                aliases.setdefault(slot, []).extend(
                    w for w in context.render(words) if w not in aliases.get(slot, [])
                )
            for request in variant.requests:
                requests.setdefault(
                    request.slot, GoalRequest.model_validate(context.render(request.model_dump()))
                )
            for act in variant.agenda:
                rendered = DialogueAct.model_validate(context.render(act.model_dump()))
                if rendered not in agenda:
                    agenda.append(rendered)
            for named_check in variant.expected:
                charged, check = check_policy(named_check)
                rendered_check = context.render(check)
                self.registry.parse(rendered_check)
                expected.append(Expectation(policy=charged or policy_id, check=rendered_check))
            if variant.text:
                texts.append(str(context.render(variant.text)))
            if variant.confirm is not None:
                confirm.add(variant.confirm)
            if opening is None and variant.opening:
                opening = str(context.render(variant.opening))
            if persona is None and variant.persona:
                persona = str(context.render(variant.persona))
        if len(confirm) > 1:
            raise GenerationError("one variant needs the user to confirm, another to decline")
        if opening is None and not requests:
            raise GenerationError("no variant gives the user an opening or a request")
        for act in agenda:
            if act.act == "inform" and act.slot not in facts:
                raise GenerationError(f"the agenda informs {act.slot!r}, which no fact gives")
        if opening is not None:
            agenda.insert(0, DialogueAct(act="say", text=opening))
        if persona is None and self.pack.generation.personas:
            persona = rng.choice(self.pack.generation.personas)
        event = Event(
            id="pending",
            domain=self.pack.domain,
            policies=policies,
            complexity=sum(self.pack.policy(p).complexity for p in policies),
            scenario=" ".join(texts),
            user=UserProfile(
                persona=persona or "",
                goal=UserGoal(
                    requests=list(requests.values()),
                    confirm=confirm.pop() if confirm else True,
                ),
                facts=facts,
                aliases=aliases,
                agenda=agenda,
            ),
            db=overrides,
            expected=expected,
            variants={p: v.name for p, v in zip(policies, variants, strict=True)},
        )
        stamp(event)
        for policy_id, variant in zip(policies, variants, strict=True):
            self.used[(policy_id, variant.name)] += 1
        return event

    def try_build(self, sample: PolicySample) -> Event | str:
        """An event, or after ``attempts`` failed tries the last reason."""
        reason = ""
        for attempt in range(self.pack.generation.attempts):
            try:
                return self.build(sample, attempt)
            except GenerationError as exc:
                reason = str(exc)
        return reason


# ----------------------------------------------------------------------------- a snapshot


@dataclass
class Generated:
    """What one generation run produced for one pack."""

    events: list[Event]
    skipped: list[SkippedSample]
    uncovered: list[str]

    @property
    def covered(self) -> dict[str, int]:
        counts: Counter[str] = Counter(p for event in self.events for p in event.policies)
        return dict(sorted(counts.items()))


def _record_skip(
    skipped: dict[tuple[tuple[str, ...], str], int], policies: Iterable[str], reason: str
) -> None:
    key = (tuple(policies), reason)
    skipped[key] = skipped.get(key, 0) + 1


BuildEvent = Callable[[PolicySample], Event | str]
"""Builds one sample's event, or returns why it could not (after its own retries)."""


def generate_events(
    pack: PolicyPack,
    *,
    registry: RuleRegistry,
    seed: int,
    graph: PolicyGraph | None = None,
    build: BuildEvent | None = None,
    prefetch: Callable[[Sequence[PolicySample]], None] | None = None,
    window: int = 1,
) -> Generated:
    """Events for a pack: a coverage set first, then seeded walks up to ``count`` events.

    Coverage samples that cannot be built whole are shrunk from the end (the policies
    dropped are needed again later); a policy no sample could cover is tried alone and
    with each neighbour before it is reported as uncovered.

    ``build`` makes one sample's event (default: the pack's templates,
    :meth:`EventBuilder.try_build`); the model's filler plugs in here, so both generators
    share this sampling. Samples are built one after another, in a seeded order, so the
    result only depends on what ``build`` answers. ``prefetch``, if given, is handed each
    next ``window`` of coverage and walk samples before they are built (a model fills
    them concurrently); it must not change what ``build`` answers.
    """
    spec = pack.generation
    graph = graph or PolicyGraph.from_pack(pack)
    from_templates = build is None
    if build is None:
        build = EventBuilder(pack=pack, registry=registry, seed=seed).try_build
    events: dict[str, Event] = {}
    skipped: dict[tuple[tuple[str, ...], str], int] = {}
    low, high = spec.complexity

    def add(sample: PolicySample) -> bool:
        built = build(sample)
        if isinstance(built, str):
            _record_skip(skipped, sample.policies, built)
            return False
        events.setdefault(built.id, built)
        return True

    coverage = graph.coverage(
        k=spec.coverage_k, edge_threshold=spec.edge_threshold, max_complexity=high
    )
    if from_templates:
        _check_capacity(pack, graph, coverage.samples)

    def add_shrinking(policies: Sequence[str]) -> None:
        """Build the sample, or its longest prefix that can be built; report a total failure."""
        for end in range(len(policies), 0, -1):
            built = build(_sample(graph, policies[:end]))
            if isinstance(built, Event):
                events.setdefault(built.id, built)
                return
            if end == len(policies):
                reason = built
        _record_skip(skipped, policies, reason)

    def ahead(samples: Sequence[PolicySample], index: int) -> None:
        if prefetch is not None and index % window == 0:
            prefetch(samples[index : index + window])

    for index, sample in enumerate(coverage.samples):
        ahead(coverage.samples, index)
        add_shrinking(sample.policies)
    needed = Counter({p: spec.coverage_k for p in pack.policy_ids})
    needed.subtract(p for event in events.values() for p in event.policies)
    for policy_id in sorted(p for p, n in needed.items() if n > 0):
        by_weight = sorted(graph.neighbours(policy_id), key=lambda item: -item[1])
        partners: list[list[str]] = [[], *([name] for name, _ in by_weight)]
        for partner in partners:
            if needed[policy_id] <= 0:
                break
            if add(_sample(graph, [policy_id, *partner])):
                needed[policy_id] -= 1
    walks = graph.sample(spec.count * 10, seed=f"events:{seed}", complexity=(low, high))
    for index, sample in enumerate(walks):
        if len(events) >= spec.count:
            break
        ahead(walks, index)
        add_shrinking(sample.policies)
    counts = Counter(p for event in events.values() for p in event.policies)
    uncovered = [
        f"policy {p}: in {counts[p]} events, {spec.coverage_k} wanted"
        for p in pack.policy_ids
        if counts[p] < spec.coverage_k
    ]
    uncovered += coverage.uncovered
    return Generated(
        events=sorted(events.values(), key=lambda e: (e.policies, e.id)),
        skipped=[
            SkippedSample(policies=list(policies), reason=reason, count=count)
            for (policies, reason), count in sorted(skipped.items())
        ],
        uncovered=uncovered,
    )


def _check_capacity(pack: PolicyPack, graph: PolicyGraph, coverage: Sequence[PolicySample]) -> None:
    """Refuse a ``count`` the templates cannot reach, before walking ten times as many samples."""
    count = pack.generation.count
    extra = [sample.policies for sample in coverage] + [
        (policy, *partner)
        for policy in graph.nodes
        for partner in [(), *((name,) for name, _ in graph.neighbours(policy))]
    ]
    capacity = template_capacity(pack, graph, extra, count)
    # None: enough; 0: nothing builds, and building says why (the builder's reasons).
    if capacity:
        raise GenerationFailed(
            f"generation.count: this pack's templates can give at most {capacity} distinct "
            f"{'event' if capacity == 1 else 'events'}; asked for {count} (lower the count, "
            "or add variants, choose values, personas or records for its entities)"
        )


def _sample(graph: PolicyGraph, policies: Sequence[str]) -> PolicySample:
    total = sum(graph.complexity[p] for p in policies)
    return PolicySample(policies=tuple(policies), complexity=total, target=total)


# ----------------------------------------------------------------------------- files
