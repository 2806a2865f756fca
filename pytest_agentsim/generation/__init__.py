"""Building events from packs: the policy graph and its sampling and coverage walks, filling
events from the pack's templates or with a model (and edge scoring), and the snapshot files
they are written to (reading, writing byte-stably, staleness).

May import from :mod:`~pytest_agentsim.core`, :mod:`~pytest_agentsim.packs` and
:mod:`~pytest_agentsim.llm`.
"""
