"""What a conftest declares: tool specs, and how an agent factory is told from an agent."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_agentsim.simulation.declarations import agent_factory
from pytest_agentsim.simulation.declarations import as_factory
from pytest_agentsim.simulation.declarations import default_tool_name


class Responder:
    def respond(self, messages: list[dict[str, Any]], sandbox: object) -> str:
        return "hi"

    def __call__(self, event: object) -> str:  # callable, but respond wins
        return "not a factory"


class CallableAgent:
    def __call__(self, messages: list[dict[str, Any]], sandbox: object) -> str:
        return "hi"


class Factory:
    def __call__(self, event: object) -> Responder:
        return Responder()


def two_args(messages: list[dict[str, Any]], sandbox: object) -> str:
    return "hi"


def optional_second(messages: list[dict[str, Any]], sandbox: object = None) -> str:
    return "hi"


def one_arg(event: object) -> Responder:
    return Responder()


def star_args(*args: object) -> str:
    return "hi"


@pytest.mark.parametrize(
    ("candidate", "is_factory"),
    [
        (Responder(), False),
        (CallableAgent(), False),
        (two_args, False),
        (optional_second, False),  # agent(messages, sandbox) still binds: an agent
        (star_args, False),
        (print, False),  # a builtin: taken for an agent
        (Responder, False),  # a class is never a factory by shape
        (one_arg, True),
        (Factory(), True),
        (lambda event: Responder(), True),
        (agent_factory(two_args), True),  # type: ignore[arg-type]  # the explicit wrapper always is
    ],
)
def test_a_factory_is_told_from_an_agent(candidate: object, is_factory: bool) -> None:
    assert (as_factory(candidate) is not None) is is_factory


def test_agent_factory_is_a_decorator_that_keeps_the_name() -> None:
    @agent_factory
    def make(event: object) -> Responder:
        return Responder()

    assert repr(make) == "agent_factory(make)"
    assert isinstance(make(None), Responder)  # type: ignore[arg-type]
    assert agent_factory(make) is make
    with pytest.raises(TypeError, match="is not callable"):
        agent_factory(3)  # type: ignore[arg-type]


class GetUserDetails:
    pass


class HTTPLookup:
    pass


class Named:
    name = "search_flights"


def test_default_tool_names() -> None:
    assert default_tool_name(one_arg) == "one_arg"
    assert default_tool_name(GetUserDetails) == "get_user_details"
    assert default_tool_name(HTTPLookup()) == "http_lookup"
    assert default_tool_name(Named()) == "search_flights"
