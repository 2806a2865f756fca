"""Reading what users write: policy packs (with their seed databases), event files, and the
template language of pack variants, each validated with ``file:line`` errors.

May import only from :mod:`pytest_agentsim.core`.
"""
