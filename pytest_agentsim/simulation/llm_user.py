"""A simulated user played by a model: persona, goal and private facts, nothing else.

The model is told who it is (the event's persona), what it wants (the goal's requests,
what it insists on, whether it agrees to a confirmation), what it knows and may reveal
when asked (the private facts) and what it means to bring up (the agenda). It never sees
the agent's system prompt, the pack's policies, the event's scenario text (written for
the judge: it says what must and must not happen) or the expected outcome, as in
tau-bench and IntellAgent. The conversation is shown from its side: the agent's words
are the "user" messages of its chat, its own turns are "assistant" messages, and tool
traffic is invisible to it. It ends the conversation by writing ``###STOP###``
(tau-bench's signal); the runner's max-turn limit bounds it otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pytest_agentsim.core.models import Message
from pytest_agentsim.core.models import StopReason
from pytest_agentsim.core.models import UserProfile
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.messages import LLMRequest
from pytest_agentsim.llm.run import LLMRole
from pytest_agentsim.simulation.users import UserReply

STOP_SIGNAL = "###STOP###"


class LLMUserError(RuntimeError):
    """The user model answered with nothing to say and no stop signal."""


def user_situation(profile: UserProfile) -> dict[str, Any]:
    """What the user model is told about itself: JSON-ready, deterministic."""
    goal: dict[str, Any] = {
        "requests": [request.text for request in profile.goal.requests],
        "agree_when_asked_to_confirm": profile.goal.confirm,
    }
    if profile.goal.constraints:
        goal["insist_on"] = profile.goal.constraints
    situation: dict[str, Any] = {"persona": profile.persona or "an ordinary customer"}
    situation["goal"] = goal
    situation["private_facts"] = profile.facts
    plan: list[dict[str, str]] = [{"say": line} for line in profile.script or []]
    for act in profile.agenda:
        if act.act in ("say", "request") and act.text:
            plan.append({"say": act.text})
        elif act.act == "inform" and act.slot:
            plan.append({"share_fact": act.slot})
    if plan:
        situation["bring_up_in_order"] = plan
    return situation


def user_system_prompt(profile: UserProfile) -> str:
    situation = json.dumps(user_situation(profile), indent=2, sort_keys=True, ensure_ascii=False)
    return (
        "You are role-playing a customer who is contacting a company's support assistant. "
        "Stay in character; never say you are an AI or a simulation.\n"
        "- Write only the customer's next message: short, natural, one message at a time.\n"
        "- Pursue your goal. Bring up the things in 'bring_up_in_order' in that order "
        "('share_fact' means: tell the assistant that fact unprompted). Reveal other "
        "private facts only when asked, and never invent facts you were not given.\n"
        "- When the assistant asks you to confirm an action, agree only if "
        "'agree_when_asked_to_confirm' is true.\n"
        f"- When your goal is met, or the assistant clearly cannot help, end with {STOP_SIGNAL} "
        f"(a short goodbye before it is fine). Do not write {STOP_SIGNAL} otherwise.\n\n"
        f"Your situation (JSON):\n{situation}"
    )


def user_view(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation as the user model sees it: roles swapped, tool traffic hidden."""
    view: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant" and message.content:
            view.append({"role": "user", "content": message.content})
        elif message.role == "user" and message.content:
            view.append({"role": "assistant", "content": message.content})
    return view


class LLMUser(LLMRole):
    """A :class:`~pytest_agentsim.simulation.users.SimulatedUser` whose turns a model writes."""

    role = "user"

    def __init__(
        self,
        profile: UserProfile,
        model: str,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        super().__init__(model, api_base=api_base, api_key_env=api_key_env, gateway=gateway)
        self.profile = profile
        self.system_prompt = user_system_prompt(profile)

    async def reply(self, messages: Sequence[Message]) -> UserReply:
        view = user_view(messages)
        if not view:
            # Chat models answer a conversation; the opening needs something to answer.
            view = [
                {"role": "user", "content": "(The support chat opens. Write your first message.)"}
            ]
        request = LLMRequest(
            model=self.model,
            messages=[{"role": "system", "content": self.system_prompt}, *view],
            purpose="user",
        )
        response = await self.gateway().acomplete(request)
        text = response.content.strip()
        if STOP_SIGNAL in text:
            said = text.replace(STOP_SIGNAL, "").strip()
            return UserReply(said or None, StopReason.user_stopped)
        if not text:
            raise LLMUserError(
                f"{self.model}: the user model returned an empty message without {STOP_SIGNAL}"
            )
        return UserReply(text)
