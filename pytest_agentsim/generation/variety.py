"""How many distinct events a pack's templates can give, counted before any is built.

An event built from templates is a function of its policy sample (the ordered policies a
walk, a coverage sample or a prefix of either gave), the variant picked per policy, the
values of the variants' ``choose`` lists, the records chosen for its entities and its
persona; nothing else enters it. So the sum, over the samples the walks can reach, of the
variant combinations that can live in one conversation times their choices, entity
records and personas bounds the distinct events. Generation asked for more than that
says so at once instead of walking ten times ``count`` samples to find out.

The entity helpers are shared with :class:`~pytest_agentsim.generation.filling.EventBuilder`,
which draws one record where this module counts them all.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import Variant
from pytest_agentsim.generation.graph import PolicyGraph
from pytest_agentsim.packs.templates import GenerationError
from pytest_agentsim.packs.templates import TemplateContext
from pytest_agentsim.packs.templates import placeholders

# Counting stops here without a bound: a graph this rich gives more than any count asks.
MAX_SAMPLES = 200_000


def merge_strict(target: dict[str, Any], source: Mapping[str, Any], where: str) -> None:
    """Merge ``source`` into ``target``; the same leaf set to two values is a conflict."""
    for key, value in source.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(target[key], dict) and isinstance(value, Mapping):
            merge_strict(target[key], value, path)
        elif target[key] != value:
            raise GenerationError(f"{path} is set to both {target[key]!r} and {value!r}")


def wanted_entities(
    pack: PolicyPack, variants: Sequence[Variant], context: TemplateContext
) -> list[str]:
    """The pack's entities these variants refer to (and those their conditions refer to),
    in declaration order: later ones may be conditioned on earlier ones."""
    specs = pack.generation.entities
    wanted: set[str] = set()
    for variant in variants:
        material = variant.model_dump(exclude={"name", "task", "choose"})
        wanted |= (placeholders(material) | set(variant.where)) - set(context.choices)
    for name in list(specs):
        if name in wanted:
            wanted |= placeholders(specs[name].where) - set(context.choices)
    return [name for name in specs if name in wanted]


def entity_conditions(variants: Sequence[Variant]) -> dict[str, dict[str, Any]]:
    """The variants' ``where`` conditions per entity, merged (a conflict is an error)."""
    conditions: dict[str, dict[str, Any]] = {}
    for variant in variants:
        for name, fields in variant.where.items():
            merge_strict(conditions.setdefault(name, {}), fields, f"where.{name}")
    return conditions


def entity_candidates(
    pack: PolicyPack,
    name: str,
    conditions: Mapping[str, Mapping[str, Any]],
    context: TemplateContext,
) -> list[str]:
    """The records entity ``name`` can be, given what ``context`` has chosen so far."""
    spec = pack.generation.entities[name]
    table = pack.seed_db.get(spec.table)
    if not isinstance(table, Mapping):
        raise GenerationError(f"entity {name!r}: table {spec.table!r} is not a mapping")
    required = dict(spec.where)
    merge_strict(required, conditions.get(name, {}), f"where.{name}")
    required = context.render(required)
    candidates = [
        key
        for key, record in sorted(table.items())
        if not required
        or (isinstance(record, Mapping) and all(record.get(f) == v for f, v in required.items()))
    ]
    if not candidates:
        raise GenerationError(
            f"no record in {spec.table} matches entity {name!r} "
            f"({', '.join(f'{f}={v!r}' for f, v in required.items())})"
        )
    return candidates


def _buildable(variants: Sequence[Variant]) -> bool:
    """What the builder refuses for any entities: two tasks, a yes and a no to confirming,
    nothing to open with, an agenda informing a fact no variant gives."""
    if len({v.task for v in variants if v.task}) > 1:
        return False
    if len({v.confirm for v in variants if v.confirm is not None}) > 1:
        return False
    if not any(v.opening or v.requests for v in variants):
        return False
    facts = {name for v in variants for name in v.facts}
    return all(act.slot in facts for v in variants for act in v.agenda if act.act == "inform")


def _entity_assignments(
    pack: PolicyPack,
    names: Sequence[str],
    conditions: Mapping[str, Mapping[str, Any]],
    context: TemplateContext,
    limit: int,
) -> int:
    """How many ways the entities ``names`` can be chosen (counting stops at ``limit``)."""
    if not names:
        return 1
    name, rest = names[0], names[1:]
    try:
        candidates = entity_candidates(pack, name, conditions, context)
    except GenerationError:
        return 0
    total = 0
    table = pack.generation.entities[name].table
    for key in candidates:
        context.entities[name], context.tables[name] = key, table
        total += _entity_assignments(pack, rest, conditions, context, limit - total)
        if total >= limit:
            break
    context.entities.pop(name, None)
    return min(total, limit)


def combination_variety(pack: PolicyPack, variants: Sequence[Variant], limit: int) -> int:
    """Distinct events one variant per policy can give: choices x entity records x personas."""
    if not _buildable(variants):
        return 0
    options: dict[str, list[Any]] = {}
    for variant in variants:
        for name, values in sorted(variant.choose.items()):
            options.setdefault(name, values)
    personas = 1 if any(v.persona for v in variants) else max(1, len(pack.generation.personas))
    try:
        conditions = entity_conditions(variants)
    except GenerationError:
        return 0
    total = 0
    for picked in itertools.product(*options.values()):
        context = TemplateContext(db=pack.seed_db, choices=dict(zip(options, picked, strict=True)))
        try:
            names = wanted_entities(pack, variants, context)
        except GenerationError:
            continue
        total += personas * _entity_assignments(
            pack, names, conditions, context, math.ceil((limit - total) / personas)
        )
        if total >= limit:
            return limit
    return total


def reachable_samples(
    graph: PolicyGraph, high: int, extra: Sequence[Sequence[str]]
) -> Iterator[tuple[str, ...]]:
    """Every policy sample generation can build: the walks' paths (each step to an unvisited
    neighbour whose complexity keeps the sum within ``high``, which every prefix of a walk
    is too) and the ``extra`` samples (coverage) with their prefixes; each once."""
    seen: set[tuple[str, ...]] = set()
    for sample in extra:
        for end in range(len(sample), 0, -1):
            prefix = tuple(sample[:end])
            if prefix not in seen:
                seen.add(prefix)
                yield prefix
    stack: list[tuple[tuple[str, ...], int]] = [
        ((node,), graph.complexity[node]) for node in reversed(graph.nodes)
    ]
    while stack:
        path, total = stack.pop()
        if path not in seen:
            yield path
        for node, _ in reversed(graph.neighbours(path[-1])):
            if node not in path and total + graph.complexity[node] <= high:
                stack.append(((*path, node), total + graph.complexity[node]))


def template_capacity(
    pack: PolicyPack, graph: PolicyGraph, extra: Sequence[Sequence[str]], limit: int
) -> int | None:
    """An upper bound on the distinct events the pack's templates give, if it is below
    ``limit``; None when they can give ``limit`` or more (or the graph is too rich to count).
    """
    high = pack.generation.complexity[1]
    total = 0
    for count, sample in enumerate(reachable_samples(graph, high, extra)):
        if count >= MAX_SAMPLES:
            return None
        per_policy = [pack.policy(policy).scenario.variants for policy in sample]
        for variants in itertools.product(*per_policy):
            total += combination_variety(pack, variants, limit - total)
            if total >= limit:
                return None
    return total
