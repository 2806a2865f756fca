"""Offline simulated users: an agenda-based simulator and a scripted one.

The agenda user follows Schatzmann et al. (2007): its state is a goal (constraints and
requests) and a stack of pending dialogue acts. Each agent reply updates the goal
(requests the agent fulfilled), pushes reactions onto the stack (answers to questions
about the user's facts, a yes or no to a confirmation question), and then the user pops
one or more acts (its initiative, drawn from a seeded RNG) to form its turn. What it
understands of the agent is a table of rules
(:mod:`~pytest_agentsim.simulation.understanding`). It stops with a reason when its goal
is met, when the agent refuses, or when its agenda runs out; and with ``stalled`` when the
agent has lost it (see :class:`AgendaUser`), rather than babbling on to the turn limit,
saying which agent turn it could not follow. Same event and seed, same conversation: no
model, no network.
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
from pytest_agentsim.simulation.understanding import Answer
from pytest_agentsim.simulation.understanding import Asked
from pytest_agentsim.simulation.understanding import SlotMatcher
from pytest_agentsim.simulation.understanding import asks
from pytest_agentsim.simulation.understanding import digits
from pytest_agentsim.simulation.understanding import is_confirmation
from pytest_agentsim.simulation.understanding import label
from pytest_agentsim.simulation.understanding import near_same
from pytest_agentsim.simulation.understanding import quote
from pytest_agentsim.simulation.understanding import refuses


@dataclass(frozen=True)
class UserReply:
    """The user's next message (None: nothing more to say) and whether it ends the chat."""

    text: str | None
    stop: StopReason | None = None
    #: Why it stops, when the stop reason alone does not say (a stall: the agent turn the
    #: user could not follow); it becomes the conversation's ``stop_detail``.
    reason: str | None = None


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


#: A user about to say the same thing this many times in a row more has stalled.
STALL_REPEATS = 2
#: An agent that says the same (or nearly the same) thing the user could not follow this
#: many times in a row has lost the user.
AGENT_REPEATS = 3


class AgendaUser:
    """An agenda-based simulated user driven by an event's :class:`UserProfile`.

    What it understands of the agent is :mod:`~pytest_agentsim.simulation.understanding`.
    It *could not follow* an agent turn that asks something (a question, "please
    provide...") when it finds neither a confirmation question nor a question about one of
    its facts or requests in it and the turn met none of its requests. It stops with
    ``stalled`` and a reason (:attr:`UserReply.reason`) when the agent says such a turn
    :data:`AGENT_REPEATS` times in a row (the same or nearly), when it could not follow a
    turn and has nothing left to say but its goal, said once already, or when it would say
    the same message a third time in a row.
    """

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
        self.matcher = SlotMatcher(
            self.knowledge, profile.aliases, [request.slot for request in self.pending]
        )
        # The agenda is a stack: the next act is at the end; ``bye`` is at the bottom.
        acts = list(profile.agenda)
        if not acts or acts[-1].act != "bye":
            acts.append(DialogueAct(act="bye"))
        self.agenda: list[DialogueAct] = list(reversed(acts))
        #: How each slot the agent asked for is to be answered (its last four digits...).
        self._answers: dict[str, Answer] = {}
        #: The agent turns in a row the user could not follow: (message index, text).
        self._lost: list[tuple[int, str]] = []
        self._restating = False
        #: Whether it said its goal again since the agent lost it (it does so only once).
        self._restated_lost = False

    # -- understanding the agent -------------------------------------------------------

    def _react(self, text: str) -> list[DialogueAct]:
        """The acts that answer the agent's turn, in the order it asked (none: not understood).

        A confirmation question is answered yes or no, unless it asks for facts the agent
        has not stated ("can you confirm your zip code?"): then with those facts.
        """
        pending = {request.slot for request in self.pending}
        asked = [
            item
            for item in self.matcher.asked(text)
            if item.slot in self.knowledge or item.slot in pending
        ]
        if is_confirmation(text):
            asked = [item for item in asked if not self._stated(item, text)]
            if not asked:
                return [DialogueAct(act="confirm" if self.profile.goal.confirm else "deny")]
        for item in asked:
            self._answers[item.slot] = item.answer
        return [
            DialogueAct(act="inform" if item.slot in self.knowledge else "request", slot=item.slot)
            for item in asked
        ]

    def _stated(self, item: Asked, text: str) -> bool:
        """Whether the agent's text already holds the value it asks the user to confirm."""
        if item.slot not in self.knowledge:
            return True  # a request's slot: the confirmation is about what the user wants
        value = self.knowledge[item.slot]
        if isinstance(value, bool) or value is None:
            return False
        said = str(value) if item.answer != "last4" else digits(value)[-4:]
        return said.lower() in text.lower()

    def _observe(self, text: str, index: int) -> UserReply | None:
        """Update the goal from the agent's reply; a reply when the user should stop."""
        before = len(self.pending)
        self.pending = [
            request for request in self.pending if not re.search(request.done_when, text, re.I)
        ]
        if self.profile.goal.requests and not self.pending:
            return UserReply("Great, thank you. That's all I needed.", StopReason.goal_met)
        asking = asks(text) or is_confirmation(text)
        if refuses(text) and not asking:
            return UserReply("I see. Thanks anyway, goodbye.", StopReason.refused)
        reactions = self._react(text) if asking else []
        followed = bool(reactions) or not asking or len(self.pending) < before
        self._lost = [] if followed else [*self._lost, (index, text)]
        if followed:
            self._restated_lost = False
        # Reactions go on top of the stack, in the order the agent asked; an act that was
        # still waiting further down moves up instead of being said twice.
        moved = {(act.act, act.slot) for act in reactions if act.act in ("inform", "request")}
        self.agenda = [a for a in self.agenda if (a.act, a.slot) not in moved]
        self.agenda.extend(reversed(reactions))
        return None

    # -- speaking ------------------------------------------------------------------------

    def _realise(self, act: DialogueAct) -> str:
        if act.act == "say":
            return act.text or ""
        if act.act == "inform":
            return self._inform(act)
        if act.act == "request":
            request = next((r for r in self.profile.goal.requests if r.slot == act.slot), None)
            return act.text or (
                request.text if request else f"What about my {label(act.slot or '')}?"
            )
        if act.act == "confirm":
            return act.text or "Yes, please go ahead."
        if act.act == "deny":
            return act.text or "No, please don't do that."
        return act.text or "Thanks, that's all."

    def _inform(self, act: DialogueAct) -> str:
        slot = act.slot or ""
        value = self.knowledge.get(slot)
        answer = self._answers.pop(slot, "value")
        if value is None:
            return f"Sorry, I don't know my {label(slot)}."
        if act.text:
            return act.text.format(value=value, **self.knowledge)
        if isinstance(value, bool):
            word = "yes" if value else "no"
            return f"{word.capitalize()}." if answer == "yes_no" else f"My {label(slot)}: {word}."
        if answer == "last4":
            return f"The last four digits of my {label(slot)} are {digits(value)[-4:]}."
        return f"My {label(slot)} is {value}."

    def reply(self, messages: Sequence[Message]) -> UserReply:
        said = self._next_turn(messages)
        if said.stop is not None:
            return said
        stall = self._stall(said, messages)
        if stall is not None:
            # Going on would not get further: the goal is out of reach, and a conversation
            # run on to the turn limit would only look longer.
            return UserReply(None, StopReason.stalled, reason=stall)
        if self._restating and self._lost:
            self._restated_lost = True
        return said

    def _stall(self, said: UserReply, messages: Sequence[Message]) -> str | None:
        """Why the user gives up here (see the class), or None to go on."""
        latest = _latest_agent(messages)
        if latest is None:
            return None
        index, text = latest
        lost = f"the simulated user could not follow turn {index}: '{quote(text)}'"
        if self._lost:
            run = 0
            for _, earlier in reversed(self._lost):
                if not near_same(earlier, text):
                    break
                run += 1
            if run >= AGENT_REPEATS:
                return f"{lost} (the agent said it {run} times)"
            if self._restating and self._restated_lost:
                return f"{lost} (it had nothing left to say with its goal unmet)"
        if _repeats(said.text, messages):
            if self._lost:
                return f"{lost} (it would say {quote(said.text or '', 80)!r} a third time)"
            return (
                f"the simulated user got no further after turn {index}: '{quote(text)}' "
                f"(it would say {quote(said.text or '', 80)!r} a third time)"
            )
        return None

    def _next_turn(self, messages: Sequence[Message]) -> UserReply:
        self._restating = False
        latest = _latest_agent(messages)
        if latest is not None:
            stop = self._observe(latest[1], latest[0])
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
                    self._restating = True
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


def _latest_agent(messages: Sequence[Message]) -> tuple[int, str] | None:
    """The agent's words since the user last spoke, with the index of its last message
    with words (the turn a transcript numbers it), or None before the agent has spoken."""
    texts: list[str] = []
    index: int | None = None
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if message.role == "user":
            break
        if message.role == "assistant" and message.content:
            texts.append(message.content)
            index = position if index is None else index
    if index is None:
        return None
    return index, "\n".join(reversed(texts))


def user_for(profile: UserProfile, *, seed: int | str) -> SimulatedUser:
    """The offline user an event asks for: scripted if it has a script, else agenda-based."""
    if profile.script is not None:
        return ScriptedUser(profile.script)
    return AgendaUser(profile, seed=seed)
