"""Everything that talks to a model: the gateway over litellm (retries, structured output,
cost, budget), redaction of secrets, record/replay cassettes, the run's model roles with a
scope per simulation, and a fake OpenAI-compatible server for offline tests.

Beside :mod:`pytest_agentsim.packs`: may import only from :mod:`pytest_agentsim.core`.
litellm itself is imported lazily, on the first call.
"""
