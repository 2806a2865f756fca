"""The vocabulary every layer speaks: pydantic models of packs, events, conversations,
verdicts and results (messages in the OpenAI chat format), the rule-check base and its
registry, the risk taxonomy, source locations for one-line errors, and the error types.

It imports nothing of pytest-agentsim's own: every other layer builds on it.
"""
