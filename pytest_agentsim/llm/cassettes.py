"""Record and replay of LLM calls, so agent tests run offline, free and deterministic.

A cassette is a YAML file of interactions (request, response) keyed by a hash of the
normalized request, in the vocabulary of VCR.py and pytest-recording:

- ``none``: replay only; a request that was not recorded is a :class:`CassetteMiss`;
- ``once``: a cassette that existed when opened is replay-only, a new one records all;
- ``new_episodes``: replay what was recorded, record what was not;
- ``all``: call the model every time and record, replacing entries with the same key.

The file is meant to be committed and reviewed: keys are sorted, multi-line prompts are
block scalars (a changed prompt diffs line by line), and every string is redacted (API
keys, tokens, configured patterns) before it is written. The file is ``version: 1`` then
its ``interactions``, so each recorded call is appended to it at once, in one write (cut
back if it fails): an interrupted run loses nothing and never leaves half an entry, and
recording call n costs one entry, not a rewrite of n. The whole file is rewritten
(atomically: a temporary file renamed over it) only when it must change above its end: a
call recorded again (mode ``all``), a secret learnt after entries were written, or a file
of the older layout (``interactions`` then ``version``, which still loads).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import Literal

import yaml
from pydantic import Field
from pydantic import ValidationError

from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.models import StrictModel
from pytest_agentsim.core.sources import LineDict
from pytest_agentsim.core.sources import describe_error
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.core.sources import line_of
from pytest_agentsim.core.sources import load_document
from pytest_agentsim.core.sources import to_plain
from pytest_agentsim.llm.messages import CassetteMiss
from pytest_agentsim.llm.messages import LLMRequest
from pytest_agentsim.llm.messages import LLMResponse
from pytest_agentsim.llm.redaction import env_secret_values
from pytest_agentsim.llm.redaction import redact
from pytest_agentsim.llm.redaction import redact_data

RecordMode = Literal["none", "once", "new_episodes", "all"]
RECORD_MODES: tuple[RecordMode, ...] = ("none", "once", "new_episodes", "all")

_WHAT = "LLM cassette"
#: Cassettes grow with every recorded call (a pack's generation cassette holds all of its
#: calls), so they may be larger than the other user files; still not unbounded.
MAX_CASSETTE_BYTES = 64 * 1024 * 1024
# The parts of a request that decide the answer; purpose, api_base, keys and timeouts
# do not, so changing them keeps the recordings valid.
_KEYED = ("model", "messages", "tools", "response_format", "temperature", "max_tokens")


def _without_none(data: Any) -> Any:
    """Drop None-valued keys: ``{"content": None}`` and ``{}`` ask the same thing."""
    if isinstance(data, dict):
        return {key: _without_none(value) for key, value in data.items() if value is not None}
    if isinstance(data, list):
        return [_without_none(item) for item in data]
    return data


def request_key(request: LLMRequest) -> str:
    """sha256 (16 hex digits) of the canonical JSON of what the request asks."""
    payload = {name: _without_none(getattr(request, name)) for name in _KEYED}
    if request.sample is not None:  # only then: keys of unsampled requests stay as they were
        payload["sample"] = request.sample
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class RecordedRequest(StrictModel):
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    sample: int | None = None


class RecordedResponse(StrictModel):
    message: dict[str, Any]
    model: str
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class Interaction(StrictModel):
    key: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    purpose: str = "other"
    request: RecordedRequest
    response: RecordedResponse


class CassetteFile(StrictModel):
    version: Literal[1]
    interactions: list[Interaction] = Field(default_factory=list)


# libyaml's emitter when PyYAML has it: the same text 20-30x faster (it escapes characters
# outside the Basic Multilingual Plane, such as emoji, as "\U0001F600").
_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc]
    """Block scalars for multi-line strings, and no ``&id001`` anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted scalar by itself when a block one cannot hold the
    # text exactly (trailing spaces, control characters).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """Reviewable YAML: sorted keys, block style, no line folding."""
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,
    )
    # A document ending in a kept-newlines block scalar gets an end marker, which inside
    # a file of appended entries would end the document early.
    return text.removesuffix("...\n")


#: What a cassette file starts with; its interactions follow, one list item each.
HEADER = "version: 1\ninteractions:\n"


def cassette_text(document: Any) -> str:
    """A cassette's text as written: :data:`HEADER`, then each interaction as
    :func:`dump_yaml` writes a one-item list (what appending it adds to the file)."""
    interactions = document.get("interactions") or []
    if not interactions:
        return "version: 1\ninteractions: []\n"
    return HEADER + "".join(dump_yaml([item]) for item in interactions)


def _excerpt(request: LLMRequest, redact_text: Callable[[str], str], limit: int = 60) -> str:
    """The last message's words, redacted, on one line of at most ``limit`` characters.

    Redacted before it is shortened: a secret cut in two, or whose newline became a
    space, would no longer be found.
    """
    if not request.messages:
        return "(no messages)"
    last = request.messages[-1]
    content = last.get("content")
    if isinstance(content, list):  # content parts
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    text = " ".join(redact_text(str(content or "")).split())
    text = text or f"({last.get('role', '?')} message)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Cassette:
    """The recorded calls of one file, and the rule (``mode``) for calls it lacks."""

    def __init__(
        self,
        path: Path,
        mode: RecordMode,
        secrets: Sequence[str] = (),
        patterns: Sequence[str] = (),
    ) -> None:
        if mode not in RECORD_MODES:
            raise ConfigError(f"record mode must be one of {', '.join(RECORD_MODES)}, got {mode!r}")
        self.path = Path(path)
        self.mode: RecordMode = mode
        self._secrets = list(secrets)
        self._patterns = list(patterns)
        self._lock = threading.RLock()
        self.existed = self.path.exists()
        self._interactions: dict[str, Interaction] = self._load() if self.existed else {}
        self._chunks: dict[str, str] = {}
        self._chunks_redacted_with: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        # Whether new entries may be appended: the file is what this cassette last wrote.
        self._appendable = False

    # -- loading -------------------------------------------------------------------------

    def _load(self) -> dict[str, Interaction]:
        raw = load_document(self.path, what=_WHAT, max_bytes=MAX_CASSETTE_BYTES)
        where = display_path(self.path)
        if raw is None:  # an empty file: nothing recorded yet
            return {}
        if not isinstance(raw, LineDict):
            raise ConfigError(
                f"{where}: the {_WHAT} must be a mapping with 'version' and 'interactions', "
                f"got {type(to_plain(raw)).__name__}"
            )
        try:
            document = CassetteFile.model_validate(to_plain(raw))
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            loc = tuple(error["loc"])
            line = line_of(raw, loc)
            phrase = describe_error(error, field_loc=loc, model=CassetteFile, model_loc=loc)
            location = f"{where}:{line}" if line else where
            raise ConfigError(f"{location}: invalid {_WHAT}: {phrase}") from None
        interactions: dict[str, Interaction] = {}
        for index, interaction in enumerate(document.interactions):
            if interaction.key in interactions:
                line = line_of(raw, ("interactions", index))
                location = f"{where}:{line}" if line else where
                raise ConfigError(
                    f"{location}: invalid {_WHAT}: key {interaction.key} is recorded twice; "
                    "delete one of the interactions"
                )
            interactions[interaction.key] = interaction
        return interactions

    # -- what the gateway asks -----------------------------------------------------------

    @property
    def may_record(self) -> bool:
        """Whether a request with no recording may go to the model (and be recorded)."""
        return self.mode in ("new_episodes", "all") or (self.mode == "once" and not self.existed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._interactions)

    def add_secrets(self, secrets: Sequence[str], patterns: Sequence[str] = ()) -> None:
        """More values and regexes to redact (the gateway adds its config's)."""
        with self._lock:
            self._secrets.extend(secret for secret in secrets if secret not in self._secrets)
            self._patterns.extend(pattern for pattern in patterns if pattern not in self._patterns)

    def lookup(self, request: LLMRequest) -> LLMResponse | None:
        """The recorded response (``replayed=True``, free), or None to call the model."""
        if self.mode == "all" or not self._interactions:  # nothing to find: no key to hash
            return None
        with self._lock:
            interaction = self._interactions.get(request_key(request))
        if interaction is None:
            return None
        recorded = interaction.response
        return LLMResponse(
            message=recorded.message,
            model=recorded.model,
            prompt_tokens=recorded.prompt_tokens,
            completion_tokens=recorded.completion_tokens,
            cost_usd=0.0,
            replayed=True,
            latency_seconds=0.0,
            attempts=0,
        )

    def miss(self, request: LLMRequest) -> CassetteMiss:
        """The error for a request this cassette lacks and may not record (one line)."""
        with self._lock:
            secrets = [*self._secrets, *env_secret_values()]
            patterns = list(self._patterns)
        excerpt = _excerpt(request, lambda text: redact(text, secrets, patterns))
        return CassetteMiss(
            f"{display_path(self.path)}: no recorded {request.purpose} call to "
            f"{request.model} for {excerpt!r} (record mode '{self.mode}'); rerun with "
            "--agentsim-record-mode=new_episodes to record it"
        )

    def record(self, request: LLMRequest, response: LLMResponse) -> None:
        """Keep the call (redacted) and write it to the file at once."""
        if not self.may_record:
            raise self.miss(request)
        with self._lock:
            secrets = [*self._secrets, *env_secret_values()]
            data = {
                "purpose": request.purpose,
                "request": {name: getattr(request, name) for name in RecordedRequest.model_fields},
                "response": {
                    "message": response.message,
                    "model": response.model,
                    "prompt_tokens": response.prompt_tokens,
                    "completion_tokens": response.completion_tokens,
                },
            }
            # The key is a hash: redacting it could only corrupt it.
            redacted = redact_data(data, secrets, self._patterns)
            interaction = Interaction.model_validate({"key": request_key(request), **redacted})
            again = interaction.key in self._interactions
            # In place when re-recorded (mode 'all'), so the file's order stays stable.
            self._interactions[interaction.key] = interaction
            self._chunks.pop(interaction.key, None)
            redacted_with = (tuple(secrets), tuple(self._patterns))
            if self._appendable and not again and redacted_with == self._chunks_redacted_with:
                self._append(interaction)
            else:
                self._write(secrets)

    # -- writing -------------------------------------------------------------------------

    def _chunk(self, interaction: Interaction, *, redacted: bool = False) -> str:
        """One interaction as the YAML list item it is in the file; redacted again with
        the secrets known now unless it was ``redacted`` with them just before."""
        data = interaction.model_dump(mode="json")
        key = data.pop("key")
        if data["request"].get("sample") is None:
            data["request"].pop("sample", None)
        if not redacted:
            secrets, patterns = self._chunks_redacted_with
            data = redact_data(data, list(secrets), list(patterns))
        return dump_yaml([{"key": key, **data}])

    def _text(self, secrets: Sequence[str]) -> str:
        """The file's text: what :func:`cassette_text` makes of the whole document, built
        from one cached chunk per interaction."""
        if not self._interactions:
            return cassette_text({})
        redacted_with = (tuple(secrets), tuple(self._patterns))
        if redacted_with != self._chunks_redacted_with:
            # Redacted again: a secret set after an entry was recorded goes too.
            self._chunks.clear()
            self._chunks_redacted_with = redacted_with
        parts = [HEADER]
        for key, interaction in self._interactions.items():
            if key not in self._chunks:
                self._chunks[key] = self._chunk(interaction)
            parts.append(self._chunks[key])
        return "".join(parts)

    def _append(self, interaction: Interaction) -> None:
        """Add one entry at the end of the file in one write; on failure (disk full) the
        file is cut back to what it was, so it never holds half an entry."""
        # Recorded just now, redacted with the secrets every entry of the file was.
        chunk = self._chunks[interaction.key] = self._chunk(interaction, redacted=True)
        data = chunk.encode("utf-8")
        handle = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(handle).st_size
            try:
                written = 0
                while written < len(data):
                    written += os.write(handle, data[written:])
            except BaseException:
                self._appendable = False  # the next call writes the whole file, this entry too
                with contextlib.suppress(OSError):
                    os.ftruncate(handle, size)
                raise
        finally:
            os.close(handle)

    def _write(self, secrets: Sequence[str]) -> None:
        text = self._text(secrets)
        if not self.path.exists() and self._create(text):
            self._appendable = bool(self._interactions)
            return
        mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o644
        handle, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, mode)  # mkstemp makes 0600; a cassette is a shared file
            os.replace(temporary, self.path)
        except BaseException:
            self._appendable = False
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._appendable = bool(self._interactions)

    def _create(self, text: str) -> bool:
        """Write a file that did not exist in one write, with no temporary file and no
        fsync (there is nothing to keep safe), removed again if the write fails; False if
        another process created it meanwhile (then it is replaced as usual)."""
        data = text.encode("utf-8")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            try:
                handle = os.open(self.path, flags, 0o644)
            except FileNotFoundError:  # the first cassette of its folder (a syscall saved)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = os.open(self.path, flags, 0o644)
        except FileExistsError:
            return False
        try:
            written = 0
            while written < len(data):
                written += os.write(handle, data[written:])
        except BaseException:
            self._appendable = False
            os.close(handle)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise
        os.close(handle)
        return True
