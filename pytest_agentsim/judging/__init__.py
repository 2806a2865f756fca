"""Deciding outcomes: the built-in rule checks, the judge protocol and the rule judge, the
LLM judge, and how verdicts combine into one outcome per policy (worst first, none dropped).

May import from :mod:`~pytest_agentsim.core`, :mod:`~pytest_agentsim.packs` and
:mod:`~pytest_agentsim.llm`.
"""
