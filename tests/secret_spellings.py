"""How a secret can be spelt in what a run writes, computed without the plugin's code.

The tests of redaction grep artefacts for these, so they are written out here from
Python's own escapes rather than taken from :mod:`pytest_agentsim.llm.redaction`: a
spelling the plugin forgot must still be looked for.
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote
from urllib.parse import quote_plus

#: Secrets with every character that escapes change: a double quote, both quotes, a single
#: quote (repr then quotes with "), backslashes, non-ASCII (one outside the BMP: a surrogate
#: pair in ASCII JSON), newlines, a carriage return, a tab. Each holds a
#: marker (``Zq8v...``) that no escape changes: a marker in an artefact is a leak in a
#: spelling nobody thought of, or a secret cut in two.
NASTY_SECRETS = (
    'pa"ss\\wörd\nZq8vN3-line',
    'it\'s "tökén" \\ 🔑\tZq8vK7',
    "a'b\\\\c\r\nZq8vQ5 é",
)
MARKERS = ("Zq8vN3", "Zq8vK7", "Zq8vQ5")


def escaped_once(text: str) -> set[str]:
    """``text`` escaped once by each escape our outputs use."""
    forms = {
        json.dumps(text)[1:-1],  # ensure_ascii: é -> \u00e9, 🔑 -> a surrogate pair
        json.dumps(text, ensure_ascii=False)[1:-1],
        repr(text)[1:-1],
        # Inside a larger string repr picks the quote for the whole: with both quotes
        # around it the secret is quoted with ', with only ' around it with ".
        repr("'\"" + text)[4:-1],
        quote(text),
        quote(text, safe=""),
        quote_plus(text),
    }
    if '"' not in text:
        forms.add(repr("'" + text)[2:-1])
    return forms


def spellings(secret: str, depth: int = 3) -> set[str]:
    """Raw, one-line, and escaped up to ``depth`` times (a tool error's repr in a JSON
    tool message in the judge's JSON transcript is three deep)."""
    found = {secret, " ".join(secret.split())}
    level = {secret}
    for _ in range(depth):
        level = {form for text in level for form in escaped_once(text)}
        found |= level
    return found


def leaks(text: str, secrets: tuple[str, ...] = NASTY_SECRETS) -> list[str]:
    """Every spelling of a secret, marker, or XML-escaped spelling found in ``text``."""
    found = [marker for marker in MARKERS if marker in text]
    for secret in secrets:
        for spelling in spellings(secret):
            if spelling in text or html.escape(spelling) in text:
                found.append(spelling)
    return found
