"""The packs and events of a run: loaded once, validated, looked up by every test.

It needs no running pytest: the pytest glue asks it which events a test's marks select,
which pack an event belongs to, and whether an event's checks name tools the agent lacks;
a script or a unit test builds one from file paths alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_agentsim.core.checks import RuleRegistry
from pytest_agentsim.core.checks import tools_named
from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.models import Event
from pytest_agentsim.core.models import PolicyPack
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.generation.graph import PolicyGraph
from pytest_agentsim.packs.events import load_events
from pytest_agentsim.packs.loading import load_pack
from pytest_agentsim.packs.loading import pack_taxonomy
from pytest_agentsim.simulation.tools import Tool
from pytest_agentsim.simulation.tools import args_problem


def load_packs(paths: Iterable[Path], registry: RuleRegistry) -> dict[str, PolicyPack]:
    """Packs by domain; two packs of one domain are a configuration error."""
    packs: dict[str, PolicyPack] = {}
    for path in paths:
        pack = load_pack(path, registry=registry)
        if pack.domain in packs:
            raise ConfigError(
                f"{display_path(path)}: domain {pack.domain!r} is also the domain of "
                f"{display_path(packs[pack.domain].path or '')}"
            )
        packs[pack.domain] = pack
    return packs


def load_event_files(
    paths: Iterable[Path], packs: dict[str, PolicyPack], registry: RuleRegistry
) -> list[Event]:
    """Every event of the files, validated against its pack; an id twice in a domain is
    a configuration error naming both places.

    No event at all is a configuration error too: every test over events would be
    skipped and the run would pass without having judged anything.
    """
    events: list[Event] = []
    seen: dict[tuple[str, str], str] = {}
    paths = list(paths)
    for path in paths:
        if not path.exists():
            raise ConfigError(
                f"{display_path(path)}: events file not found; write it with "
                "`pytest --agentsim --agentsim-generate` (from the pack's templates)"
            )
        for event in load_events(path, packs=packs, registry=registry).events:
            key = (event.domain, event.id)
            if key in seen:
                raise ConfigError(
                    f"{display_path(path)}:{event.line}: event {event.id!r} is also in {seen[key]}"
                )
            seen[key] = display_path(path)
            events.append(event)
    if paths and not events:
        files = ", ".join(display_path(path) for path in paths)
        raise ConfigError(
            f"{files}: no events to run ('events' is empty); add events, or write them "
            "from the packs' templates with `pytest --agentsim --agentsim-generate`"
        )
    return events


@dataclass(frozen=True)
class _JudgedCheck:
    """A check judged on an event, with the words that place it for a message: ``owner``
    (the policy or expectation it belongs to) and ``where`` (the check itself)."""

    check: dict[str, Any]
    owner: str
    where: str


class Catalog:
    """The run's packs (by domain) and events, and the questions tests ask of them."""

    def __init__(self, packs: dict[str, PolicyPack], events: Sequence[Event]) -> None:
        self.packs = packs
        self.events = list(events)
        self._graphs: dict[str, PolicyGraph] = {}
        self._tool_problems: dict[tuple[str, str, frozenset[str]], str | None] = {}
        self._arg_problems: dict[tuple[str, str, frozenset[Tool]], str | None] = {}
        # One copy of each tool set, shared by the keys above: a test asks with a new set
        # of the same tools, and a copy per event would grow memory with the events.
        self._tool_sets: dict[frozenset[Any], frozenset[Any]] = {}

    def policy_graph(self, domain: str) -> PolicyGraph:
        """The pack's policy graph (declared and derived edges), built once per domain."""
        if domain not in self._graphs:
            self._graphs[domain] = PolicyGraph.from_pack(self.packs[domain])
        return self._graphs[domain]

    @property
    def policy_ids(self) -> set[str]:
        return {pid for pack in self.packs.values() for pid in pack.policy_ids}

    @property
    def risk_names(self) -> set[str]:
        """Every level-2 and level-1 risk category of the packs' taxonomies."""
        return {
            name
            for pack in self.packs.values()
            for name in (*pack_taxonomy(pack).names, *pack_taxonomy(pack).parent.values())
        }

    def risks_of(self, event: Event) -> set[str]:
        """The level-2 and level-1 risk categories of the policies an event exercises."""
        pack = self.packs[event.domain]
        taxonomy = pack_taxonomy(pack)
        level2 = {pack.policy(policy_id).risk_category for policy_id in event.policies}
        return level2 | {taxonomy.level1(name) for name in level2}

    def risks_of_policy(self, domain: str, policy_id: str) -> set[str]:
        """The level-2 and level-1 risk categories of one policy of a pack."""
        pack = self.packs[domain]
        level2 = pack.policy(policy_id).risk_category
        return {level2, pack_taxonomy(pack).level1(level2)}

    def with_policies(self, events: Sequence[Event], wanted: set[str]) -> list[Event]:
        return [event for event in events if wanted & set(event.policies)]

    def with_risks(self, events: Sequence[Event], wanted: set[str]) -> list[Event]:
        return [event for event in events if wanted & self.risks_of(event)]

    def unknown_tool(self, pack: PolicyPack, event: Event, tools: frozenset[str]) -> str | None:
        """Why the event's checks cannot be judged with these tools, if a check names a
        tool that ``agentsim_tools`` lacks (a typo would make it pass every event).

        Every policy of the pack is judged on every event, so all their checks count,
        besides the event's own expectations. Asked only when there are tools: an agent
        that only talks has its tool checks not applicable, honestly.
        """
        key = (pack.domain, event.id, self._tool_sets.setdefault(tools, tools))
        if key not in self._tool_problems:
            missing = next(
                (
                    (tool, check.owner)
                    for check in self._checks(pack, event)
                    for tool in sorted(tools_named(check.check))
                    if tool not in tools
                ),
                None,
            )
            self._tool_problems[key] = (
                None
                if missing is None
                else f"{missing[1]} names tool {missing[0]!r}, which agentsim_tools does not "
                f"provide (tools: {', '.join(sorted(tools)) or 'none'})"
            )
        return self._tool_problems[key]

    def tool_problem(self, pack: PolicyPack, event: Event, tools: Mapping[str, Tool]) -> str | None:
        """Why the event's checks cannot be judged with these tools: a check names a tool
        ``agentsim_tools`` lacks (:meth:`unknown_tool`), or ``args`` a tool call can never
        have (an argument the tool does not take, or a value its type never takes, such as
        ``refund: null`` for a ``bool``). Either would silently decide the check: a
        ``must_not_call`` always compliant, a ``must_call`` always violated.

        The tools are known only when a test runs (``agentsim_tools`` is a fixture), so
        this is asked per test, like :meth:`unknown_tool`, and names the check's line.
        """
        problem = self.unknown_tool(pack, event, frozenset(tools))
        if problem is not None:
            return problem
        values = frozenset(tools.values())
        key = (pack.domain, event.id, self._tool_sets.setdefault(values, values))
        if key not in self._arg_problems:
            self._arg_problems[key] = next(
                (
                    f"{check.where}: {why}"
                    for check in self._checks(pack, event)
                    if (why := args_problem(check.check, tools)) is not None
                ),
                None,
            )
        return self._arg_problems[key]

    @staticmethod
    def _checks(pack: PolicyPack, event: Event) -> list[_JudgedCheck]:
        """Every check judged on ``event``: its pack's (all policies are judged on every
        event) and its own expectations."""
        pack_file = display_path(pack.path or pack.domain)
        events_file = display_path(event.path) if event.path else None
        checks = [
            _JudgedCheck(
                check,
                owner=f"{pack_file}:{policy.check_line(number)}: policy {policy.id!r}: "
                f"checks[{number}]",
                where=f"{pack_file}:{policy.check_line(number)}: policy {policy.id!r}: "
                f"checks[{number}]",
            )
            for policy in pack.policies
            for number, check in enumerate(policy.checks)
        ]
        for number, expectation in enumerate(event.expected):
            location = f"{events_file}:{expectation.line or event.line}: " if events_file else ""
            checks.append(
                _JudgedCheck(
                    expectation.check,
                    owner=f"{location}event {event.id!r}: an expected check of "
                    f"{expectation.policy!r}",
                    where=f"{location}event {event.id!r}: expected[{number}].check",
                )
            )
        return checks

    def check_gate_names(self, per_risk: Iterable[str], per_policy: Iterable[str]) -> None:
        """A per-risk or per-policy gate naming nothing the packs know is a usage error."""
        for names, known, option in (
            (per_risk, {n for p in self.packs.values() for n in pack_taxonomy(p).names}, "risk"),
            (per_policy, self.policy_ids, "policy"),
        ):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ConfigError(
                    f"agentsim_max_violation_rate_per_{option}: unknown {unknown} "
                    f"(expected one of: {', '.join(sorted(known))})"
                )

    def check_baseline(self, baseline: Mapping[str, Any] | None, name: str) -> None:
        """A baseline sharing no policy with the packs is a usage error: the gate would
        compare nothing and pass whatever the run did (a file from another product, or
        from before every policy was renamed)."""
        if baseline is None:
            return
        names = set(baseline.get("policies", {}))
        if not names & self.policy_ids:
            raise ConfigError(
                f"{name}: the baseline has none of the packs' policies (it has: "
                f"{', '.join(sorted(names))}; the packs have: "
                f"{', '.join(sorted(self.policy_ids))})"
            )
