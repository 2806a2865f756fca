"""The built-in agent under test: a system prompt, a model and the sandbox's tools.

Most agents a product team ships are a prompt plus tools plus a model; testing a prompt
change means running exactly that. :class:`LLMAgent` is that agent: it sends the system
prompt and the conversation so far, offers the sandbox's tools through the model's tool
calling, and returns the model's assistant message, whose tool calls the runner executes
in the sandbox and feeds back. Configure it without code (``agentsim_agent_prompt`` and
``agentsim_agent_model`` in the ini file) or return one from your ``agentsim_agent``
fixture.

:class:`OpenAICompatibleAgent` tests an agent that is already served behind an
OpenAI-compatible ``/v1/chat/completions`` endpoint (a gateway, vLLM, your own service):
no system prompt is added, and tool calls it returns still run in the sandbox. Both go
through the gateway, so they are retried, recorded and replayed like every model call.

Both satisfy the :class:`~pytest_agentsim.simulation.runner.RespondingAgent` protocol (an
``async respond`` returning an OpenAI assistant message dict): the runner calls them
exactly as it calls a user's own agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_agentsim.core.errors import ConfigError
from pytest_agentsim.core.sources import display_path
from pytest_agentsim.core.sources import read_user_text
from pytest_agentsim.llm.gateway import Gateway
from pytest_agentsim.llm.messages import LLMRequest
from pytest_agentsim.llm.run import LLMRole
from pytest_agentsim.simulation.sandbox import ToolSandbox


def read_prompt(path: Path) -> str:
    """A system prompt file's text; a missing, unreadable (not UTF-8, too large) or empty
    file is a one-line usage error."""
    text = read_user_text(path, what="agent system prompt file")
    if not text.strip():
        raise ConfigError(f"{display_path(path)}: the agent system prompt file is empty")
    return text


class LLMAgent(LLMRole):
    """An agent made of ``system_prompt`` (text, or a file as a :class:`~pathlib.Path`) and ``model``."""

    def __init__(
        self,
        system_prompt: str | Path | None,
        model: str,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        temperature: float | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        super().__init__(model, api_base=api_base, api_key_env=api_key_env, gateway=gateway)
        self.system_prompt = (
            read_prompt(system_prompt) if isinstance(system_prompt, Path) else system_prompt
        )
        self.temperature = temperature

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    async def respond(self, messages: list[dict[str, Any]], sandbox: ToolSandbox) -> dict[str, Any]:
        prompt = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        request = LLMRequest(
            model=self.model,
            messages=[*prompt, *messages],
            tools=sandbox.schemas or None,
            temperature=self.temperature,
            purpose="agent",
        )
        response = await self.gateway().acomplete(request)
        return response.message


class OpenAICompatibleAgent(LLMAgent):
    """An agent served at ``base_url`` (``.../v1``) that speaks OpenAI chat completions."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        # litellm routes any "openai/<name>" model to an OpenAI-compatible api_base.
        routed = model if model.startswith("openai/") else f"openai/{model}"
        super().__init__(None, routed, api_base=base_url, api_key_env=api_key_env, gateway=gateway)
