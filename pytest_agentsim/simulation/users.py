"""Offline simulated users: an agenda-based simulator and a scripted one.

The agenda user follows Schatzmann et al. (2007): its state is a goal (constraints and
requests) and a stack of pending dialogue acts. Each agent reply updates the goal
(requests the agent fulfilled), pushes reactions onto the stack (answers to questions
about the user's facts, a yes or no to a confirmation question), and then the user pops
one or more acts (its initiative, drawn from a seeded RNG) to form its turn. It stops
with a reason when its goal is met, when the agent refuses, or when its agenda runs out;
and with ``stalled`` when it has nothing new to say (it would repeat the same message a
third time in a row, e.g. asking again for what the agent never does), rather than
babbling on to the turn limit. Same event and seed, same conversation: no model, no
network.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from pytest_agentsim.core.models import DialogueAct
from pytest_agentsim.core.models import GoalRequest
from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import UserProfile


@dataclass(frozen=True)
class UserReply:
    """The user's next message (None: nothing more to say) and whether it ends the chat."""

    text: str | None
    stop: StopReason | None = None


class SimulatedUser(Protocol):
    def reply(self, messages: Sequence[Message]) -> UserReply | Awaitable[UserReply]:
        """The next user turn, given the conversation so far (empty for the opening).

        It may be ``async`` (a model-played user is).
        """
        ...


class ScriptedUser:
    """Says fixed turns in order, then ends the conversation (``script_done``)."""

    def __init__(self, turns: Sequence[str]) -> None:
        if not turns:
            raise ValueError("a scripted user needs at least one turn")
        self.turns = list(turns)
        self._next = 0

    def reply(self, messages: Sequence[Message]) -> UserReply:
        if self._next >= len(self.turns):
            return UserReply(None, StopReason.script_done)
        text = self.turns[self._next]
        self._next += 1
        return UserReply(text)


CONFIRM_QUESTION = re.compile(
    r"(?i)(please confirm|confirm\b.*\?|shall i|should i|do you want me to|would you like me to|"
    r"(ok|okay) to proceed|proceed\?|go ahead\?)"
)
ASKS = re.compile(
    r"(?i)(\?|please (provide|share|give|tell)|could you|can you|may i have|i need|i'll need)"
)
REFUSAL = re.compile(
    r"(?i)\b(can(no|')t|cannot|unable to|not (able|allowed|permitted|possible)|"
    r"won't be able|isn't possible|is not possible)\b"
)


#: A user about to say the same thing this many times in a row more has stalled.
STALL_REPEATS = 2


def _label(slot: str) -> str:
    return slot.replace("_", " ").replace("-", " ")


class AgendaUser:
    """An agenda-based simulated user driven by an event's :class:`UserProfile`."""

    def __init__(
        self, profile: UserProfile, *, seed: int | str = 0, max_initiative: int = 2
    ) -> None:
        if profile.script is not None:
            raise ValueError("this profile has a script: use ScriptedUser")
        self.profile = profile
        self.rng = random.Random(str(seed))
        self.max_initiative = max(1, max_initiative)
        self.knowledge: dict[str, Any] = {**profile.facts, **profile.goal.constraints}
        self.pending: list[GoalRequest] = list(profile.goal.requests)
        # The agenda is a stack: the next act is at the end; ``bye`` is at the bottom.
        acts = list(profile.agenda)
        if not acts or acts[-1].act != "bye":
            acts.append(DialogueAct(act="bye"))
        self.agenda: list[DialogueAct] = list(reversed(acts))

    # -- understanding the agent -------------------------------------------------------

    def _aliases(self, slot: str) -> list[str]:
        return [_label(slot), *self.profile.aliases.get(slot, [])]

    def _asked_slots(self, text: str) -> list[str]:
        """The known slots the text mentions, in the order it mentions them."""
        lowered = text.lower()
        found = []
        for slot in self.knowledge:
            positions = [lowered.find(alias.lower()) for alias in self._aliases(slot)]
            positions = [position for position in positions if position >= 0]
            if positions:
                found.append((min(positions), slot))
        return [slot for _, slot in sorted(found, key=lambda item: item[0])]

    def _observe(self, text: str) -> UserReply | None:
        """Update the goal from the agent's reply; a reply when the user should stop."""
        self.pending = [
            request for request in self.pending if not re.search(request.done_when, text, re.I)
        ]
        if self.profile.goal.requests and not self.pending:
            return UserReply("Great, thank you. That's all I needed.", StopReason.goal_met)
        asks = bool(ASKS.search(text))
        if REFUSAL.search(text) and not asks:
            return UserReply("I see. Thanks anyway, goodbye.", StopReason.refused)
        reactions: list[DialogueAct] = []
        if CONFIRM_QUESTION.search(text):
            reactions.append(DialogueAct(act="confirm" if self.profile.goal.confirm else "deny"))
        elif asks:
            reactions.extend(DialogueAct(act="inform", slot=s) for s in self._asked_slots(text))
        # Reactions go on top of the stack, in the order the agent asked; an inform that was
        # still waiting further down moves up instead of being said twice.
        answered = {act.slot for act in reactions if act.act == "inform"}
        self.agenda = [a for a in self.agenda if not (a.act == "inform" and a.slot in answered)]
        self.agenda.extend(reversed(reactions))
        return None

    # -- speaking ------------------------------------------------------------------------

    def _realise(self, act: DialogueAct) -> str:
        if act.act == "say":
            return act.text or ""
        if act.act == "inform":
            slot = act.slot or ""
            value = self.knowledge.get(slot)
            if value is None:
                return f"Sorry, I don't know my {_label(slot)}."
            if act.text:
                return act.text.format(value=value, **self.knowledge)
            return f"My {_label(slot)} is {value}."
        if act.act == "request":
            request = next((r for r in self.profile.goal.requests if r.slot == act.slot), None)
            return act.text or (
                request.text if request else f"What about my {_label(act.slot or '')}?"
            )
        if act.act == "confirm":
            return act.text or "Yes, please go ahead."
        if act.act == "deny":
            return act.text or "No, please don't do that."
        return act.text or "Thanks, that's all."

    def reply(self, messages: Sequence[Message]) -> UserReply:
        said = self._next_turn(messages)
        if said.stop is None and _repeats(said.text, messages):
            # Saying it again would not get further than the last times: the goal is out
            # of reach, and a conversation run on to the turn limit would only look longer.
            return UserReply(None, StopReason.stalled)
        return said

    def _next_turn(self, messages: Sequence[Message]) -> UserReply:
        agent_text = _latest_agent_text(messages)
        if agent_text is not None:
            stop = self._observe(agent_text)
            if stop is not None:
                return stop
        parts: list[str] = []
        for _ in range(self.rng.randint(1, self.max_initiative)):
            act = self.agenda[-1]
            if act.act == "bye":
                if parts:
                    break
                if self.pending:
                    # The goal is not met yet: ask again instead of leaving.
                    return UserReply(self.pending[0].text)
                return UserReply(self._realise(act), StopReason.agenda_done)
            self.agenda.pop()
            parts.append(self._realise(act))
            if act.act in ("confirm", "deny"):
                break  # an answer to a yes/no question is a turn of its own
        return UserReply(" ".join(part for part in parts if part))


def _repeats(text: str | None, messages: Sequence[Message]) -> bool:
    """Whether the user's last STALL_REPEATS turns all said ``text`` already."""
    previous = [m.content for m in messages if m.role == "user"][-STALL_REPEATS:]
    return len(previous) == STALL_REPEATS and all(content == text for content in previous)


def _latest_agent_text(messages: Sequence[Message]) -> str | None:
    """The agent's words since the user last spoke, or None before the agent has spoken."""
    texts: list[str] = []
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "assistant" and message.content:
            texts.append(message.content)
    if not texts:
        return None
    return "\n".join(reversed(texts))


def user_for(profile: UserProfile, *, seed: int | str) -> SimulatedUser:
    """The offline user an event asks for: scripted if it has a script, else agenda-based."""
    if profile.script is not None:
        return ScriptedUser(profile.script)
    return AgendaUser(profile, seed=seed)
