"""The vocabulary every module of pytest-agentsim speaks.

Packs, events, conversations and verdicts are pydantic models so that each stage of the
pipeline (pack loading, event generation, simulation, judging, reporting) can be built,
tested and serialized on its own, and so that anything crossing a process boundary
(xdist workers, JSON results, snapshots) has one well-defined JSON form.
Messages follow the OpenAI chat format, the lingua franca of agent frameworks.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import re
from typing import Annotated
from typing import Any
from typing import ClassVar
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import PrivateAttr
from pydantic import field_serializer
from pydantic import field_validator
from pydantic import model_validator

from pytest_agentsim.core.dbstate import applied
from pytest_agentsim.core.dbstate import pretty_report
from pytest_agentsim.core.dbstate import state_report
from pytest_agentsim.core.dbstate import touched


class StrictModel(BaseModel):
    """Base for models read from user files: unknown keys are errors, not ignored."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- policies


class Severity(str, enum.Enum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class DialogueAct(StrictModel):
    """One act on the simulated user's agenda (Schatzmann et al. 2007).

    ``inform`` gives the value of ``slot`` from the user's facts, ``request`` asks the agent
    for something the goal wants, ``confirm``/``deny`` answer a confirmation question,
    ``say`` utters ``text`` verbatim and ``bye`` ends the conversation.
    """

    act: Literal["say", "inform", "request", "confirm", "deny", "bye"]
    slot: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _has_what_it_says(self) -> DialogueAct:
        """An act that would make the user say nothing, or "I don't know my ." is refused."""
        if self.act == "inform" and not self.slot:
            raise ValueError("an inform act needs the slot of the fact it gives")
        if self.act == "say" and not self.text:
            raise ValueError("a say act needs the text to say")
        if self.act == "request" and not (self.slot or self.text):
            raise ValueError("a request act needs a slot of the goal's requests or a text")
        return self


class GoalRequest(StrictModel):
    """Something the user wants done or told; met when an agent message matches ``done_when``."""

    slot: str = Field(min_length=1)
    text: str = Field(min_length=1, description="How the user asks for it")
    done_when: str = Field(
        min_length=1, description="Regex over the agent's replies that shows it was met"
    )

    @field_validator("done_when")
    @classmethod
    def _a_regex(cls, value: str) -> str:
        """Compiled at load: the offline user searches it in every agent reply, where an
        invalid one would crash the conversation instead of naming the line."""
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class EntitySpec(StrictModel):
    """A named thing an event is about, drawn from a table of the seed database."""

    table: str = Field(min_length=1, description="Table of the seed DB (a mapping id -> record)")
    where: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields the record must have; values may be templates like '{user}'",
    )


class Variant(StrictModel):
    """One way a policy can come up in a conversation, as a template for part of an event.

    Strings may hold placeholders: ``{entity}`` (the chosen record's id), ``{entity.field}``
    (a field of that record in the event's starting database) and ``{name}`` for a value
    drawn from ``choose``. ``{{`` and ``}}`` are literal braces.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    task: str | None = Field(
        default=None,
        description="What the user came to do (e.g. 'cancel'); an event has at most one task",
    )
    text: str = Field(default="", description="The scenario in words")
    persona: str | None = None
    where: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Extra conditions on entities: entity -> field -> value"
    )
    choose: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description="Named values drawn (seeded) from a list"
    )
    db: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the starting database"
    )
    facts: dict[str, Any] = Field(default_factory=dict)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    opening: str | None = Field(default=None, description="The user's first words")
    requests: list[GoalRequest] = Field(default_factory=list)
    confirm: bool | None = Field(
        default=None, description="Whether the user agrees to a confirmation question"
    )
    agenda: list[DialogueAct] = Field(default_factory=list)
    expected: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Rule checks in events of this variant, charged to this policy or to the "
        "one a check names with policy:",
    )


class PolicyScenario(StrictModel):
    """What offline event generation knows of a policy."""

    entities: list[str] = Field(
        default_factory=list, description="Entities the policy is about (also used for edges)"
    )
    variants: list[Variant] = Field(default_factory=list)


#: Sane maxima of a pack's generation sizes: far above any useful snapshot (whose file
#: must stay loadable), low enough that a typo like ``count: 1e20`` is an error at load
#: instead of a generation that never ends.
MAX_EVENTS = 10_000
MAX_COVERAGE_K = 100
MAX_ATTEMPTS = 100
MAX_MODEL_ATTEMPTS = 10  # each one a model call
MAX_EVENT_COMPLEXITY = 1_000


class GenerationSpec(StrictModel):
    """How many events to generate for a pack, and from what material (pack ``generation``)."""

    count: int = Field(
        default=20, ge=1, le=MAX_EVENTS, description="Events in the snapshot (at least)"
    )
    complexity: tuple[int, int] = Field(
        default=(4, 12), description="Range of an event's summed policy complexity"
    )
    coverage_k: int = Field(
        default=1, ge=1, le=MAX_COVERAGE_K, description="Events per policy, at least"
    )
    edge_threshold: float = Field(
        default=5.0, ge=0, le=10, description="Edges this heavy are exercised at least once"
    )
    attempts: int = Field(
        default=12, ge=1, le=MAX_ATTEMPTS, description="Tries per sample before reporting it"
    )
    model_attempts: int = Field(
        default=3,
        ge=1,
        le=MAX_MODEL_ATTEMPTS,
        description="Tries per sample when a model fills events (each one a call)",
    )

    @field_validator("complexity")
    @classmethod
    def _a_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        """[low, high] as the policy graph's sampling needs it, checked at load, not when
        generating (where a bad range used to surface as a bare ValueError)."""
        low, high = value
        if not 1 <= low <= high <= MAX_EVENT_COMPLEXITY:
            raise ValueError(
                f"expected [low, high] with 1 <= low <= high <= {MAX_EVENT_COMPLEXITY}"
            )
        return value

    entities: dict[str, EntitySpec] = Field(default_factory=dict)
    personas: list[str] = Field(default_factory=list)


class Policy(StrictModel):
    """One business rule the agent must follow."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Stable slug, used in test ids")
    description: str = Field(min_length=1)
    category: str = Field(min_length=1, description="The pack's own grouping, e.g. 'refunds'")
    risk_category: str = Field(description="Level-2 risk category of the pack's taxonomy")
    severity: Severity
    complexity: int = Field(ge=1, le=10, description="How hard the policy is to follow")
    checks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Rule checks that apply to every event; validated by the rule registry",
    )
    scenario: PolicyScenario = Field(
        default_factory=lambda: PolicyScenario(),
        description="Material for offline event generation (see pytest_agentsim.generation)",
    )
    _line: int | None = PrivateAttr(default=None)
    _check_lines: list[int | None] = PrivateAttr(default_factory=list)

    @property
    def line(self) -> int | None:
        """Line of the policy in its pack file, for error messages and annotations."""
        return self._line

    def check_line(self, index: int) -> int | None:
        """Line of ``checks[index]`` in the pack file (the policy's line if unknown)."""
        lines = self._check_lines
        return (lines[index] if index < len(lines) else None) or self._line


class PolicyEdge(StrictModel):
    """A declared co-occurrence: how likely two policies come up in one conversation."""

    between: tuple[str, str]
    weight: float = Field(ge=0, le=10)


class PolicyPack(StrictModel):
    """The policies of one domain, loaded from ``policies/<domain>.yaml``."""

    domain: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    database: str | None = Field(
        default=None,
        min_length=1,
        description="Seed database (JSON or YAML), relative to the pack file",
    )
    risk_taxonomy: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Extra level-1 -> level-2 risk categories added to the default taxonomy",
    )
    policies: list[Policy] = Field(min_length=1)
    edges: list[PolicyEdge] = Field(
        default_factory=list, description="Declared edges; other pairs are derived offline"
    )
    generation: GenerationSpec = Field(
        default_factory=lambda: GenerationSpec(),
        description="Material and sizes for offline event generation",
    )
    _path: str | None = PrivateAttr(default=None)
    _seed_db: dict[str, Any] = PrivateAttr(default_factory=dict)
    _content_hash: str = PrivateAttr(default="")
    _seed_digest: tuple[int, str] | None = PrivateAttr(default=None)

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def seed_db(self) -> dict[str, Any]:
        """The database every event of this domain starts from, before its overrides."""
        return self._seed_db

    @property
    def content_hash(self) -> str:
        """sha256 of the pack file and its seed database: what cached results depend on."""
        return self._content_hash

    @property
    def fingerprint(self) -> str:
        """sha256 of what the pack means (its validated content and seed database).

        Unlike :attr:`content_hash`, comments and formatting do not change it: generated
        snapshots and cached LLM edge scores depend on it, so they go stale only when
        something that could change them does. Fields left at their defaults are not part
        of it, so a plugin release adding a pack setting leaves every snapshot fresh.
        """
        content = self.model_dump(mode="json", exclude_defaults=True)
        seed = id(self._seed_db)
        if self._seed_digest is None or self._seed_digest[0] != seed:
            # Hashed once: a multi-MB seed takes a while to serialize.
            text = json.dumps(self._seed_db, sort_keys=True, separators=(",", ":"))
            self._seed_digest = (seed, text)
        canonical = (
            "["
            + json.dumps(content, sort_keys=True, separators=(",", ":"))
            + ","
            + self._seed_digest[1]
            + "]"
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def policy(self, policy_id: str) -> Policy:
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        raise KeyError(policy_id)

    @property
    def policy_ids(self) -> list[str]:
        return [policy.id for policy in self.policies]


# --------------------------------------------------------------------------- events


class UserGoal(StrictModel):
    constraints: dict[str, Any] = Field(
        default_factory=dict, description="What the user insists on (slot -> value)"
    )
    requests: list[GoalRequest] = Field(default_factory=list)
    confirm: bool = Field(
        default=True, description="Whether the user agrees when the agent asks to confirm"
    )


class UserProfile(StrictModel):
    """Everything the simulated user knows and wants; never the agent's policies."""

    persona: str = ""
    goal: UserGoal = Field(default_factory=UserGoal)
    facts: dict[str, Any] = Field(
        default_factory=dict, description="Private facts the user reveals when asked"
    )
    aliases: dict[str, list[str]] = Field(
        default_factory=dict, description="Extra words the agent may use for a fact's slot"
    )
    agenda: list[DialogueAct] = Field(
        default_factory=list, description="Acts in the order the user brings them up"
    )
    script: list[str] | None = Field(
        default=None, min_length=1, description="Fixed user turns; replaces the agenda when given"
    )


def _a_db_path(path: str) -> str:
    if not path or any(part == "" for part in path.split(".")):
        raise ValueError(f"path {path!r} has an empty part (expected table.record.field)")
    return path


class StateSpec(StrictModel):
    """What a database must end as: its changes from the start, or the whole of it.

    Shared by an event's :class:`ExpectedState` and the ``expected_state`` rule type.
    ``changes`` maps dotted paths (``reservations.R1.status``) to the value each must end
    with, ``removed`` lists paths that must end absent, and everything else must end as it
    started; ``db`` is instead the whole expected final database. ``outputs`` are words
    some agent message must contain (case-insensitive, commas ignored), as a benchmark's
    required outputs are.
    """

    changes: dict[str, Any] | None = Field(
        default=None, description="Dotted path -> the value it must end with; {} = no change"
    )
    removed: list[str] = Field(default_factory=list, description="Paths that must end absent")
    db: dict[str, Any] | None = Field(
        default=None, description="The whole expected final database (instead of changes)"
    )
    outputs: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="Words some agent message must contain"
    )

    @field_validator("changes")
    @classmethod
    def _paths(cls, changes: dict[str, Any] | None) -> dict[str, Any] | None:
        for path in changes or {}:
            _a_db_path(path)
        return changes

    @field_validator("removed")
    @classmethod
    def _removed_paths(cls, removed: list[str]) -> list[str]:
        for path in removed:
            _a_db_path(path)
        return removed

    @model_validator(mode="after")
    def _one_form(self) -> StateSpec:
        """Exactly one form: a state given both ways could contradict itself, and one
        given neither way would say nothing about the database."""
        if self.db is not None and (self.changes is not None or self.removed):
            raise ValueError("give either changes (and removed) or the whole db, not both")
        if self.db is None and self.changes is None and not self.removed:
            raise ValueError(
                "give changes (path -> value; {} for 'nothing changes') or the whole db"
            )
        return self


class ExpectedState(StateSpec):
    """An event's exact final-state oracle (``expected_state``), judged for one policy.

    The verdict is charged to ``policy``, a policy of the pack; when omitted, to the
    event's only listed policy (an event listing several must name one).
    """

    policy: str | None = Field(
        default=None, min_length=1, description="The policy the verdict is charged to"
    )


class Expectation(StrictModel):
    """An event-specific rule check attributed to a policy of the pack (usually one the
    event lists; another is judged as a policy the event was not built for)."""

    policy: str
    check: dict[str, Any]
    _line: int | None = PrivateAttr(default=None)

    @property
    def line(self) -> int | None:
        """Line of the expectation in its events file, for error messages."""
        return self._line


class Event(StrictModel):
    """The unit a test is parametrized over: a scenario, a user and a starting database."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    domain: str = ""
    policies: list[str] = Field(min_length=1)
    complexity: int | None = Field(default=None, ge=1, le=MAX_EVENT_COMPLEXITY)
    scenario: str = ""
    user: UserProfile
    db: dict[str, Any] = Field(
        default_factory=dict, description="Overrides deep-merged over the pack's seed database"
    )
    expected: list[Expectation] = Field(default_factory=list)
    expected_state: ExpectedState | None = Field(
        default=None, description="The exact final state (and outputs) the event must end with"
    )
    seed: int | None = None
    variants: dict[str, str] = Field(
        default_factory=dict, description="Generated events: the variant used for each policy"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="The user's own labels (free-form); kept in results and reports, never judged",
    )
    _line: int | None = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)
    # Loaded from a generated snapshot: only such events' users follow the run's seed.
    _generated: bool = PrivateAttr(default=False)

    @property
    def line(self) -> int | None:
        return self._line

    @property
    def path(self) -> str | None:
        """The events file the event was loaded from (None when built in code)."""
        return self._path

    @property
    def generated(self) -> bool:
        """Whether the event comes from a generated snapshot (not a hand-written file)."""
        return self._generated

    @property
    def test_id(self) -> str:
        return f"{self.id}-{'+'.join(self.policies)}"

    def __repr__(self) -> str:
        # Short, like EventResult's: pytest shows a failing test's arguments in its
        # traceback (``agentsim_event = ...``), cut by saferepr to 240 characters, and a
        # secret among the user's facts, cut in two there, is beyond any redaction.
        return f"<Event {self.id} ({', '.join(self.policies)})>"


class SkippedSample(StrictModel):
    """A sampled policy combination no valid event could be built for, and why."""

    policies: list[str]
    reason: str
    count: int = 1


class GenerationInfo(StrictModel):
    """Where a generated snapshot came from: what makes it stale when the pack changes."""

    pack: str = Field(description="The pack file, relative to the snapshot")
    fingerprint: str = Field(description="PolicyPack.fingerprint of the pack it was built from")
    events_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the events as written (pytest_agentsim.packs.events."
        "events_digest): a hand edit or a truncation of the file no longer matches it",
    )
    seed: int
    generator: str = Field(description="'templates', or 'llm:<model>'")
    covered: dict[str, int] = Field(
        default_factory=dict, description="Events per policy (every policy should be >= 1)"
    )
    uncovered: list[str] = Field(default_factory=list)
    skipped: list[SkippedSample] = Field(default_factory=list)

    @property
    def regenerate_command(self) -> str:
        """The command that writes this snapshot again, with the same generator."""
        return regenerate_command(self.seed, self.generator)


def regenerate_command(seed: object, generator: object) -> str:
    """The command that writes a snapshot again with the same seed and generator; either
    may be missing (None) when read from a header that did not validate."""
    command = "pytest --agentsim --agentsim-generate"
    if isinstance(seed, int) and not isinstance(seed, bool):
        command += f" --agentsim-seed {seed}"
    if isinstance(generator, str) and generator.startswith("llm:"):
        command += (
            f" --agentsim-generate-model={generator.removeprefix('llm:')}"
            " --agentsim-record-mode=new_episodes"
        )
    return command


class EventSet(StrictModel):
    """A snapshot file of events for one domain (``fixtures/events/<domain>.yaml``)."""

    version: Literal[1] = 1
    domain: str
    generated: GenerationInfo | None = Field(
        default=None, description="Set on generated snapshots; absent on hand-written ones"
    )
    events: list[Event]
    _path: str | None = PrivateAttr(default=None)

    @property
    def path(self) -> str | None:
        return self._path


# --------------------------------------------------------------------------- conversation


class FunctionCall(BaseModel):
    name: str
    arguments: str = Field(description="JSON-encoded arguments, as in the OpenAI format")


class ToolCallRequest(BaseModel):
    """A tool call as it appears inside an assistant message (OpenAI format)."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """A chat message in the OpenAI format."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCallRequest] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ToolCall(BaseModel):
    """One executed tool call: what was asked, and what came back or went wrong."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str | None = None
    turn: int = Field(description="Index of the assistant message that asked for the call")

    @property
    def ok(self) -> bool:
        return self.error is None

    def result_text(self) -> str:
        if self.error is not None:
            return f"Error: {self.error}"
        if isinstance(self.result, str):
            return self.result
        return json.dumps(self.result, sort_keys=True, default=str)


class StopReason(str, enum.Enum):
    """Why a conversation ended: what its transcript is evidence of depends on it.

    Most reasons are normal ends. Two kinds are not, and judging treats them apart
    (:class:`Evidence`): a conversation that *broke off* (:attr:`is_error`: the agent or
    the simulated user failed) is evidence only up to the break; one that *ran out*
    (:attr:`goal_unmet`: the turn limit, or a user with nothing new to say) was not cut,
    but may never have reached the situation its policies are about.
    """

    goal_met = "goal_met"
    refused = "refused"
    agenda_done = "agenda_done"
    script_done = "script_done"
    user_stopped = "user_stopped"
    max_turns = "max_turns"
    stalled = "stalled"
    agent_error = "agent_error"
    user_error = "user_error"

    @property
    def is_error(self) -> bool:
        """The conversation broke off: the agent or the simulated user failed."""
        return self in (StopReason.agent_error, StopReason.user_error)

    @property
    def goal_unmet(self) -> bool:
        """The conversation ran out before the user's goal was reached (turn limit, stall)."""
        return self in (StopReason.max_turns, StopReason.stalled)

    @property
    def ending(self) -> str:
        """How the conversation ended, in the words of a reason that depends on it."""
        if self is StopReason.max_turns:
            return "the conversation ended at max_turns with the goal unmet"
        if self is StopReason.stalled:
            return "the conversation stalled (the user had nothing new to say) with the goal unmet"
        return f"the conversation ended with {self.value}"


class _FinalDb:
    """``Conversation.final_db``: the database as the conversation left it.

    Not a field: once the conversation is compacted it is made again, on each read, from
    the starting database and the changes (sharing every untouched part). A value put in
    place by ``model_copy(update={"final_db": ...})`` is read as it is.
    """

    def __get__(self, conversation: Conversation | None, owner: type) -> Any:
        if conversation is None:
            return self
        held = conversation.kept_final_db
        if held is not None:
            return held
        return applied(conversation.initial_db, *conversation.db_changes())


class Conversation(BaseModel):
    """A finished simulation: the transcript, the tool calls and the database before/after."""

    event_id: str
    messages: list[Message] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    initial_db: dict[str, Any] = Field(default_factory=dict)
    #: Given as ``final_db``; read :attr:`final_db` (None once compacted).
    kept_final_db: dict[str, Any] | None = Field(
        default_factory=dict, alias="final_db", exclude=True, repr=False
    )
    stop_reason: StopReason
    error: str | None = Field(
        default=None,
        description="Why the agent or user failed, on one line: 'agent error: ValueError: ...', "
        "'LLM error: ...', 'agent timeout: ...'",
    )
    traceback: str | None = Field(
        default=None,
        description="The Python traceback behind error, for failure reports under -v or "
        "--tb=long (not in the JSON results)",
    )
    stop_detail: str | None = Field(
        default=None,
        description="Why the conversation stopped, when the stop reason alone does not say: "
        "for a stall, \"the simulated user could not follow turn N: '...'\"",
    )
    seed: int = 0
    duration_seconds: float = Field(default=0.0, description="Wall time of the simulation")
    # The changed parts of (initial_db, final_db); set apart when redacted (see db_changes).
    _db_changes: tuple[dict[str, Any], dict[str, Any]] | None = PrivateAttr(default=None)
    final_db: ClassVar[_FinalDb] = _FinalDb()

    def compact(self) -> None:
        """Keep the changes, not the final database: a result kept for the whole run then
        holds what the tools changed rather than copies of every table they touched, so
        memory stays flat in the number of events. :attr:`final_db` reads the same."""
        self.db_changes()
        self.kept_final_db = None

    def db_changes(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The parts of the starting and final databases that differ, pruned to the paths
        of the changes (:func:`~pytest_agentsim.core.dbstate.touched`); computed once."""
        if self._db_changes is None:
            self._db_changes = touched(self.initial_db, self.final_db)
        return self._db_changes

    def with_db_changes(self, changes: tuple[dict[str, Any], dict[str, Any]]) -> Conversation:
        """A copy whose database changes (and so final database) are ``changes``."""
        copy = self.model_copy()
        copy.__dict__.pop("state_diff", None)  # made from the changes, on first use
        copy._db_changes = changes
        copy.kept_final_db = None
        return copy

    @functools.cached_property
    def state_diff(self) -> dict[str, Any]:
        """The database change as deepdiff's JSON-safe report ({} when nothing changed).

        Made on first use only (the LLM judge shows it to its model), from the changed
        parts alone: deepdiff over a whole database per event cost more than the rest of
        an offline simulation.
        """
        return state_report(*self.db_changes())

    def db_diff_text(self) -> str:
        """The database change as lines a human reads ("" when nothing changed)."""
        return pretty_report(*self.db_changes())

    @property
    def ending(self) -> str:
        """How the conversation ended, in the words of a reason that depends on it: the
        stop reason's :attr:`~StopReason.ending`, with the stall's detail when it has one."""
        if self.stop_detail and self.stop_reason is StopReason.stalled:
            return f"the conversation stalled: {self.stop_detail}"
        return self.stop_reason.ending

    def assistant_texts(self) -> list[tuple[int, str]]:
        return [
            (index, message.content)
            for index, message in enumerate(self.messages)
            if message.role == "assistant" and message.content
        ]

    def calls_to(self, name: str) -> list[ToolCall]:
        return [call for call in self.tool_calls if call.name == name]

    def called(self, name: str) -> bool:
        return bool(self.calls_to(name))


# --------------------------------------------------------------------------- verdicts


class Outcome(str, enum.Enum):
    compliant = "compliant"
    violated = "violated"
    not_applicable = "not_applicable"
    inconclusive = "inconclusive"
    error = "error"


class FailureKind(str, enum.Enum):
    """Why a judged event failed: the one category every report files it under.

    :attr:`EventResult.kind` derives it from the verdicts, so the summary, the results
    file, the gates and Allure's categories agree on it without reading any text.
    """

    violation = "violation"
    agent_crash = "agent_crash"
    judge_error = "judge_error"
    inconclusive = "inconclusive"
    infrastructure = "infrastructure"

    @property
    def is_error(self) -> bool:
        """The event could not be judged (to the end): an error, not a finding about the agent.

        Errors are counted apart from violations everywhere: the gates and the baseline
        comparison leave such events out, and ``--agentsim-max-error-rate`` bounds them.
        """
        return self in (
            FailureKind.agent_crash,
            FailureKind.judge_error,
            FailureKind.infrastructure,
        )


class Evidence(str, enum.Enum):
    """What a verdict rests on, which decides what it is worth when a conversation stopped early.

    A conversation that broke off (an agent or user error) is evidence only up to the
    break, and one that ran out before the user's goal was reached (``max_turns``, a
    stalled user) may never have come to the situation a policy is about. Only a judge
    knows which of its verdicts survive that, so each verdict says (a rule check through
    :attr:`CheckResult.evidence <pytest_agentsim.core.checks.CheckResult.evidence>`).
    """

    #: Decided by something that happened, whatever would have followed: a forbidden call
    #: was made, a required call was made. It stands on any conversation.
    final = "final"
    #: Rests on something that happened (the policy came up), but more conversation could
    #: still change it: every call so far was confirmed. It stands on a conversation that
    #: ran out; on one that broke off it is an error.
    seen = "seen"
    #: Rests on something *not* happening or on the final state ("X was never called",
    #: "the final database lacks Y"): it needs the whole conversation. On one that broke
    #: off it is an error; on one that ran out a violation is inconclusive and compliance
    #: is vacuous. The default: a judge or check that does not say is taken to need it.
    whole = "whole"


# Worst first: the outcome a policy ends with when several checks disagree.
OUTCOME_PRECEDENCE = (
    Outcome.violated,
    Outcome.error,
    Outcome.inconclusive,
    Outcome.compliant,
    Outcome.not_applicable,
)


class Verdict(BaseModel):
    """What one judge (or one rule check) says about one policy in one conversation."""

    policy_id: str
    outcome: Outcome
    turn: int | None = Field(default=None, description="Message index that shows it")
    reason: str = ""
    judge: str = "rules"
    check: str | None = Field(default=None, description="The rule check, for rule verdicts")
    quote: str | None = Field(default=None, description="Words of the turn, for LLM verdicts")
    votes: dict[str, int] | None = Field(
        default=None, description="Outcome -> samples, when an LLM judge voted"
    )
    judge_error: bool = Field(
        default=False,
        description="An error of the judging itself (a judge or a rule check raised, or no "
        "judge covers the policy), not of the conversation",
    )
    evidence: Evidence = Field(
        default=Evidence.whole,
        description="What the verdict rests on: whether it stands on a conversation that "
        "broke off (final) or ran out (final, seen); see Evidence",
    )


class PolicyResult(BaseModel):
    """The combined outcome of one policy in one event, with the verdicts behind it."""

    policy_id: str
    risk_category: str
    risk_level1: str = ""
    severity: Severity
    outcome: Outcome
    listed: bool = Field(description="Whether the event was built to exercise this policy")
    verdicts: list[Verdict] = Field(default_factory=list)
    disagreement: str | None = Field(
        default=None, description="Set when judges reached different decisions, e.g. rules vs LLM"
    )

    @property
    def exercised(self) -> bool:
        """Whether a judge saw the policy come up: a violation, or compliance resting on
        something that happened (a required call made, every change confirmed), not only
        on nothing forbidden happening. A policy no event exercises is named in the summary.
        """
        return self.outcome is Outcome.violated or saw_compliance(self.verdicts)


def saw_compliance(verdicts: list[Verdict]) -> bool:
    """Whether a compliant verdict rests on something that happened (final or seen)."""
    return any(
        verdict.outcome is Outcome.compliant and verdict.evidence in (Evidence.final, Evidence.seen)
        for verdict in verdicts
    )


class LLMTally(BaseModel):
    """The model calls one event (or a whole run) made, and what they cost."""

    calls: int = Field(default=0, description="Calls that went to a model over HTTP")
    replayed_calls: int = Field(default=0, description="Calls served from a cassette (free)")
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: LLMTally) -> LLMTally:
        return LLMTally(
            calls=self.calls + other.calls,
            replayed_calls=self.replayed_calls + other.replayed_calls,
            failed_calls=self.failed_calls + other.failed_calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )


class EventResult(BaseModel):
    """Everything a report needs about one judged event: what a test receives."""

    event: Event
    conversation: Conversation
    policies: list[PolicyResult]
    trial: int = Field(default=0, description="Which repeat of the event (--agentsim-repeat)")
    llm: LLMTally = Field(
        default_factory=LLMTally, description="Model calls of the user, agent and judges"
    )

    @property
    def event_id(self) -> str:
        return self.event.id

    def outcome(self, policy_id: str) -> Outcome:
        """The combined outcome of one policy (not_applicable when it was not judged)."""
        for result in self.policies:
            if result.policy_id == policy_id:
                return result.outcome
        return Outcome.not_applicable

    def __repr__(self) -> str:
        outcomes = {r.policy_id: r.outcome.value for r in self.policies}
        return f"<EventResult {self.event.id} {self.conversation.stop_reason.value} {outcomes}>"

    @property
    def headline(self) -> str:
        """'agentsim event ev-1 (a, b): 2 compliant, 1 violated': the first line of a report."""
        counts = {outcome: len(self.with_outcome(outcome)) for outcome in Outcome}
        summary = ", ".join(
            f"{counts[o]} {o.value.replace('_', ' ')}" for o in Outcome if counts[o]
        )
        return f"agentsim event {self.event.id} ({', '.join(self.event.policies)}): {summary}"

    def assert_compliant(self) -> None:
        """Fail unless every policy is compliant or not applicable.

        In a test, the plugin gives the failure the full report (violations, turns,
        reasons, transcript, database changes); elsewhere the message is the headline and
        the exception's ``result`` holds the evidence.
        """
        __tracebackhide__ = True
        if self.violated or self.errors or self.with_outcome(Outcome.inconclusive):
            raise PolicyViolation(self.headline, self)

    def with_outcome(self, outcome: Outcome) -> list[PolicyResult]:
        return [result for result in self.policies if result.outcome is outcome]

    @property
    def kind(self) -> FailureKind | None:
        """Why the event failed (None when every policy was compliant or not applicable).

        The first that applies: the agent or simulated user crashed; the judging broke on
        a policy that ended in error; a verdict was inconclusive; a policy ended in error
        for another reason; a policy was violated. An event with both a violation and an
        error is an error: it could not be judged to the end, so its test errors instead
        of failing, and no gate may tolerate it as a mere violation.
        """
        if self.conversation.stop_reason.is_error:
            return FailureKind.agent_crash
        errors = self.errors
        if any(v.judge_error for r in errors for v in r.verdicts if v.outcome is Outcome.error):
            return FailureKind.judge_error
        if self.with_outcome(Outcome.inconclusive):
            return FailureKind.inconclusive
        if errors:
            return FailureKind.infrastructure
        if self.violated:
            return FailureKind.violation
        return None

    @property
    def violated(self) -> list[PolicyResult]:
        return self.with_outcome(Outcome.violated)

    @property
    def errors(self) -> list[PolicyResult]:
        return self.with_outcome(Outcome.error)


# --------------------------------------------------------------------------- records


class PolicyRecord(StrictModel):
    """One policy's outcome in one event, as the results file and the summary carry it.

    The verdicts behind it are reduced to what a report prints (the turn and reason of
    the first verdict with the policy's outcome, and each judge's own outcome), so that a
    record stays small enough to ride on every test report across xdist.
    """

    policy: str
    risk_category: str
    risk_level1: str
    severity: Severity
    outcome: Outcome
    listed: bool = Field(description="Whether the event was built to exercise this policy")
    turn: int | None = Field(description="Message index that shows the outcome")
    reason: str
    judges: dict[str, Outcome] = Field(
        description="Judge -> its outcome ('rules' combines every rule check)"
    )
    disagreement: str | None
    exercised: bool = Field(
        description="Whether a judge saw the policy come up (PolicyResult.exercised): a "
        "violation, or compliance resting on what happened rather than on nothing happening"
    )


class RecordedTranscript(StrictModel):
    """What a results file keeps of a conversation, so that a verdict seen in a report can
    become a calibration case (``agentsim label``): the event, the messages, and the parts
    of the database that changed (before and after, pruned to the changed paths; the
    starting database is the pack's seed with the event's overrides)."""

    event: Event
    messages: list[Message]
    db_before: dict[str, Any] = Field(
        default_factory=dict, description="The changed parts of the starting database"
    )
    db_after: dict[str, Any] = Field(
        default_factory=dict, description="The same parts in the final database"
    )

    @field_serializer("messages")
    def _openai_messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        """Written in the OpenAI chat format, as cassettes and agents exchange them."""
        return [message.to_openai() for message in messages]


class EventRecord(StrictModel):
    """The record of one judged event: what a test report carries to the controller and
    what ``--agentsim-json`` writes under ``events`` (users keep those files as baselines).

    Every field is required, so nothing writes a record that silently lacks one; the
    results file's event records have exactly these keys (a test checks it).
    """

    event: str
    domain: str
    metadata: dict[str, Any] = Field(description="The event's own labels (Event.metadata)")
    stop_reason: StopReason
    error: str | None = Field(
        description="Why the agent or user failed: the conversation's one line, no traceback"
    )
    messages: int = Field(description="Messages in the transcript")
    tool_calls: int
    duration_seconds: float = Field(description="Wall time of the simulation")
    trial: int = Field(description="Which repeat of the event (--agentsim-repeat)")
    llm: LLMTally
    transcript_sha256: str = Field(
        description="Identical transcripts across trials mean they were not independent samples"
    )
    policies: list[PolicyRecord]
    tests: list[str] = Field(description="The tests that asserted on this event's conversation")
    transcript: RecordedTranscript | None = Field(
        default=None,
        description="The event, messages and database changes (absent from older files)",
    )
    kind: FailureKind | None = Field(
        description="Why the event failed (EventResult.kind); null when it did not"
    )

    @property
    def key(self) -> tuple[str, str, int]:
        """(domain, event, trial): one conversation, however many tests assert on it."""
        return (self.domain, self.event, self.trial)

    @property
    def errored(self) -> bool:
        """The event could not be judged to the end: it failed for an error kind
        (FailureKind.is_error), or a policy ended in error. Such events are counted apart:
        gates and baselines leave them out, ``--agentsim-max-error-rate`` bounds them."""
        return (self.kind is not None and self.kind.is_error) or any(
            item.outcome is Outcome.error for item in self.policies
        )

    def with_outcome(self, *outcomes: Outcome) -> list[PolicyRecord]:
        return [item for item in self.policies if item.outcome in outcomes]


class PolicyViolation(AssertionError):
    """A test failed because the agent violated policies (what quality gates may tolerate)."""

    def __init__(self, message: str, result: EventResult | None = None) -> None:
        super().__init__(message)
        self.result = result


# Failure headers name the class by its module ("E   pytest_agentsim.PolicyViolation: ..."):
# the public name, which stays put when the layers move.
PolicyViolation.__module__ = "pytest_agentsim"
