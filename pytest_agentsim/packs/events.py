"""Events: the unit a test is parametrized over, read from a reviewed snapshot file.

A snapshot (``fixtures/events/<domain>.yaml``) lists events for one pack's domain. Each
event names the policies it exercises, the simulated user's profile and agenda, overrides
deep-merged over the pack's seed database, event-specific expectations (rule checks
attributed to a policy of the pack) and an optional exact final state (``expected_state``). Generating snapshots is a separate step; loading only
validates them against the pack, so a stale or hand-edited snapshot fails with a clear line.
"""

from __future__ import annotations

import copy
import hashlib
import json
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.dbpaths import StateError
from pytest_agentsim.core.dbpaths import expected_db
from pytest_agentsim.core.dbstate import merged
from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventSet
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.models import regenerate_command
from pytest_agentsim.core.sources import LineDict
from pytest_agentsim.core.sources import Loc
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.core.sources import line_of
from pytest_agentsim.core.sources import load_document
from pytest_agentsim.core.sources import to_plain
from pytest_agentsim.core.sources import validate_document
from pytest_agentsim.packs.loading import override_problem
from pytest_agentsim.packs.loading import path_table_problem
from pytest_agentsim.packs.loading import validate_check


def load_events(path: Path, *, packs: Mapping[str, PolicyPack], registry: RuleRegistry) -> EventSet:
    """Load a snapshot and check every reference in it against the loaded packs."""
    path = Path(path)
    raw = load_document(path, what="events file")
    _check_snapshot_digest(path, raw)
    event_set = validate_document(
        path, raw, EventSet, what="events file", kind="event", collection="events"
    )
    where = display_path(path)
    pack = packs.get(event_set.domain)
    if pack is None:
        known = ", ".join(sorted(packs)) or "none"
        raise ConfigError(
            f"{where}:{line_of(raw, ('domain',))}: domain {event_set.domain!r} has no policy pack "
            f"(loaded packs: {known})"
        )
    generated = event_set.generated
    if generated is not None and generated.fingerprint != pack.fingerprint:
        raise ConfigError(
            f"{where}:{line_of(raw, ('generated', 'fingerprint'))}: stale snapshot: "
            f"{display_path(pack.path or generated.pack)} changed since these events were "
            f"generated; regenerate with `{generated.regenerate_command}` and review the diff"
        )
    seen: dict[str, int] = {}
    for index, event in enumerate(event_set.events):
        loc = ("events", index)
        event._line = line_of(raw, loc)
        event._path = str(path)
        event._generated = generated is not None
        prefix = f"event {event.id!r}: "
        if event.id in seen:
            raise ConfigError(
                f"{where}:{line_of(raw, (*loc, 'id'))}: {prefix}duplicate event id "
                f"(first defined on line {seen[event.id]})"
            )
        seen[event.id] = event.line or 0
        if event.domain and event.domain != event_set.domain:
            raise ConfigError(
                f"{where}:{line_of(raw, (*loc, 'domain'))}: {prefix}domain must be "
                f"{event_set.domain!r} like its file, got {event.domain!r}"
            )
        event.domain = event_set.domain
        for number, policy_id in enumerate(event.policies):
            if policy_id not in pack.policy_ids:
                raise ConfigError(
                    f"{where}:{line_of(raw, (*loc, 'policies', number))}: {prefix}unknown policy "
                    f"{policy_id!r} (pack {pack.domain!r} has: {', '.join(pack.policy_ids)})"
                )
        for number, expectation in enumerate(event.expected):
            exp_loc = (*loc, "expected", number)
            expectation._line = line_of(raw, exp_loc)
            if expectation.policy not in pack.policy_ids:
                raise ConfigError(
                    f"{where}:{line_of(raw, (*exp_loc, 'policy'))}: {prefix}expected[{number}] "
                    f"is attributed to {expectation.policy!r}, which is not a policy of pack "
                    f"{pack.domain!r} ({', '.join(pack.policy_ids)})"
                )
            validate_check(path, raw, expectation.check, (*exp_loc, "check"), prefix, registry)
        problem = (
            _user_problem(event)
            or _agenda_problem(event)
            or _db_problem(pack, event)
            or _fact_id_problem(pack, event)
            or _path_problem(pack, event, registry)
            or _state_problem(pack, event)
        )
        if problem is not None:
            field_loc, message = problem
            raise ConfigError(f"{where}:{line_of(raw, (*loc, *field_loc))}: {prefix}{message}")
    event_set._path = str(path)
    return event_set


def events_digest(events: Any) -> str:
    """sha256 of a snapshot's events as plain data (what its YAML loads to), keys sorted.

    A generated snapshot records it in its header, so that loading it notices a hand
    edit or a truncation: its events were checked against the pack when generated, and
    an edited copy would pass as that reviewed output.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(key): plain(item) for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    canonical = json.dumps(
        plain(to_plain(events)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_snapshot_digest(path: Path, raw: Any) -> None:
    """A generated snapshot's events must still be those its header's hash was made of."""
    header = raw.get("generated") if isinstance(raw, LineDict) else None
    if not isinstance(header, LineDict):
        return
    where = display_path(path)
    command = regenerate_command(header.get("seed"), header.get("generator"))
    advice = (
        f"regenerate with `{command}` or remove the `generated:` header to keep it as hand-written"
    )
    recorded = header.get("events_sha256")
    if recorded is None:
        raise ConfigError(
            f"{where}:{line_of(raw, ('generated',))}: generated snapshot without "
            f"generated.events_sha256 (written by an older pytest-agentsim?): {advice}"
        )
    if recorded != events_digest(raw.get("events")):
        raise ConfigError(
            f"{where}:{line_of(raw, ('generated', 'events_sha256'))}: generated snapshot "
            f"edited or truncated (its events do not match generated.events_sha256): {advice}"
        )


def _user_problem(event: Event) -> tuple[Loc, str] | None:
    """A simulated user with nothing to say: no script, no goal request and no agenda act
    but ``bye``. Its conversation would end at once and every check that needs something
    to happen would pass for nothing having happened."""
    user = event.user
    if user.script is not None or user.goal.requests:
        return None
    if any(act.act != "bye" for act in user.agenda):
        return None
    return ("user",), (
        "user: the simulated user has nothing to say (give it a script, agenda acts or goal "
        "requests)"
    )


def _db_problem(pack: PolicyPack, event: Event) -> tuple[Loc, str] | None:
    """Database overrides that would break the shape of the pack's seed database."""
    if not pack.database:
        return None
    problem = override_problem(event.db, pack.seed_db)
    if problem is None:
        return None
    sub_loc, why = problem
    return ("db", *sub_loc[:1]), f"db.{'.'.join(map(str, sub_loc))}: {why}"


def _path_problem(pack: PolicyPack, event: Event, registry: RuleRegistry) -> tuple[Loc, str] | None:
    """An expectation whose database path names no table of the event's starting database."""
    db = starting_db(pack, event)
    for number, expectation in enumerate(event.expected):
        why = path_table_problem(expectation.check, registry, db)
        if why:
            return ("expected", number, "check", "path"), f"expected[{number}].check.{why}"
    return None


def _state_problem(pack: PolicyPack, event: Event) -> tuple[Loc, str] | None:
    """An ``expected_state`` that could not be judged as written: charged to no policy (or
    to one the pack lacks), or with changes the event's starting database cannot take,
    which would make every conversation of the event violate it."""
    state = event.expected_state
    if state is None:
        return None
    if state.policy is not None and state.policy not in pack.policy_ids:
        return ("expected_state", "policy"), (
            f"expected_state.policy: unknown policy {state.policy!r} (pack {pack.domain!r} "
            f"has: {', '.join(pack.policy_ids)})"
        )
    if state.policy is None and len(event.policies) > 1:
        return ("expected_state",), (
            "expected_state: name the policy its verdict is charged to with policy: (the "
            f"event lists several: {', '.join(event.policies)})"
        )
    db = starting_db(pack, event)
    if state.db is not None:
        for table in state.db:
            if db and str(table) not in db:
                return ("expected_state", "db", table), (
                    f"expected_state.db: table {table!r} is not in the event's starting "
                    f"database (tables: {', '.join(map(str, db))})"
                )
        lacking = [str(table) for table in db if str(table) not in map(str, state.db)]
        if lacking:
            return ("expected_state", "db"), (
                f"expected_state.db lacks table {lacking[0]!r}: a whole expected database "
                "has every table of the starting one (or give changes instead)"
            )
        return None
    for field_name, paths in (("changes", list(state.changes or {})), ("removed", state.removed)):
        for path in paths:
            table = path.split(".")[0]
            if db and table not in db:
                return ("expected_state", field_name, path), (
                    f"expected_state.{field_name}: {path!r} names table {table!r}, which the "
                    f"event's starting database lacks (tables: {', '.join(map(str, db))})"
                )
    try:
        expected_db(db, state)
    except StateError as exc:
        return ("expected_state",), f"expected_state: {exc}"
    return None


def _agenda_problem(event: Event) -> tuple[Loc, str] | None:
    """An agenda act the offline user could not say: an ``inform`` of a slot that no fact
    or goal constraint gives (the user would answer "Sorry, I don't know my ..."), or
    whose ``text`` names a placeholder other than ``{value}`` and the user's slots."""
    user = event.user
    known = {**user.facts, **user.goal.constraints}
    for index, act in enumerate(user.agenda):
        loc: Loc = ("user", "agenda", index)
        if act.act != "inform" or act.slot is None:
            continue
        if act.slot not in known:
            return (
                (*loc, "slot"),
                f"user.agenda[{index}]: inform of slot {act.slot!r}, which no fact gives "
                f"(user.facts: {', '.join(map(str, known)) or 'none'})",
            )
        if act.text is not None:
            try:
                fields = {
                    name.split(".")[0].split("[")[0]
                    for _, name, _, _ in string.Formatter().parse(act.text)
                    if name is not None
                }
            except ValueError as exc:
                return (*loc, "text"), f"user.agenda[{index}].text: {exc} in {act.text!r}"
            unknown = sorted(fields - {"value", *map(str, known)})
            if unknown:
                return (
                    (*loc, "text"),
                    f"user.agenda[{index}].text names {{{unknown[0]}}}, which is neither "
                    f"{{value}} nor a fact ({', '.join(map(str, known))})",
                )
    return None


def table_ids(records: Any) -> set[str]:
    """The record ids of one table: a mapping of id -> record, or a list of records whose
    ``id`` field is the id; values that are not records (``meta: {now: ...}``) are not ids."""
    if isinstance(records, Mapping):
        return {str(key) for key, record in records.items() if isinstance(record, Mapping)}
    if isinstance(records, list):
        return {
            str(record["id"])
            for record in records
            if isinstance(record, Mapping) and "id" in record
        }
    return set()


def record_ids(db: Mapping[str, Any]) -> dict[str, str]:
    """Record id -> its table (the first in sorted order), over a database's tables."""
    ids: dict[str, str] = {}
    for table, records in sorted(db.items()):
        for key in sorted(table_ids(records)):
            ids.setdefault(key, table)
    return ids


def id_values(value: Any) -> list[str]:
    """The ids a fact's value names: itself, or each item of a list (None is a fact the
    user does not know, not an id)."""
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items if item is not None]


#: The ids of seed tables, by the table's identity: an event's starting database shares
#: every table its overrides leave alone, so a multi-MB seed is scanned once, not per event.
_SEED_IDS: dict[tuple[int, bool], tuple[Any, frozenset[str]]] = {}


def _ids_of(
    pack: PolicyPack, db: Mapping[str, Any], table: str, *, every_key: bool = False
) -> frozenset[str]:
    """The record ids of one table of ``db`` (``every_key``: every key of a mapping)."""
    rows = db.get(table)
    shared = rows is not None and rows is pack.seed_db.get(table)
    key = (id(rows), every_key)
    if shared and key in _SEED_IDS and _SEED_IDS[key][0] is rows:
        return _SEED_IDS[key][1]
    ids = frozenset(
        {str(name) for name in rows} if every_key and isinstance(rows, Mapping) else table_ids(rows)
    )
    if shared:
        if len(_SEED_IDS) >= 64:
            _SEED_IDS.pop(next(iter(_SEED_IDS)))
        _SEED_IDS[key] = (rows, ids)
    return ids


def _fact_id_problem(pack: PolicyPack, event: Event) -> tuple[Loc, str] | None:
    """A fact named ``..._id`` whose value is not the id of a record in the event's
    starting database (the seed with the event's overrides).

    The user would give an id the agent's tools cannot find, and every check about that
    record would be decided by its absence; generated events are held to the same rule.
    A fact ``<entity>_id`` of an entity of the pack's ``generation.entities`` must name a
    record of that entity's table. A fact named otherwise can still give an unknown id on
    purpose. A database without records has nothing to check against.
    """
    db = starting_db(pack, event)
    entity_tables = {f"{name}_id": spec.table for name, spec in pack.generation.entities.items()}
    for slot, value in event.user.facts.items():
        if not str(slot).endswith("_id"):
            continue
        table = entity_tables.get(str(slot))
        if table is not None:
            # Entities are drawn from every key of their table, whatever its records are.
            known = [_ids_of(pack, db, table, every_key=isinstance(db.get(table), Mapping))]
        else:
            known = [_ids_of(pack, db, name) for name in db]
        if not any(known):
            continue
        for item in id_values(value):
            if not any(item in ids for ids in known):
                of = f"of {table} " if table is not None else ""
                return (
                    ("user", "facts", slot),
                    f"user.facts.{slot}: {item!r} is not the id of a record {of}in the "
                    f"event's starting database (the seed with the event's db); to give an "
                    "unknown id on purpose, name the fact without the '_id' ending",
                )
    return None


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``overrides`` merged in: mappings merge, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def starting_db(pack: PolicyPack, event: Event) -> dict[str, Any]:
    """The database an event starts from: the pack's seed with the event's overrides.

    It shares every part the overrides do not reach with the seed (a multi-MB seed is not
    copied per event), so it must not be changed: a sandbox hands its tools a
    copy-on-access view of it.
    """
    return merged(pack.seed_db, event.db)
