"""Events: the unit a test is parametrized over, read from a reviewed snapshot file.

A snapshot (``fixtures/events/<domain>.yaml``) lists events for one pack's domain. Each
event names the policies it exercises, the simulated user's profile and agenda, overrides
deep-merged over the pack's seed database, and event-specific expectations (rule checks
attributed to one of its policies). Generating snapshots is a separate step; loading only
validates them against the pack, so a stale or hand-edited snapshot fails with a clear line.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import EventSet
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.core.sources import line_of
from pytest_agentsim.core.sources import load_model
from pytest_agentsim.packs.loading import validate_check


def load_events(path: Path, *, packs: Mapping[str, PolicyPack], registry: RuleRegistry) -> EventSet:
    """Load a snapshot and check every reference in it against the loaded packs."""
    path = Path(path)
    event_set, raw = load_model(
        path, EventSet, what="events file", kind="event", collection="events"
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
            if expectation.policy not in event.policies:
                raise ConfigError(
                    f"{where}:{line_of(raw, (*exp_loc, 'policy'))}: {prefix}expected[{number}] "
                    f"is attributed to {expectation.policy!r}, which is not one of the event's "
                    f"policies ({', '.join(event.policies)})"
                )
            validate_check(path, raw, expectation.check, (*exp_loc, "check"), prefix, registry)
    event_set._path = str(path)
    return event_set


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
    """The database an event starts from: the pack's seed with the event's overrides."""
    return deep_merge(pack.seed_db, event.db)
