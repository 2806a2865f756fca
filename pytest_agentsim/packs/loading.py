"""Loading and validating policy packs (``policies/<domain>.yaml``).

Every mistake in a pack is a :class:`~pytest_agentsim.core.errors.ConfigError` naming the file,
the line, the policy and what was expected; unknown keys are errors, not ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.errors import UnknownRuleType
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.sources import Loc
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.core.sources import field_path
from pytest_agentsim.core.sources import line_of
from pytest_agentsim.core.sources import load_document
from pytest_agentsim.core.sources import load_model
from pytest_agentsim.core.sources import read_user_text
from pytest_agentsim.core.sources import to_plain
from pytest_agentsim.core.sources import validation_error_message
from pytest_agentsim.core.taxonomy import RiskTaxonomy


def validate_check(
    path: Path, raw: Any, check: Any, loc: Loc, prefix: str, registry: RuleRegistry
) -> None:
    """Validate one rule check found at ``loc`` (inside a named object) in a document."""
    try:
        registry.parse(check)
    except UnknownRuleType as exc:
        line = line_of(raw, (*loc, "type"))
        raise ConfigError(
            f"{display_path(path)}:{line}: {prefix}{field_path(loc[2:])}: {exc}"
        ) from None
    except ValidationError as exc:
        raise ConfigError(
            validation_error_message(
                path,
                raw,
                exc,
                model=registry.type_of(check["type"]),
                loc_prefix=loc,
                context=lambda full: (prefix, full[2:]),
            )
        ) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("duplicate key")
    return found


def _read_json(path: Path, what: str) -> Any:
    """A ``.json`` seed read by the json module: a YAML parse of a multi-MB database
    takes minutes. Anything the json module refuses (or a key given twice, which it would
    take the last of) is read again as YAML, for the message naming the line."""
    if path.suffix.lower() != ".json":
        return _NOT_JSON
    try:
        return json.loads(read_user_text(path, what=what), object_pairs_hook=_unique_keys)
    except ValueError:  # invalid JSON or a duplicate key
        return _NOT_JSON


_NOT_JSON = object()


def _load_seed_db(pack_path: Path, database: str) -> tuple[dict[str, Any], bytes]:
    db_path = (pack_path.parent / database).resolve()
    what = f"seed database of {display_path(pack_path)}"
    raw = _read_json(db_path, what)
    if raw is _NOT_JSON:
        raw = to_plain(load_document(db_path, what=what))
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(to_plain(raw)).__name__
        raise ConfigError(
            f"{display_path(db_path)}: the seed database must be a mapping of tables, got {got}"
        )
    return raw, db_path.read_bytes()


def load_pack(
    path: Path, *, registry: RuleRegistry, taxonomy: RiskTaxonomy | None = None
) -> PolicyPack:
    """Load one pack, validate it fully, and attach its seed database and content hash."""
    path = Path(path)
    pack, raw = load_model(
        path, PolicyPack, what="policy pack", kind="policy", collection="policies"
    )
    where = display_path(path)

    taxonomy = (taxonomy or RiskTaxonomy()).extended(pack.risk_taxonomy)
    seen: dict[str, int] = {}
    for index, policy in enumerate(pack.policies):
        loc: Loc = ("policies", index)
        policy._line = line_of(raw, loc)
        prefix = f"policy {policy.id!r}: "
        if policy.id in seen:
            raise ConfigError(
                f"{where}:{line_of(raw, (*loc, 'id'))}: {prefix}duplicate policy id "
                f"(first defined on line {seen[policy.id]})"
            )
        seen[policy.id] = policy.line or 0
        if policy.risk_category not in taxonomy:
            raise ConfigError(
                f"{where}:{line_of(raw, (*loc, 'risk_category'))}: {prefix}risk_category must be "
                f"one of {', '.join(taxonomy.names)}, got {policy.risk_category!r} "
                "(add it under risk_taxonomy to extend the taxonomy)"
            )
        for number, check in enumerate(policy.checks):
            validate_check(path, raw, check, (*loc, "checks", number), prefix, registry)
        policy._check_lines = [
            line_of(raw, (*loc, "checks", number)) for number in range(len(policy.checks))
        ]

    for index, edge in enumerate(pack.edges):
        for number, policy_id in enumerate(edge.between):
            if policy_id not in seen:
                raise ConfigError(
                    f"{where}:{line_of(raw, ('edges', index, 'between', number))}: "
                    f"edges[{index}]: unknown policy {policy_id!r} "
                    f"(pack has: {', '.join(pack.policy_ids)})"
                )
        if edge.between[0] == edge.between[1]:
            raise ConfigError(
                f"{where}:{line_of(raw, ('edges', index))}: edges[{index}]: "
                f"an edge joins two different policies, got {edge.between[0]!r} twice"
            )

    digest = hashlib.sha256(path.read_bytes())
    if pack.database:
        pack._seed_db, db_bytes = _load_seed_db(path, pack.database)
        digest.update(db_bytes)
    for p_index, policy in enumerate(pack.policies):
        for number, check in enumerate(policy.checks):
            problem = path_table_problem(check, registry, pack.seed_db)
            if problem:
                raise ConfigError(
                    f"{where}:{line_of(raw, ('policies', p_index, 'checks', number, 'path'))}: "
                    f"policy {policy.id!r}: checks[{number}].{problem}"
                )
    _validate_templates(path, raw, pack, registry)
    pack._path = str(path)
    pack._content_hash = digest.hexdigest()
    return pack


def pack_taxonomy(pack: PolicyPack, base: RiskTaxonomy | None = None) -> RiskTaxonomy:
    return (base or RiskTaxonomy()).extended(pack.risk_taxonomy)


def override_problem(db: Mapping[str, Any], seed_db: Mapping[str, Any]) -> tuple[Loc, str] | None:
    """(location within ``db``, why) when database overrides would break the seed's shape.

    Overrides are deep-merged over the seed (:func:`~pytest_agentsim.packs.events.deep_merge`):
    a table the seed lacks would be invented, and a table or record given as something
    else than a mapping would replace the seed's records instead of setting fields, so
    the agent's tools would see a database no real one looks like. Generated events are
    held to the same rule.
    """
    for table, records in db.items():
        if table not in seed_db:
            tables = ", ".join(map(str, seed_db)) or "none"
            return (table,), f"table {table!r} is not in the seed database (tables: {tables})"
        seed_table = seed_db[table]
        if not isinstance(seed_table, Mapping):
            continue
        if not isinstance(records, Mapping):
            return (table,), (
                f"overrides of table {table!r} must map record ids to fields, "
                f"got {type(records).__name__}"
            )
        for key, record in records.items():
            if isinstance(seed_table.get(key), Mapping) and not isinstance(record, Mapping):
                return (table, key), (
                    f"an existing record of {table!r} only gets fields set (a mapping), "
                    f"got {record!r}"
                )
    return None


def path_table_problem(check: Any, registry: RuleRegistry, db: Mapping[str, Any]) -> str | None:
    """Why a check's database path names no table of ``db``, if one does not.

    Such a check is decided by the table's absence before the conversation starts (a
    ``db_contains`` always violated, a ``db_not_contains`` always compliant). Checked
    for any rule type with a ``path`` or ``paths`` field (or the ``changes`` and
    ``removed`` of an expected state), as generated events are.
    """
    if not db:
        return None
    try:
        rule = registry.parse(check)
    except (UnknownRuleType, ValidationError):
        return None  # reported by validate_check
    for field_name, path in db_paths(rule):
        table = str(path.split(".")[0] if isinstance(path, str) else path[0])
        if table not in db:
            return (
                f"{field_name} names table {table!r}, which the database lacks (tables: "
                f"{', '.join(map(str, db))})"
            )
    return None


def db_paths(rule: Any) -> list[tuple[str, str | list[str | int]]]:
    """(field, path) of every database path a parsed rule check names."""
    found: list[tuple[str, str | list[str | int]]] = []
    path = getattr(rule, "path", None)
    if path:
        found.append(("path", path))
    for field_name in ("paths", "changes", "removed"):
        found += [(field_name, item) for item in getattr(rule, field_name, None) or () if item]
    return found


def _entity_fields(pack: PolicyPack) -> dict[str, set[str]]:
    """Entity -> the fields ``{entity.field}`` may name: those of its table's records in
    the seed database, and those any variant's ``db`` override sets in that table.

    Entities whose table holds no records (or is not a table of records) are left out:
    nothing is known of their fields, so nothing is rejected.
    """
    set_by_variants: dict[str, set[str]] = {}
    for policy in pack.policies:
        for variant in policy.scenario.variants:
            for table, records in variant.db.items():
                if isinstance(records, Mapping):
                    for record in records.values():
                        if isinstance(record, Mapping):
                            set_by_variants.setdefault(table, set()).update(map(str, record))
    fields: dict[str, set[str]] = {}
    for name, spec in pack.generation.entities.items():
        rows = pack.seed_db.get(spec.table)
        if isinstance(rows, Mapping):
            records = list(rows.values())
        elif isinstance(rows, list):
            records = rows
        else:
            continue
        known = {str(key) for record in records if isinstance(record, Mapping) for key in record}
        if known:
            fields[name] = known | set_by_variants.get(spec.table, set())
    return fields


def _validate_templates(path: Path, raw: Any, pack: PolicyPack, registry: RuleRegistry) -> None:
    """Scenario templates may only name declared entities and choices, and known checks."""
    from pytest_agentsim.packs.templates import TemplateContext
    from pytest_agentsim.packs.templates import check_policy
    from pytest_agentsim.packs.templates import placeholder_refs
    from pytest_agentsim.packs.templates import placeholders

    where = display_path(path)
    entities = pack.generation.entities
    for index, (name, spec) in enumerate(entities.items()):
        loc: Loc = ("generation", "entities", name)
        if pack.database and spec.table not in pack.seed_db:
            raise ConfigError(
                f"{where}:{line_of(raw, (*loc, 'table'))}: generation.entities.{name}: table "
                f"{spec.table!r} is not in the seed database (tables: "
                f"{', '.join(sorted(pack.seed_db))})"
            )
        rows = pack.seed_db.get(spec.table)
        if pack.database and not (isinstance(rows, (Mapping, list)) and rows):
            raise ConfigError(
                f"{where}:{line_of(raw, (*loc, 'table'))}: generation.entities.{name}: table "
                f"{spec.table!r} of the seed database holds no records to draw {name!r} from"
            )
        earlier = set(list(entities)[:index])
        for undeclared in sorted(placeholders(spec.where) - earlier):
            raise ConfigError(
                f"{where}:{line_of(raw, (*loc, 'where'))}: generation.entities.{name}: "
                f"'{{{undeclared}}}' must name an entity declared before it "
                f"({', '.join(sorted(earlier)) or 'none'})"
            )
    fields = _entity_fields(pack)
    for name, spec in entities.items():
        for key in spec.where:
            if name in fields and str(key) not in fields[name]:
                raise ConfigError(
                    f"{where}:{line_of(raw, ('generation', 'entities', name, 'where', key))}: "
                    f"generation.entities.{name}.where: no record of {spec.table} has a field "
                    f"{key!r} (fields: {', '.join(sorted(fields[name]))})"
                )
    informed = {str(slot) for p in pack.policies for v in p.scenario.variants for slot in v.facts}
    for p_index, policy in enumerate(pack.policies):
        prefix = f"policy {policy.id!r}: "
        strangers = [name for name in policy.scenario.entities if name not in entities]
        if entities and strangers:
            raise ConfigError(
                f"{where}:{line_of(raw, ('policies', p_index, 'scenario', 'entities'))}: "
                f"{prefix}scenario.entities names {strangers[0]!r}, which is not an entity of "
                f"generation.entities ({', '.join(entities)})"
            )
        for v_index, variant in enumerate(policy.scenario.variants):
            loc = ("policies", p_index, "scenario", "variants", v_index)
            known = set(entities) | set(variant.choose)
            for field_name in type(variant).model_fields:
                value = getattr(variant, field_name)
                if field_name in ("name", "choose") or not value:
                    continue
                if not isinstance(value, (str, list, dict)):
                    continue
                dumped = [
                    item.model_dump() if hasattr(item, "model_dump") else item
                    for item in (value if isinstance(value, list) else [value])
                ]
                refs = placeholder_refs(dumped)
                unknown = {name for name, _ in refs} - known
                for name, attribute in sorted(refs, key=str):
                    if attribute and name in fields and attribute not in fields[name]:
                        raise ConfigError(
                            f"{where}:{line_of(raw, (*loc, field_name))}: {prefix}variant "
                            f"{variant.name!r}: {field_name} names '{{{name}.{attribute}}}', "
                            f"but no record of {entities[name].table} has a field "
                            f"{attribute!r} (fields: {', '.join(sorted(fields[name]))})"
                        )
                if field_name == "where":
                    unknown |= set(variant.where) - set(entities)
                if unknown:
                    raise ConfigError(
                        f"{where}:{line_of(raw, (*loc, field_name))}: {prefix}variant "
                        f"{variant.name!r}: {field_name} names "
                        f"{', '.join(sorted(f'{{{n}}}' for n in unknown))}, which is neither an "
                        f"entity of generation.entities ({', '.join(entities) or 'none'}) nor "
                        "a value of the variant's choose"
                    )
            named = f"{where}:{{line}}: {prefix}variant {variant.name!r}: "
            for entity, conditions in variant.where.items():
                for key in conditions:
                    if entity in fields and str(key) not in fields[entity]:
                        line = line_of(raw, (*loc, "where", entity, key))
                        raise ConfigError(
                            named.format(line=line) + f"where.{entity}: no record of "
                            f"{entities[entity].table} has a field {key!r} (fields: "
                            f"{', '.join(sorted(fields[entity]))})"
                        )
            for a_index, act in enumerate(variant.agenda):
                if act.act == "inform" and act.slot not in informed:
                    line = line_of(raw, (*loc, "agenda", a_index, "slot"))
                    raise ConfigError(
                        named.format(line=line) + f"agenda[{a_index}]: inform of slot "
                        f"{act.slot!r}, which no variant's facts give (facts: "
                        f"{', '.join(sorted(informed)) or 'none'})"
                    )
            if pack.database:
                stand_in_db = TemplateContext(stand_in="x").render(variant.db)
                problem = override_problem(stand_in_db, pack.seed_db)
                if problem is not None:
                    sub_loc, why = problem
                    line = line_of(raw, (*loc, "db", *sub_loc[:1]))
                    raise ConfigError(
                        named.format(line=line) + f"db.{'.'.join(map(str, sub_loc))}: {why}"
                    )
            for c_index, named_check in enumerate(variant.expected):
                check_loc = (*loc, "expected", c_index)
                charged, check = check_policy(named_check)
                if charged is not None and charged not in pack.policy_ids:
                    line = line_of(raw, (*check_loc, "policy"))
                    raise ConfigError(
                        named.format(line=line) + f"expected[{c_index}].policy: unknown "
                        f"policy {charged!r} (pack has: {', '.join(pack.policy_ids)})"
                    )
                # Placeholders are filled at generation; here any text stands in for them.
                stand_in = TemplateContext(stand_in="x").render(check)
                validate_check(path, raw, stand_in, check_loc, prefix, registry)
                problem_text = path_table_problem(stand_in, registry, pack.seed_db)
                if problem_text:
                    line = line_of(raw, (*check_loc, "path"))
                    raise ConfigError(
                        named.format(line=line) + f"expected[{c_index}].{problem_text}"
                    )
