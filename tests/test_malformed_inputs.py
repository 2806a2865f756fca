"""The malformed-input corpus: every kind of user input, broken in every way we know of.

Each case takes the small product repo of ``conftest.product`` (with scenario material
and a generation section added to its pack, so that a generated snapshot can be made of
it), breaks one input (the pack, the events file, the seed database, a generated
snapshot, a baseline, a cassette, the ini file or the command line) and names the one
line the user must get for it. A case is one entry of :data:`CASES`:

    case("id", "target", Mutation(...), "the exact message", run=True)

``run=True`` runs ``pytest --agentsim`` on the repo (in process) and asserts the exit
code (4, a usage error, unless ``ret`` says otherwise), the line (``ERROR: <message>`` on
stderr for a usage error; a line ending with the message otherwise) and that nothing
printed a traceback or an INTERNALERROR. Without it the case calls the loaders directly
(packs, events, baseline), which is much faster and checks the same message; every input
kind has at least one case that runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest

from pytest_agentsim import ConfigError
from pytest_agentsim import default_registry
from pytest_agentsim.catalog import load_event_files
from pytest_agentsim.catalog import load_packs
from pytest_agentsim.generation.snapshots import regenerate
from pytest_agentsim.reporting.baseline import load_baseline

# ----------------------------------------------------------------------------- the repo

PACK = "policies/notes.yaml"
EVENTS = "fixtures/events/notes.yaml"
DB = "fixtures/db/notes.json"
BASELINE = "baseline.json"
CASSETTE = "fixtures/cassettes/notes/ev-3.yaml"
INI = "pytest.ini"

#: Where each target lives; ``snapshot`` is the events file, replaced by a generated
#: snapshot of the pack before the case's mutation.
TARGETS = {
    "pack": PACK,
    "events": EVENTS,
    "snapshot": EVENTS,
    "db": DB,
    "baseline": BASELINE,
    "cassette": CASSETTE,
    "ini": INI,
}

#: Scenario material per policy, added to the product's pack.
MATERIAL = {
    "confirm-delete": """\
    scenario:
      entities: [note]
      variants:
        - name: delete
          task: delete
          opening: please delete note {note}
          facts: {note_id: "{note}"}
          agenda: [{act: inform, slot: note_id}]
""",
    "no-secrets": """\
    scenario:
      variants:
        - name: read-secret
          task: read
          opening: please read note s
""",
    "polite-greeting": """\
    scenario:
      variants:
        - name: hello
          opening: hi there
          requests:
            - {slot: greeting, text: "hi there", done_when: "(?i)hello"}
""",
}
GENERATION = """\
generation:
  count: 4
  complexity: [1, 6]
  entities:
    note: {table: notes}
"""

#: A baseline the product's run passes against: policy counts of a results file.
BASELINE_DOCUMENT = {
    "schema": "pytest-agentsim/results",
    "version": 1,
    "policies": {
        policy: {
            "compliant": 3,
            "errors": 0,
            "events": 3,
            "inconclusive": 0,
            "not_applicable": 0,
            "risk_category": risk,
            "violated": 0,
            "violation_rate": 0.0,
        }
        for policy, risk in (
            ("confirm-delete", "Operational Misuses"),
            ("no-secrets", "Privacy"),
            ("polite-greeting", "Deception"),
        )
    },
}
CASSETTE_TEXT = "interactions: []\nversion: 1\n"

#: What a run adds to the command line for a target (a baseline is only read when given).
RUN_ARGS = {
    "baseline": ["--agentsim-baseline=baseline.json"],
    "cassette": [
        "--agentsim-judge-model=openai/fake-judge",
        "--agentsim-record-mode=none",
        "-k",
        "ev-3",
    ],
}


def with_material(pack: str) -> str:
    """The product's pack with scenario material for every policy and a generation section."""
    for policy_id, material in MATERIAL.items():
        start = pack.index(f"  - id: {policy_id}")
        end = pack.find("\n  - id:", start + 1)
        end = len(pack) if end < 0 else end + 1
        pack = pack[:end].rstrip("\n") + "\n" + material + pack[end:]
    return pack + GENERATION


# ----------------------------------------------------------------------------- mutations


class Mutation:
    """How a case breaks its target: a function of the file's bytes."""

    def __call__(self, data: bytes) -> bytes:
        raise NotImplementedError

    def then(self, other: Mutation) -> Mutation:
        """This mutation, then ``other`` (two mistakes in one file)."""
        return Both(self, other)


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


@dataclass(frozen=True)
class Sub(Mutation):
    """Replace the first ``old`` (which must be there: a changed fixture fails the case)."""

    old: str | bytes
    new: str | bytes

    def __call__(self, data: bytes) -> bytes:
        old = _bytes(self.old)
        assert old in data, f"{self.old!r} is not in the file:\n{data.decode(errors='replace')}"
        return data.replace(old, _bytes(self.new), 1)


@dataclass(frozen=True)
class Both(Mutation):
    first: Mutation
    second: Mutation

    def __call__(self, data: bytes) -> bytes:
        return self.second(self.first(data))


@dataclass(frozen=True)
class Put(Mutation):
    """Replace the whole file."""

    content: str | bytes

    def __call__(self, data: bytes) -> bytes:
        return _bytes(self.content)


@dataclass(frozen=True)
class Add(Mutation):
    """Append text."""

    text: str

    def __call__(self, data: bytes) -> bytes:
        return data + self.text.encode("utf-8")


@dataclass(frozen=True)
class Cut(Mutation):
    """Keep only the first ``keep`` of the file (0-1): a truncated write."""

    keep: float

    def __call__(self, data: bytes) -> bytes:
        return data[: int(len(data) * self.keep)]


@dataclass(frozen=True)
class CutLines(Mutation):
    """Keep only the first ``keep`` of the file's lines (0-1): a write cut at a line."""

    keep: float

    def __call__(self, data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        return b"".join(lines[: int(len(lines) * self.keep)])


@dataclass(frozen=True)
class Pad(Mutation):
    """Grow the file to ``megabytes`` with a comment (YAML) or trailing spaces (JSON)."""

    megabytes: int

    def __call__(self, data: bytes) -> bytes:
        line = b"# " + b"x" * 1021 + b"\n"
        return data + line * (self.megabytes * 1024)


@dataclass(frozen=True)
class Keep(Mutation):
    """Leave the file as it is (a snapshot target that only needs to exist)."""

    def __call__(self, data: bytes) -> bytes:
        return data


@dataclass(frozen=True)
class Json(Mutation):
    """Change a JSON document with ``change`` (which edits it in place)."""

    change: Callable[[dict[str, Any]], object]

    def __call__(self, data: bytes) -> bytes:
        document = json.loads(data)
        self.change(document)
        return json.dumps(document, indent=2, sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class Args(Mutation):
    """Command line arguments (target ``cli``); the file is not touched."""

    args: tuple[str, ...]

    def __call__(self, data: bytes) -> bytes:
        return data


# ----------------------------------------------------------------------------- cases

#: YAML's "billion laughs": nine aliases of nine aliases ... of nine strings.
BOMB = "bomb:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
CHECK_TYPES = (
    "call_order, confirmation_before, db_contains, db_not_contains, db_unchanged, "
    "expected_state, must_call, must_not_call, text_matches, text_not_matches"
)
REGENERATE = (
    "regenerate with `pytest --agentsim --agentsim-generate --agentsim-seed 7` or remove "
    "the `generated:` header to keep it as hand-written"
)


@dataclass(frozen=True)
class Case:
    id: str
    edits: tuple[tuple[str, Mutation], ...]
    message: str
    run: bool = False
    ret: int = pytest.ExitCode.USAGE_ERROR
    args: tuple[str, ...] = field(default=())

    @property
    def targets(self) -> set[str]:
        return {target for target, _ in self.edits}


def case(
    id: str,
    target: str,
    mutation: Mutation,
    message: str,
    *,
    run: bool = False,
    ret: int = pytest.ExitCode.USAGE_ERROR,
    also: tuple[tuple[str, Mutation], ...] = (),
) -> Case:
    """One case: ``mutation`` of ``target`` (plus ``also``'s edits) must say ``message``."""
    edits = ((target, mutation), *also)
    args = tuple(a for _, m in edits if isinstance(m, Args) for a in m.args)
    return Case(id, edits, message, run=run or target in ("ini", "cli"), ret=ret, args=args)


# One line per case (the formatter would spread them over several).
# fmt: off
CASES: list[Case] = [
    # -- the policy pack: reading it
    case("pack-not-utf8", "pack", Sub("Greet the user.", b"Gr\xffeet the user."), 'policies/notes.yaml:34: policy pack is not UTF-8 text: byte 0xff cannot be decoded; save the file as UTF-8', run=True),
    case("pack-utf16", "pack", Put("domain: notes\n".encode("utf-16")), 'policies/notes.yaml:1: policy pack is not UTF-8 text: byte 0xff cannot be decoded (it looks like UTF-16); save the file as UTF-8'),
    case("pack-empty-file", "pack", Put(""), "policies/notes.yaml: the policy pack must be a mapping with 'domain' and 'policies', got an empty file"),
    case("pack-only-comments", "pack", Put("# policies to come\n"), "policies/notes.yaml: the policy pack must be a mapping with 'domain' and 'policies', got an empty file"),
    case("pack-a-list", "pack", Put("- id: confirm-delete\n"), "policies/notes.yaml: the policy pack must be a mapping with 'domain' and 'policies', got list"),
    case("pack-a-string", "pack", Put("notes\n"), "policies/notes.yaml: the policy pack must be a mapping with 'domain' and 'policies', got str"),
    case("pack-huge", "pack", Pad(50), 'policies/notes.yaml: policy pack is too large (50.0 MB; the limit is 16.0 MB)', run=True),
    case("pack-alias-bomb", "pack", Add(BOMB), 'policies/notes.yaml:59: invalid YAML in policy pack: aliases expand to more than 1,000,000 values (an alias bomb?)', run=True),
    case("pack-recursive-alias", "pack", Add("loop: &loop [*loop]\n"), 'policies/notes.yaml:52: invalid YAML in policy pack: an alias refers to a collection that contains it'),
    case("pack-deep-nesting", "pack", Add("deep: " + "[" * 150 + "]" * 150 + "\n"), 'policies/notes.yaml:52: invalid YAML in policy pack: collections are nested more than 100 levels deep'),
    case("pack-very-deep-nesting", "pack", Add("deep: " + "[" * 5000 + "]" * 5000 + "\n"), 'policies/notes.yaml: invalid YAML in policy pack: collections are nested more than 100 levels deep'),
    case("pack-duplicate-key", "pack", Sub("    severity: high\n", "    severity: high\n    severity: low\n"), "policies/notes.yaml:9: invalid YAML in policy pack: duplicate key 'severity' (first on line 8)"),
    case("pack-duplicate-top-key", "pack", Add("domain: other\n"), "policies/notes.yaml:52: invalid YAML in policy pack: duplicate key 'domain' (first on line 1)", run=True),
    case("pack-invalid-yaml", "pack", Sub("category: consent", "category: consent: yes"), 'policies/notes.yaml:6: invalid YAML in policy pack: mapping values are not allowed here'),
    case("pack-tab-indent", "pack", Sub("    category: consent", "\tcategory: consent"), "policies/notes.yaml:6: invalid YAML in policy pack: while scanning for the next token, found character '\\t' that cannot start any token"),
    case("pack-unhashable-key", "pack", Add("? [a, b]\n: 1\n"), 'policies/notes.yaml:52: invalid YAML in policy pack: a mapping key must be a string or a number, got a list'),
    case("pack-python-tag", "pack", Sub("severity: high", "severity: !!python/object/apply:os.system [ls]"), "policies/notes.yaml:8: invalid YAML in policy pack: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    case("pack-two-documents", "pack", Add("---\ndomain: other\n"), 'policies/notes.yaml:52: invalid YAML in policy pack: expected a single document in the stream, but found another document'),
    # -- the policy pack: its fields
    case("pack-unknown-top-key", "pack", Add("colour: red\n"), "policies/notes.yaml:52: unknown key 'colour' (expected one of: domain, description, database, risk_taxonomy, policies, edges, generation)"),
    case("pack-unknown-policy-key", "pack", Sub("    complexity: 3\n", "    complexity: 3\n    owner: me\n"), "policies/notes.yaml:10: policy 'confirm-delete': unknown key 'owner' (expected one of: id, description, category, risk_category, severity, complexity, checks, scenario)"),
    case("pack-missing-domain", "pack", Sub("domain: notes\n", ""), "policies/notes.yaml:1: missing required field 'domain'"),
    case("pack-domain-a-number", "pack", Sub("domain: notes", "domain: 42"), 'policies/notes.yaml:1: domain: input should be a valid string, got 42'),
    case("pack-domain-a-list", "pack", Sub("domain: notes", "domain: [notes]"), "policies/notes.yaml:1: domain: input should be a valid string, got ['notes']"),
    case("pack-policies-a-mapping", "pack", Put("domain: notes\npolicies: {confirm-delete: {}}\n"), "policies/notes.yaml:2: policies: input should be a valid list, got {'confirm-delete': {}}"),
    case("pack-policies-empty", "pack", Put("domain: notes\npolicies: []\n"), 'policies/notes.yaml:2: policies must not be empty'),
    case("pack-policy-a-string", "pack", Sub("  - id: polite-greeting", "  - polite-greeting\n  - id: polite-greeting"), "policies/notes.yaml:33: policy #3: input should be a mapping, got 'polite-greeting'"),
    case("pack-missing-description", "pack", Sub("    description: Greet the user.\n", ""), "policies/notes.yaml:33: policy 'polite-greeting': missing required field 'description'"),
    case("pack-empty-description", "pack", Sub("description: Greet the user.", "description: ''"), "policies/notes.yaml:34: policy 'polite-greeting': description must not be empty"),
    case("pack-bad-policy-id", "pack", Sub("id: polite-greeting", "id: Polite Greeting"), "policies/notes.yaml:33: policy 'Polite Greeting': id must match ^[a-z0-9][a-z0-9_.-]*$, got 'Polite Greeting'"),
    case("pack-duplicate-policy-id", "pack", Sub("id: polite-greeting", "id: no-secrets"), "policies/notes.yaml:33: policy 'no-secrets': duplicate policy id (first defined on line 20)", run=True),
    case("pack-misspelt-required-key", "pack", Sub("severity: high", "severty: high"), "policies/notes.yaml:8: policy 'confirm-delete': unknown key 'severty' (did you mean 'severity'?)"),
    case("pack-unknown-severity", "pack", Sub("severity: high", "severity: urgent"), "policies/notes.yaml:8: policy 'confirm-delete': severity must be one of low, medium, high, critical, got 'urgent'"),
    case("pack-complexity-a-word", "pack", Sub("complexity: 3", "complexity: three"), "policies/notes.yaml:9: policy 'confirm-delete': complexity: input should be a valid integer, unable to parse string as an integer, got 'three'"),
    case("pack-complexity-too-high", "pack", Sub("complexity: 3", "complexity: 11"), "policies/notes.yaml:9: policy 'confirm-delete': complexity must be <= 10, got 11"),
    case("pack-complexity-a-list", "pack", Sub("complexity: 3", "complexity: [3]"), "policies/notes.yaml:9: policy 'confirm-delete': complexity: input should be a valid integer, got [3]"),
    case("pack-unknown-risk-category", "pack", Sub("risk_category: Privacy", "risk_category: Privacy Risks"), "policies/notes.yaml:23: policy 'no-secrets': risk_category must be one of Security Risks, Operational Misuses, Violence & Extremism, Hate/Toxicity, Sexual Content, Child Harm, Self-harm, Political Usage, Economic Harm, Deception, Manipulation, Defamation, Fundamental Rights, Discrimination/Bias, Privacy, Criminal Activities, got 'Privacy Risks' (add it under risk_taxonomy to extend the taxonomy)"),
    case("pack-taxonomy-a-list", "pack", Add("risk_taxonomy: [Business Risks]\n"), "policies/notes.yaml:52: risk_taxonomy: input should be a mapping, got ['Business Risks']"),
    # -- the policy pack: checks
    case("pack-checks-a-mapping", "pack", Sub("    checks:\n      - {type: confirmation_before, tool: delete_note}", "    checks: {type: confirmation_before, tool: delete_note}"), "policies/notes.yaml:10: policy 'confirm-delete': checks: input should be a valid list, got {'type': 'confirmation_before', 'tool': 'delete_note'}"),
    case("pack-check-a-string", "pack", Sub("- {type: text_matches, pattern: '(?i)hello'}", "- text_matches"), "policies/notes.yaml:40: policy 'polite-greeting': checks[0]: input should be a mapping, got 'text_matches'"),
    case("pack-check-type-a-list", "pack", Sub("{type: confirmation_before,", "{type: [confirmation_before],"), "policies/notes.yaml:11: policy 'confirm-delete': checks[0]: unknown check type ['confirmation_before'] (expected one of: " + CHECK_TYPES + ')', run=True),
    case("pack-check-type-a-mapping", "pack", Sub("{type: confirmation_before,", "{type: {name: confirmation_before},"), "policies/notes.yaml:11: policy 'confirm-delete': checks[0]: unknown check type {'name': 'confirmation_before'} (expected one of: " + CHECK_TYPES + ')'),
    case("pack-check-type-unknown", "pack", Sub("type: text_matches", "type: text_match"), "policies/notes.yaml:40: policy 'polite-greeting': checks[0]: unknown check type 'text_match' (expected one of: " + CHECK_TYPES + ')'),
    case("pack-check-type-missing", "pack", Sub("{type: text_matches, pattern", "{pattern"), "policies/notes.yaml:40: policy 'polite-greeting': checks[0]: a check needs a 'type' (one of: " + CHECK_TYPES + ')'),
    case("pack-check-bad-regex", "pack", Sub("pattern: 'TOP-SECRET'", "pattern: '(TOP-SECRET'"), "policies/notes.yaml:27: policy 'no-secrets': checks[0].pattern: invalid regular expression: missing ), unterminated subpattern at position 0, got '(TOP-SECRET'"),
    case("pack-check-unknown-field", "pack", Sub("tool: delete_note}", "tool: delete_note, tol: x}"), "policies/notes.yaml:11: policy 'confirm-delete': unknown key 'checks[0].tol' (expected one of: type, when_called, tool, confirm, deny, ask)"),
    case("pack-check-missing-field", "pack", Sub("{type: confirmation_before, tool: delete_note}", "{type: confirmation_before}"), "policies/notes.yaml:11: policy 'confirm-delete': missing required field 'checks[0].tool'"),
    case("pack-check-field-wrong-type", "pack", Sub("tool: delete_note}", "tool: [delete_note]}"), "policies/notes.yaml:11: policy 'confirm-delete': checks[0].tool: input should be a valid string, got ['delete_note']"),
    case("pack-check-args-a-list", "pack", Sub("      - {type: confirmation_before, tool: delete_note}\n", "      - {type: confirmation_before, tool: delete_note}\n      - {type: must_not_call, tool: delete_note, args: [name]}\n"), "policies/notes.yaml:12: policy 'confirm-delete': checks[1].args: input should be a mapping, got ['name']"),
    case("pack-check-path-a-number", "pack", Sub("      - {type: confirmation_before, tool: delete_note}\n", "      - {type: confirmation_before, tool: delete_note}\n      - {type: db_contains, path: 5}\n"), "policies/notes.yaml:12: policy 'confirm-delete': checks[1].path: expected a string or a list, got 5"),
    case("pack-check-path-empty", "pack", Sub("      - {type: confirmation_before, tool: delete_note}\n", "      - {type: confirmation_before, tool: delete_note}\n      - {type: db_not_contains, path: ''}\n"), "policies/notes.yaml:12: policy 'confirm-delete': checks[1].path: expected table.record.field, with no empty part, got ''"),
    case("pack-check-path-unknown-table", "pack", Sub("      - {type: confirmation_before, tool: delete_note}\n", "      - {type: confirmation_before, tool: delete_note}\n      - {type: db_not_contains, path: memos.a}\n"), "policies/notes.yaml:12: policy 'confirm-delete': checks[1].path names table 'memos', which the database lacks (tables: notes)", run=True),
    case("pack-check-empty-pattern", "pack", Sub("pattern: 'TOP-SECRET'", "pattern: ''"), "policies/notes.yaml:27: policy 'no-secrets': checks[0].pattern: an empty pattern matches every message, got ''"),
    case("pack-check-empty-tool", "pack", Sub("tool: delete_note}", "tool: ''}"), "policies/notes.yaml:11: policy 'confirm-delete': checks[0].tool must not be empty"),
    case("pack-policy-an-empty-mapping", "pack", Sub("  - id: polite-greeting\n", "  - {}\n  - id: polite-greeting\n"), "policies/notes.yaml:33: policy #3: missing required fields 'id', 'description', 'category', 'risk_category', 'severity', 'complexity'"),
    case("pack-several-mistakes", "pack", Sub("severity: high", "severity: urgent").then(Sub("complexity: 2", "complexity: 20")), "policies/notes.yaml:8: policy 'confirm-delete': severity must be one of low, medium, high, critical, got 'urgent' (and 1 more error)"),
    case("pack-database-empty", "pack", Sub("database: ../fixtures/db/notes.json", "database: ''"), 'policies/notes.yaml:2: database must not be empty'),
    case("pack-choose-empty", "pack", Sub("          task: read\n", "          task: read\n          choose: {tone: []}\n"), "policies/notes.yaml:32: policy 'no-secrets': scenario.variants[0].choose.tone must not be empty"),
    case("pack-entity-table-without-records", "db", Put('{"notes": "none"}'), "policies/notes.yaml:51: generation.entities.note: table 'notes' of the seed database holds no records to draw 'note' from"),
    case("pack-entity-where-unknown-field", "pack", Sub("note: {table: notes}", "note: {table: notes, where: {colour: red}}"), "policies/notes.yaml:51: generation.entities.note.where: no record of notes has a field 'colour' (fields: text)", also=(("db", Put('{"notes": {"a": {"text": "buy milk"}, "s": {"text": "TOP-SECRET plans"}}}')),)),
    case("pack-variant-inform-unknown-slot", "pack", Sub("[{act: inform, slot: note_id}]", "[{act: inform, slot: note}]"), "policies/notes.yaml:19: policy 'confirm-delete': variant 'delete': agenda[0]: inform of slot 'note', which no variant's facts give (facts: note_id)"),
    case("pack-variant-db-unknown-table", "pack", Sub("          task: read\n", "          task: read\n          db: {memos: {a: 1}}\n"), "policies/notes.yaml:32: policy 'no-secrets': variant 'read-secret': db.memos: table 'memos' is not in the seed database (tables: notes)"),
    case("pack-variant-db-table-replaced", "pack", Sub("          task: read\n", "          task: read\n          db: {notes: [a]}\n"), "policies/notes.yaml:32: policy 'no-secrets': variant 'read-secret': db.notes: overrides of table 'notes' must map record ids to fields, got list"),
    case("pack-variant-expected-unknown-table", "pack", Sub("          task: read\n", "          task: read\n          expected: [{type: db_contains, path: memos.a}]\n"), "policies/notes.yaml:32: policy 'no-secrets': variant 'read-secret': expected[0].path names table 'memos', which the database lacks (tables: notes)"),
    # -- the policy pack: scenario material and generation
    case("pack-scenario-a-list", "pack", Sub("    scenario:\n      variants:\n        - name: read-secret\n          task: read\n          opening: please read note s\n", "    scenario: [read-secret]\n"), "policies/notes.yaml:28: policy 'no-secrets': scenario: input should be a mapping, got ['read-secret']"),
    case("pack-entities-a-string", "pack", Sub("entities: [note]", "entities: note"), "policies/notes.yaml:13: policy 'confirm-delete': scenario.entities: input should be a valid list, got 'note'"),
    case("pack-entity-unknown", "pack", Sub("entities: [note]", "entities: [memo]"), "policies/notes.yaml:13: policy 'confirm-delete': scenario.entities names 'memo', which is not an entity of generation.entities (note)"),
    case("pack-variant-unknown-key", "pack", Sub("          task: read\n", "          task: read\n          mood: calm\n"), "policies/notes.yaml:32: policy 'no-secrets': unknown key 'scenario.variants[0].mood' (expected one of: name, task, text, persona, where, choose, db, facts, aliases, opening, requests, confirm, agenda, expected)"),
    case("pack-variant-bad-name", "pack", Sub("name: read-secret", "name: Read Secret"), "policies/notes.yaml:30: policy 'no-secrets': scenario.variants[0].name must match ^[a-z0-9][a-z0-9_-]*$, got 'Read Secret'"),
    case("pack-variant-unknown-placeholder", "pack", Sub("please read note s", "please read note {secret}"), "policies/notes.yaml:32: policy 'no-secrets': variant 'read-secret': opening names {secret}, which is neither an entity of generation.entities (note) nor a value of the variant's choose"),
    case("pack-variant-inform-without-slot", "pack", Sub("[{act: inform, slot: note_id}]", "[{act: inform}]"), "policies/notes.yaml:19: policy 'confirm-delete': scenario.variants[0].agenda[0]: an inform act needs the slot of the fact it gives, got {'act': 'inform'}"),
    case("pack-variant-unknown-act", "pack", Sub("{act: inform, slot: note_id}", "{act: shout, slot: note_id}"), "policies/notes.yaml:19: policy 'confirm-delete': scenario.variants[0].agenda[0].act must be one of say, inform, request, confirm, deny, bye, got 'shout'"),
    case("pack-variant-bad-done-when", "pack", Sub('text: "hi there", done_when: "(?i)hello"}', 'text: "hi there", done_when: "(hello"}'), "policies/notes.yaml:46: policy 'polite-greeting': scenario.variants[0].requests[0].done_when: invalid regular expression: missing ), unterminated subpattern at position 0, got '(hello'"),
    case("pack-variant-expected-unknown-policy", "pack", Sub("          task: read\n", "          task: read\n          expected: [{policy: no-secret, type: text_matches, pattern: x}]\n"), "policies/notes.yaml:32: policy 'no-secrets': variant 'read-secret': expected[0].policy: unknown policy 'no-secret' (pack has: confirm-delete, no-secrets, polite-greeting)"),
    case("pack-variant-bad-expected", "pack", Sub("          opening: please read note s\n", "          opening: please read note s\n          expected: [{type: must_call}]\n"), "policies/notes.yaml:33: policy 'no-secrets': missing required field 'scenario.variants[0].expected[0].tool'"),
    case("pack-generation-complexity-reversed", "pack", Sub("complexity: [1, 6]", "complexity: [6, 1]"), 'policies/notes.yaml:49: generation.complexity: expected [low, high] with 1 <= low <= high <= 1000, got [6, 1]', run=True),
    case("pack-generation-complexity-one-number", "pack", Sub("complexity: [1, 6]", "complexity: [6]"), "policies/notes.yaml:49: missing required field 'generation.complexity[1]'"),
    case("pack-generation-complexity-zero", "pack", Sub("complexity: [1, 6]", "complexity: [0, 6]"), 'policies/notes.yaml:49: generation.complexity: expected [low, high] with 1 <= low <= high <= 1000, got [0, 6]'),
    case("pack-generation-count-absurd", "pack", Sub("count: 4", "count: 100000000000000000000"), 'policies/notes.yaml:48: generation.count must be <= 10000, got 100000000000000000000', run=True),
    case("pack-generation-count-1e20", "pack", Sub("count: 4", "count: 1e20"), "policies/notes.yaml:48: generation.count: input should be a valid integer, unable to parse string as an integer, got '1e20'"),
    case("pack-generation-count-zero", "pack", Sub("count: 4", "count: 0"), 'policies/notes.yaml:48: generation.count must be >= 1, got 0'),
    case("pack-generation-coverage-k-absurd", "pack", Add("  coverage_k: 100000000\n"), 'policies/notes.yaml:52: generation.coverage_k must be <= 100, got 100000000'),
    case("pack-generation-a-list", "pack", Sub("generation:\n  count: 4\n  complexity: [1, 6]\n  entities:\n    note: {table: notes}\n", "generation: [4]\n"), 'policies/notes.yaml:47: generation: input should be a mapping, got [4]'),
    case("pack-generation-unknown-table", "pack", Sub("note: {table: notes}", "note: {table: memos}"), "policies/notes.yaml:51: generation.entities.note: table 'memos' is not in the seed database (tables: notes)"),
    case("pack-edge-unknown-policy", "pack", Add("edges:\n  - {between: [confirm-delete, no-secret], weight: 3}\n"), "policies/notes.yaml:53: edges[0]: unknown policy 'no-secret' (pack has: confirm-delete, no-secrets, polite-greeting)"),
    case("pack-edge-to-itself", "pack", Add("edges:\n  - {between: [no-secrets, no-secrets], weight: 3}\n"), "policies/notes.yaml:53: edges[0]: an edge joins two different policies, got 'no-secrets' twice"),
    case("pack-edge-weight-too-high", "pack", Add("edges:\n  - {between: [no-secrets, confirm-delete], weight: 11}\n"), 'policies/notes.yaml:53: edges[0].weight must be <= 10.0, got 11'),
    case("pack-edge-three-policies", "pack", Add("edges:\n  - {between: [no-secrets, confirm-delete, polite-greeting], weight: 1}\n"), "policies/notes.yaml:53: edges[0].between: tuple should have at most 2 items after validation, not 3, got ['no-secrets', 'confirm-delete', 'polite-greeting']"),
    case("pack-database-missing", "pack", Sub("database: ../fixtures/db/notes.json", "database: ../fixtures/db/note.json"), 'fixtures/db/note.json: seed database of policies/notes.yaml not found'),
    case("pack-database-a-directory", "pack", Sub("database: ../fixtures/db/notes.json", "database: ../fixtures/db"), 'fixtures/db: seed database of policies/notes.yaml is a directory, expected a file'),
    case("pack-database-a-list", "pack", Sub("database: ../fixtures/db/notes.json", "database: [../fixtures/db/notes.json]"), "policies/notes.yaml:2: database: input should be a valid string, got ['../fixtures/db/notes.json']"),
    # -- the seed database
    case("db-not-utf8", "db", Sub("buy milk", b"buy m\xefilk"), 'fixtures/db/notes.json:1: seed database of policies/notes.yaml is not UTF-8 text: byte 0xef cannot be decoded; save the file as UTF-8', run=True),
    case("db-truncated", "db", Cut(0.5), "fixtures/db/notes.json:1: invalid YAML in seed database of policies/notes.yaml: while parsing a flow mapping, expected ',' or '}', but got '<stream end>'"),
    case("db-a-list", "db", Put("[1, 2]"), 'fixtures/db/notes.json: the seed database must be a mapping of tables, got list'),
    case("db-empty-file", "db", Put(""), 'fixtures/db/notes.json: the seed database must be a mapping of tables, got an empty file'),
    case("db-duplicate-key", "db", Put('{"notes": {"a": "x"},\n "notes": {}}'), "fixtures/db/notes.json:2: invalid YAML in seed database of policies/notes.yaml: duplicate key 'notes' (first on line 1)"),
    case("db-no-table-for-an-entity", "db", Put('{"memos": {"a": "x"}}'), "policies/notes.yaml:51: generation.entities.note: table 'notes' is not in the seed database (tables: memos)"),
    case("db-alias-bomb", "db", Put(BOMB), 'fixtures/db/notes.json:8: invalid YAML in seed database of policies/notes.yaml: aliases expand to more than 1,000,000 values (an alias bomb?)'),
    case("db-huge", "db", Pad(20), 'fixtures/db/notes.json: seed database of policies/notes.yaml is too large (20.0 MB; the limit is 16.0 MB)'),
    # -- the events file
    case("events-not-utf8", "events", Sub("hi there", b"hi th\xe9re"), 'fixtures/events/notes.yaml:20: events file is not UTF-8 text: byte 0xe9 cannot be decoded; save the file as UTF-8', run=True),
    case("events-empty-file", "events", Put(""), "fixtures/events/notes.yaml: the events file must be a mapping with 'domain' and 'events', got an empty file"),
    case("events-a-list", "events", Put("- id: ev-1\n"), "fixtures/events/notes.yaml: the events file must be a mapping with 'domain' and 'events', got list"),
    case("events-none", "events", Put("version: 1\ndomain: notes\nevents: []\n"), "fixtures/events/notes.yaml: no events to run ('events' is empty); add events, or write them from the packs' templates with `pytest --agentsim --agentsim-generate`", run=True),
    case("events-missing-events", "events", Put("version: 1\ndomain: notes\n"), "fixtures/events/notes.yaml:1: missing required field 'events'"),
    case("events-a-mapping-of-events", "events", Put("version: 1\ndomain: notes\nevents: {ev-1: {}}\n"), "fixtures/events/notes.yaml:3: events: input should be a valid list, got {'ev-1': {}}"),
    case("events-version-2", "events", Sub("version: 1", "version: 2"), 'fixtures/events/notes.yaml:1: version must be one of 1, got 2'),
    case("events-unknown-domain", "events", Sub("domain: notes", "domain: memos"), "fixtures/events/notes.yaml:2: domain 'memos' has no policy pack (loaded packs: notes)"),
    case("events-unknown-top-key", "events", Add("owner: me\n"), "fixtures/events/notes.yaml:23: unknown key 'owner' (expected one of: version, domain, generated, events)"),
    case("events-duplicate-top-key", "events", Add("domain: notes\n"), "fixtures/events/notes.yaml:23: invalid YAML in events file: duplicate key 'domain' (first on line 2)"),
    case("events-unknown-event-key", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    priority: high\n"), "fixtures/events/notes.yaml:13: event 'ev-2': unknown key 'priority' (expected one of: id, domain, policies, complexity, scenario, user, db, expected, expected_state, seed, variants, metadata)"),
    case("events-event-a-string", "events", Sub('  - id: ev-2\n    policies: [no-secrets]\n    user:\n      script: ["read note s"]\n', "  - ev-2\n"), "fixtures/events/notes.yaml:11: event #2: input should be a mapping, got 'ev-2'"),
    case("events-duplicate-event-id", "events", Sub("id: ev-2", "id: ev-1"), "fixtures/events/notes.yaml:11: event 'ev-1': duplicate event id (first defined on line 4)", run=True),
    case("events-bad-event-id", "events", Sub("id: ev-2", "id: ev 2"), "fixtures/events/notes.yaml:11: event 'ev 2': id must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$, got 'ev 2'"),
    case("events-event-id-a-number", "events", Sub("id: ev-2", "id: 2"), 'fixtures/events/notes.yaml:11: event #2: id: input should be a valid string, got 2'),
    case("events-unknown-policy", "events", Sub("policies: [no-secrets]", "policies: [no-secret]"), "fixtures/events/notes.yaml:12: event 'ev-2': unknown policy 'no-secret' (pack 'notes' has: confirm-delete, no-secrets, polite-greeting)"),
    case("events-no-policies", "events", Sub("policies: [no-secrets]", "policies: []"), "fixtures/events/notes.yaml:12: event 'ev-2': policies must not be empty"),
    case("events-policies-a-string", "events", Sub("policies: [no-secrets]", "policies: no-secrets"), "fixtures/events/notes.yaml:12: event 'ev-2': policies: input should be a valid list, got 'no-secrets'"),
    case("events-expectation-of-an-unknown-policy", "events", Sub("      - policy: confirm-delete", "      - policy: no-secret"), "fixtures/events/notes.yaml:9: event 'ev-1': expected[0] is attributed to 'no-secret', which is not a policy of pack 'notes' (confirm-delete, no-secrets, polite-greeting)"),
    case("events-expected-state-unknown-policy", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {policy: no-secret, changes: {}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state.policy: unknown policy 'no-secret' (pack 'notes' has: confirm-delete, no-secrets, polite-greeting)", run=True),
    case("events-expected-state-no-policy-of-several", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets, polite-greeting]\n    expected_state: {changes: {}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state: name the policy its verdict is charged to with policy: (the event lists several: no-secrets, polite-greeting)"),
    case("events-expected-state-both-forms", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {changes: {}, db: {notes: {}}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state: give either changes (and removed) or the whole db, not both, got {'changes': {}, 'db': {'notes': {}}}"),
    case("events-expected-state-no-form", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {outputs: [done]}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state: give changes (path -> value; {} for 'nothing changes') or the whole db, got {'outputs': ['done']}"),
    case("events-expected-state-empty-path-part", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {changes: {notes..a: x}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state.changes: path 'notes..a' has an empty part (expected table.record.field), got {'notes..a': 'x'}"),
    case("events-expected-state-unknown-table", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {changes: {memos.a: x}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state.changes: 'memos.a' names table 'memos', which the event's starting database lacks (tables: notes)"),
    case("events-expected-state-not-a-record", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {changes: {notes.a.title: x}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state: notes.a.title: notes.a holds 'buy milk', not a record"),
    case("events-expected-state-remove-nothing", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {changes: {}, removed: [notes.b]}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state: notes.b: nothing there to remove"),
    case("events-expected-state-db-lacks-a-table", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {db: {}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state.db lacks table 'notes': a whole expected database has every table of the starting one (or give changes instead)"),
    case("events-expected-state-db-unknown-table", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    expected_state: {db: {notes: {}, memos: {}}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': expected_state.db: table 'memos' is not in the event's starting database (tables: notes)"),
    case("events-db-unchanged-unknown-table", "events", Sub("check: {type: db_contains, path: notes.a}", "check: {type: db_unchanged, paths: [memo]}"), "fixtures/events/notes.yaml:10: event 'ev-1': expected[0].check.paths names table 'memo', which the database lacks (tables: notes)"),
    case("events-expectation-unknown-check", "events", Sub("check: {type: db_contains,", "check: {type: db_contain,"), "fixtures/events/notes.yaml:10: event 'ev-1': expected[0].check: unknown check type 'db_contain' (expected one of: " + CHECK_TYPES + ')'),
    case("events-expectation-check-type-a-list", "events", Sub("check: {type: db_contains,", "check: {type: [db_contains],"), "fixtures/events/notes.yaml:10: event 'ev-1': expected[0].check: unknown check type ['db_contains'] (expected one of: " + CHECK_TYPES + ')'),
    case("events-expectation-check-missing-field", "events", Sub("check: {type: db_contains, path: notes.a}", "check: {type: db_contains}"), "fixtures/events/notes.yaml:10: event 'ev-1': missing required field 'expected[0].check.path'"),
    case("events-expectation-a-string", "events", Sub("      - policy: confirm-delete\n        check: {type: db_contains, path: notes.a}\n", "      - confirm-delete\n"), "fixtures/events/notes.yaml:9: event 'ev-1': expected[0]: input should be a mapping, got 'confirm-delete'"),
    case("events-missing-user", "events", Sub('    user:\n      script: ["read note s"]\n', ""), "fixtures/events/notes.yaml:11: event 'ev-2': missing required field 'user'"),
    case("events-user-a-string", "events", Sub('    user:\n      script: ["read note s"]', "    user: read note s"), "fixtures/events/notes.yaml:13: event 'ev-2': user: input should be a mapping, got 'read note s'"),
    case("events-script-a-string", "events", Sub('script: ["read note s"]', "script: read note s"), "fixtures/events/notes.yaml:14: event 'ev-2': user.script: input should be a valid list, got 'read note s'"),
    case("events-unknown-user-key", "events", Sub('      script: ["read note s"]\n', '      script: ["read note s"]\n      mood: angry\n'), "fixtures/events/notes.yaml:15: event 'ev-2': unknown key 'user.mood' (expected one of: persona, goal, facts, aliases, agenda, script)"),
    case("events-goal-confirm-a-word", "events", Sub("      goal:\n", "      goal:\n        confirm: maybe\n"), "fixtures/events/notes.yaml:19: event 'ev-3': user.goal.confirm: input should be a valid boolean, unable to interpret input, got 'maybe'"),
    case("events-bad-done-when", "events", Sub('done_when: "(?i)hello"}', 'done_when: "(hello"}'), "fixtures/events/notes.yaml:20: event 'ev-3': user.goal.requests[0].done_when: invalid regular expression: missing ), unterminated subpattern at position 0, got '(hello'"),
    case("events-agenda-inform-without-fact", "events", Sub('        - {act: say, text: "hi there"}', '        - {act: say, text: "hi there"}\n        - {act: inform, slot: account_id}'), "fixtures/events/notes.yaml:23: event 'ev-3': user.agenda[1]: inform of slot 'account_id', which no fact gives (user.facts: none)", run=True),
    case("events-agenda-inform-without-slot", "events", Sub('{act: say, text: "hi there"}', "{act: inform}"), "fixtures/events/notes.yaml:22: event 'ev-3': user.agenda[0]: an inform act needs the slot of the fact it gives, got {'act': 'inform'}"),
    case("events-agenda-say-without-text", "events", Sub('{act: say, text: "hi there"}', "{act: say}"), "fixtures/events/notes.yaml:22: event 'ev-3': user.agenda[0]: a say act needs the text to say, got {'act': 'say'}"),
    case("events-agenda-unknown-act", "events", Sub('{act: say, text: "hi there"}', '{act: shout, text: "hi there"}'), "fixtures/events/notes.yaml:22: event 'ev-3': user.agenda[0].act must be one of say, inform, request, confirm, deny, bye, got 'shout'"),
    case("events-agenda-text-unknown-placeholder", "events", Sub("      agenda:\n", '      facts: {note_id: a}\n      agenda:\n        - {act: inform, slot: note_id, text: "It is {note}"}\n'), "fixtures/events/notes.yaml:23: event 'ev-3': user.agenda[0].text names {note}, which is neither {value} nor a fact (note_id)"),
    case("events-agenda-text-bad-format", "events", Sub("      agenda:\n", '      facts: {note_id: a}\n      agenda:\n        - {act: inform, slot: note_id, text: "It is {value"}\n'), "fixtures/events/notes.yaml:23: event 'ev-3': user.agenda[0].text: expected '}' before end of string in 'It is {value'"),
    case("events-fact-id-not-in-db", "events", Sub("      agenda:\n", "      facts: {note_id: zz}\n      agenda:\n"), "fixtures/events/notes.yaml:21: event 'ev-3': user.facts.note_id: 'zz' is not the id of a record of notes in the event's starting database (the seed with the event's db); to give an unknown id on purpose, name the fact without the '_id' ending", run=True),
    case("events-fact-ids-not-in-db", "events", Sub("      agenda:\n", "      facts: {note_id: [a, zz]}\n      agenda:\n"), "fixtures/events/notes.yaml:21: event 'ev-3': user.facts.note_id: 'zz' is not the id of a record of notes in the event's starting database (the seed with the event's db); to give an unknown id on purpose, name the fact without the '_id' ending"),
    case("events-db-a-list", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    db: [notes]\n"), "fixtures/events/notes.yaml:13: event 'ev-2': db: input should be a mapping, got ['notes']"),
    case("events-complexity-zero", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    complexity: 0\n"), "fixtures/events/notes.yaml:13: event 'ev-2': complexity must be >= 1, got 0"),
    case("events-user-says-nothing", "events", Sub('    user:\n      script: ["read note s"]', "    user: {persona: quiet}"), "fixtures/events/notes.yaml:13: event 'ev-2': user: the simulated user has nothing to say (give it a script, agenda acts or goal requests)", run=True),
    case("events-script-empty", "events", Sub('script: ["read note s"]', "script: []"), "fixtures/events/notes.yaml:14: event 'ev-2': user.script must not be empty"),
    case("events-request-empty-done-when", "events", Sub('done_when: "(?i)hello"}', 'done_when: ""}'), "fixtures/events/notes.yaml:20: event 'ev-3': user.goal.requests[0].done_when must not be empty"),
    case("events-db-unknown-table", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    db: {memos: {a: x}}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': db.memos: table 'memos' is not in the seed database (tables: notes)"),
    case("events-db-table-replaced", "events", Sub("    policies: [no-secrets]\n", "    policies: [no-secrets]\n    db: {notes: gone}\n"), "fixtures/events/notes.yaml:13: event 'ev-2': db.notes: overrides of table 'notes' must map record ids to fields, got str"),
    case("events-expectation-path-unknown-table", "events", Sub("path: notes.a}", "path: memos.a}"), "fixtures/events/notes.yaml:10: event 'ev-1': expected[0].check.path names table 'memos', which the database lacks (tables: notes)"),
    case("events-expectation-path-empty-part", "events", Sub("path: notes.a}", "path: notes..a}"), "fixtures/events/notes.yaml:10: event 'ev-1': expected[0].check.path: expected table.record.field, with no empty part, got 'notes..a'"),
    case("events-expectation-path-a-mapping", "events", Sub("path: notes.a}", "path: {notes: a}}"), "fixtures/events/notes.yaml:10: event 'ev-1': expected[0].check.path: expected a string or a list, got {'notes': 'a'}"),
    case("events-expectation-empty", "events", Sub("      - policy: confirm-delete\n        check: {type: db_contains, path: notes.a}\n", "      - {}\n"), "fixtures/events/notes.yaml:9: event 'ev-1': missing required fields 'expected[0].policy', 'expected[0].check'"),
    case("events-fact-id-empty", "events", Sub("      agenda:\n", "      facts: {note_id: ''}\n      agenda:\n"), "fixtures/events/notes.yaml:21: event 'ev-3': user.facts.note_id: '' is not the id of a record of notes in the event's starting database (the seed with the event's db); to give an unknown id on purpose, name the fact without the '_id' ending"),
    case("events-truncated", "events", Cut(0.6), "fixtures/events/notes.yaml:15: event #3: input should be a mapping, got 'i'"),
    case("events-alias-bomb", "events", Add(BOMB), 'fixtures/events/notes.yaml:30: invalid YAML in events file: aliases expand to more than 1,000,000 values (an alias bomb?)'),
    case("events-huge", "events", Pad(17), 'fixtures/events/notes.yaml: events file is too large (17.0 MB; the limit is 16.0 MB)'),
    # -- a generated snapshot
    case("snapshot-edited", "snapshot", Sub("please read note s", "please read note a"), 'fixtures/events/notes.yaml:8: generated snapshot edited or truncated (its events do not match generated.events_sha256): ' + REGENERATE, run=True),
    case("snapshot-truncated-at-a-line", "snapshot", CutLines(0.7), 'fixtures/events/notes.yaml:8: generated snapshot edited or truncated (its events do not match generated.events_sha256): ' + REGENERATE),
    case("snapshot-truncated-mid-line", "snapshot", Cut(0.55), 'fixtures/events/notes.yaml:8: generated snapshot edited or truncated (its events do not match generated.events_sha256): ' + REGENERATE),
    case("snapshot-hash-removed", "snapshot", Sub("  events_sha256:", "  old_sha256:"), 'fixtures/events/notes.yaml:5: generated snapshot without generated.events_sha256 (written by an older pytest-agentsim?): ' + REGENERATE),
    case("snapshot-not-utf8", "snapshot", Sub("please read note s", b"please r\xe9ad note s"), 'fixtures/events/notes.yaml:40: events file is not UTF-8 text: byte 0xe9 cannot be decoded; save the file as UTF-8'),
    case("snapshot-header-wrong-type", "snapshot", Sub("seed: 7", "seed: seven"), "fixtures/events/notes.yaml:9: generated.seed: input should be a valid integer, unable to parse string as an integer, got 'seven'"),
    case("snapshot-stale", "snapshot", Keep(), 'fixtures/events/notes.yaml:7: stale snapshot: policies/notes.yaml changed since these events were generated; regenerate with `pytest --agentsim --agentsim-generate --agentsim-seed 7` and review the diff', also=(("pack", Sub("complexity: 3", "complexity: 4")),), run=True),
    case("snapshot-pack-change-invalid", "snapshot", Keep(), 'policies/notes.yaml:49: generation.complexity: expected [low, high] with 1 <= low <= high <= 1000, got [6, 1]', also=(("pack", Sub("complexity: [1, 6]", "complexity: [6, 1]")),), run=True),
    case("snapshot-pack-change-invalid-act", "snapshot", Keep(), "policies/notes.yaml:19: policy 'confirm-delete': scenario.variants[0].agenda[0]: an inform act needs the slot of the fact it gives, got {'act': 'inform'}", also=(("pack", Sub("[{act: inform, slot: note_id}]", "[{act: inform}]")),)),
    # -- a baseline results file
    case("baseline-not-utf8", "baseline", Sub('"Privacy"', b'"Priv\xe4cy"'), 'baseline.json:19: baseline results file is not UTF-8 text: byte 0xe4 cannot be decoded; save the file as UTF-8', run=True),
    case("baseline-not-json", "baseline", Put("{not json"), 'baseline.json:1: baseline is not valid JSON: Expecting property name enclosed in double quotes'),
    case("baseline-empty-file", "baseline", Put(""), 'baseline.json: the baseline results file is empty (write one with --agentsim-json)'),
    case("baseline-truncated", "baseline", Cut(0.5), "baseline.json:18: baseline is not valid JSON: Expecting ':' delimiter"),
    case("baseline-other-schema", "baseline", Json(lambda d: d.update(schema="junit")), "baseline.json: not a pytest-agentsim results file (expected schema 'pytest-agentsim/results'; write one with --agentsim-json)"),
    case("baseline-version-2", "baseline", Json(lambda d: d.update(version=2)), 'baseline.json: results version 2 is not supported (expected 1)'),
    case("baseline-policies-a-list", "baseline", Json(lambda d: d.update(policies=list(d["policies"]))), "baseline.json:2: invalid baseline: policies: input should be a mapping, got ['confirm-delete', 'no-secrets', 'polite-greeting']", run=True),
    case("baseline-policies-empty", "baseline", Json(lambda d: d.update(policies={})), 'baseline.json:2: invalid baseline: policies must not be empty', run=True),
    case("baseline-policies-missing", "baseline", Json(lambda d: d.pop("policies")), "baseline.json:1: invalid baseline: missing required field 'policies'"),
    case("baseline-entry-without-events", "baseline", Json(lambda d: d["policies"]["no-secrets"].pop("events")), "baseline.json:13: invalid baseline: missing required field 'policies.no-secrets.events'"),
    case("baseline-entry-a-number", "baseline", Json(lambda d: d["policies"].update({"no-secrets": 3})), 'baseline.json:13: invalid baseline: policies.no-secrets: input should be a mapping, got 3'),
    case("baseline-violated-a-word", "baseline", Json(lambda d: d["policies"]["no-secrets"].update(violated="abc")), "baseline.json:20: invalid baseline: policies.no-secrets.violated: input should be a valid integer, got 'abc'"),
    case("baseline-violated-a-float", "baseline", Json(lambda d: d["policies"]["no-secrets"].update(violated=1.5)), 'baseline.json:20: invalid baseline: policies.no-secrets.violated: input should be a valid integer, got 1.5'),
    case("baseline-violated-negative", "baseline", Json(lambda d: d["policies"]["no-secrets"].update(violated=-1)), 'baseline.json:20: invalid baseline: policies.no-secrets.violated must be >= 0, got -1'),
    case("baseline-violated-more-than-events", "baseline", Json(lambda d: d["policies"]["no-secrets"].update(compliant=0, violated=4)), 'baseline.json:13: invalid baseline: policies.no-secrets: the outcome counts (compliant 0 + violated 4 + errors 0 + not_applicable 0 + inconclusive 0) add up to more than events (3)', run=True),
    case("baseline-samples-more-violated", "baseline", Json(lambda d: d["policies"]["no-secrets"].update(samples={"violated": 4, "judged": 3})), 'baseline.json:20: invalid baseline: policies.no-secrets.samples: violated (4) is more than judged (3)', run=True),
    case("baseline-samples-a-word", "baseline", Json(lambda d: d["policies"]["no-secrets"].update(samples={"violated": "x", "judged": 3})), "baseline.json:22: invalid baseline: policies.no-secrets.samples.violated: input should be a valid integer, got 'x'"),
    case("baseline-duplicate-key", "baseline", Sub('"schema": "pytest-agentsim/results",', '"schema": "pytest-agentsim/results",\n  "version": 1,'), "baseline.json:36: invalid JSON in baseline results file: duplicate key 'version' (first on line 35)"),
    case("baseline-of-other-policies", "baseline", Json(lambda d: d.update(policies={"refund-window": d["policies"]["no-secrets"]})), "baseline.json: the baseline has none of the packs' policies (it has: refund-window; the packs have: confirm-delete, no-secrets, polite-greeting)", run=True),
    case("baseline-missing", "cli", Args(("--agentsim-baseline=nothing.json",)), 'nothing.json: baseline results file not found'),
    # -- an LLM cassette (opened when the event's first model call is made: the event errors)
    case("cassette-not-utf8", "cassette", Sub("interactions: []", b"interactions: [caf\xe9]"), 'fixtures/cassettes/notes/ev-3.yaml:1: LLM cassette is not UTF-8 text: byte 0xe9 cannot be decoded; save the file as UTF-8', run=True, ret=1),
    case("cassette-invalid-yaml", "cassette", Put("interactions: [\nversion: 1\n"), "fixtures/cassettes/notes/ev-3.yaml:3: invalid YAML in LLM cassette: while parsing a flow sequence, expected ',' or ']', but got '<stream end>'", run=True, ret=1),
    case("cassette-alias-bomb", "cassette", Add(BOMB), 'fixtures/cassettes/notes/ev-3.yaml:10: invalid YAML in LLM cassette: aliases expand to more than 1,000,000 values (an alias bomb?)', run=True, ret=1),
    case("cassette-a-list", "cassette", Put("- version: 1\n"), "fixtures/cassettes/notes/ev-3.yaml: the LLM cassette must be a mapping with 'version' and 'interactions', got list", run=True, ret=1),
    case("cassette-version-2", "cassette", Sub("version: 1", "version: 2"), 'fixtures/cassettes/notes/ev-3.yaml:2: invalid LLM cassette: version must be one of 1, got 2', run=True, ret=1),
    # -- the ini file
    case("ini-misspelt-key", "ini", Add("agentsim_max_violaton_rate = 10%\n"), "pytest.ini:4: unknown ini key 'agentsim_max_violaton_rate' (did you mean 'agentsim_max_violation_rate'?)"),
    case("ini-misspelt-prefix", "ini", Add("agentsm_max_turns = 5\n"), "pytest.ini:4: unknown ini key 'agentsm_max_turns' (did you mean 'agentsim_max_turns'?)"),
    case("ini-unknown-agentsim-key", "ini", Add("agentsim_colour = red\n"), "pytest.ini:4: unknown ini key 'agentsim_colour' (not a pytest-agentsim setting; `pytest --help` lists them)"),
    case("ini-max-turns-a-word", "ini", Add("agentsim_max_turns = many\n"), "agentsim_max_turns in pytest.ini: expected an integer, got 'many'"),
    case("ini-repeat-absurd", "ini", Add("agentsim_repeat = 1000000000\n"), 'agentsim_repeat in pytest.ini: expected an integer <= 1000, got 1000000000'),
    case("ini-rate-above-100", "ini", Add("agentsim_max_violation_rate = 150%\n"), "agentsim_max_violation_rate in pytest.ini: expected a rate between 0 and 1 (or 0%-100%), got '150%'"),
    case("ini-unknown-choice", "ini", Add("agentsim_record_mode = sometimes\n"), "agentsim_record_mode in pytest.ini: expected one of none, once, new_episodes, all, got 'sometimes'"),
    case("ini-threshold-without-rate", "ini", Add("agentsim_max_violation_rate_per_policy = no-secrets\n"), "agentsim_max_violation_rate_per_policy in pytest.ini: expected 'name = rate', got 'no-secrets'"),
    case("ini-threshold-unknown-policy", "ini", Add("agentsim_max_violation_rate_per_policy = no-secret = 5%\n"), "agentsim_max_violation_rate_per_policy: unknown ['no-secret'] (expected one of: confirm-delete, no-secrets, polite-greeting)"),
    case("ini-pack-missing", "ini", Sub("agentsim_packs = policies/notes.yaml", "agentsim_packs = policies/note.yaml"), 'policies/note.yaml: policy pack not found'),
    case("ini-bad-price", "ini", Add("agentsim_prices = openai/x = cheap\n"), "agentsim_prices in pytest.ini: expected 'model = input, output' (USD per million tokens, numbers >= 0), got 'openai/x = cheap'"),
    case("ini-bad-secret-pattern", "ini", Add("agentsim_secret_patterns = (\n"), "agentsim_secret_patterns in pytest.ini: '(' is not a valid regex: missing ), unterminated subpattern at position 0"),
    # -- the command line
    case("cli-seed-a-word", "cli", Args(("--agentsim-seed", "x")), "--agentsim-seed: expected an integer, got 'x'"),
    case("cli-repeat-absurd", "cli", Args(("--agentsim-repeat", "5000")), '--agentsim-repeat: expected an integer <= 1000, got 5000'),
    case("cli-concurrency-zero", "cli", Args(("--agentsim-concurrency", "0")), '--agentsim-concurrency: expected an integer >= 1, got 0'),
    case("cli-max-cost-a-word", "cli", Args(("--agentsim-max-cost", "lots")), "--agentsim-max-cost: expected a budget in USD (a number >= 0), got 'lots'"),
    case("cli-pack-missing", "cli", Args(("--agentsim-pack", "nope.yaml")), 'nope.yaml: policy pack not found'),
    case("cli-rate-a-word", "cli", Args(("--agentsim-max-violation-rate", "some")), "--agentsim-max-violation-rate: expected a rate between 0 and 1 (or 0%-100%), got 'some'"),
    # -- checks against the agent's tools (known when a test runs: the tests error)
    case("tool-unknown", "pack", Sub("tool: delete_note}", "tool: delete_notes}"), "policies/notes.yaml:11: policy 'confirm-delete': checks[0] names tool 'delete_notes', which agentsim_tools does not provide (tools: delete_note, read_note)", run=True, ret=1),
    case("tool-args-unknown-argument", "pack", Sub("      - {type: confirmation_before, tool: delete_note}\n", "      - {type: confirmation_before, tool: delete_note}\n      - {type: must_not_call, tool: delete_note, args: {nam: s}}\n"), "policies/notes.yaml:12: policy 'confirm-delete': checks[1]: args names 'nam', which delete_note does not take (its arguments: name), so the check can never match", run=True, ret=1),
    case("tool-args-null", "pack", Sub("      - {type: confirmation_before, tool: delete_note}\n", "      - {type: confirmation_before, tool: delete_note}\n      - {type: must_not_call, tool: delete_note, args: {name: null}}\n"), "policies/notes.yaml:12: policy 'confirm-delete': checks[1]: args.name is null, which delete_note's argument 'name' (str) never is, so the check can never match", run=True, ret=1),
    case("tool-args-wrong-type", "events", Sub("check: {type: db_contains, path: notes.a}", "check: {type: must_call, tool: delete_note, args: {name: 5}}"), "fixtures/events/notes.yaml:9: event 'ev-1': expected[0].check: args.name is 5, which delete_note's argument 'name' (str) never is, so the check can never match", run=True, ret=1),
]
# fmt: on


# ----------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def snapshot_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A generated snapshot of the corpus pack (made once: every case writes this text)."""
    from conftest import DB as DB_TEXT
    from conftest import PACK as PACK_TEXT

    root = tmp_path_factory.mktemp("snapshot")
    for name, text in ((PACK, with_material(PACK_TEXT)), (DB, DB_TEXT)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    registry = default_registry()
    packs = load_packs([root / PACK], registry)
    regenerate(packs, {"notes": root / EVENTS}, registry=registry, seed=7)
    return (root / EVENTS).read_text(encoding="utf-8")


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    """Import litellm before an in-process run needs it (see test_plugin_llm's docstring)."""
    from pytest_agentsim.llm.gateway import load_litellm

    load_litellm()


def build(product: pytest.Pytester, case: Case, snapshot: str) -> Path:
    """The product repo with the case's edits applied."""
    root = product.path
    pack = root / PACK
    pack.write_text(with_material(pack.read_text(encoding="utf-8")), encoding="utf-8")
    if "snapshot" in case.targets:
        (root / EVENTS).write_text(snapshot, encoding="utf-8")
    if "baseline" in case.targets:
        (root / BASELINE).write_text(json.dumps(BASELINE_DOCUMENT, indent=2, sort_keys=True))
    if "cassette" in case.targets:
        (root / CASSETTE).parent.mkdir(parents=True, exist_ok=True)
        (root / CASSETTE).write_text(CASSETTE_TEXT)
    for target, mutation in case.edits:
        if target == "cli":
            continue
        path = root / TARGETS[target]
        path.write_bytes(mutation(path.read_bytes()))
    return root


def load(root: Path, case: Case) -> None:
    """What a run loads before any test, called directly."""
    registry = default_registry()
    packs = load_packs([root / PACK], registry)
    load_event_files([root / EVENTS], packs, registry)
    if "baseline" in case.targets:
        load_baseline(root / BASELINE)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_gives_one_clear_line(
    product: pytest.Pytester,
    snapshot_text: str,
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
) -> None:
    assert "\n" not in case.message, "a message is one line"
    root = build(product, case, snapshot_text)
    if not case.run:
        monkeypatch.chdir(root)
        with pytest.raises(ConfigError) as info:
            load(root, case)
        assert str(info.value) == case.message
        return
    extra = [arg for target in sorted(case.targets) for arg in RUN_ARGS.get(target, [])]
    result = product.runpytest_inprocess("--agentsim", "-p", "no:cacheprovider", *extra, *case.args)
    output = result.stdout.lines + result.stderr.lines
    assert "Traceback" not in "\n".join(output)
    assert "INTERNALERROR" not in "\n".join(output)
    assert result.ret == case.ret, "\n".join(output)
    if case.ret == pytest.ExitCode.USAGE_ERROR:
        assert f"ERROR: {case.message}" in result.stderr.lines, "\n".join(output)
    else:
        assert any(line.endswith(case.message) for line in result.stdout.lines), "\n".join(output)


def test_every_input_kind_has_a_case_that_runs() -> None:
    ran = {target for c in CASES if c.run for target in c.targets}
    assert ran >= {*TARGETS, "cli"}, sorted({*TARGETS, "cli"} - ran)
