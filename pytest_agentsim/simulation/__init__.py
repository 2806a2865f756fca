"""Running conversations: the tool sandbox, simulated users (agenda, scripted, LLM), the
agent protocol and the built-in agents, and the runner that plays an event end to end
(user <-> agent <-> tools, then the judges) for parametrized tests and ``simulated_user``
alike.

May import from every layer below: :mod:`~pytest_agentsim.core`,
:mod:`~pytest_agentsim.packs`, :mod:`~pytest_agentsim.llm` and
:mod:`~pytest_agentsim.judging` (the runner judges what it simulated).
"""
