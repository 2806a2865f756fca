"""What the offline user understands of an agent's message: a few tables of rules, no model.

The agenda user (:mod:`~pytest_agentsim.simulation.users`) reacts to an agent's message
only as far as these rules read it, so they are written down here as data, listed in the
README (:func:`rules_table`, which a test compares with it) and deterministic: the same
message and profile give the same reading on every run.

A message is cut into sentences; a sentence *asks* when it ends in ``?`` or says "please
provide", "could you", "may I have", "I need"... Each asking sentence is matched against
the user's slots (its facts, and the slots of its goal's requests) in tiers:

1. **name**: the slot's name in words (``card_id``: "card id") or one of its
   ``aliases``, as whole words (a plural ``s`` allowed);
2. **kind**: a rule of :data:`SLOT_RULES` whose phrasing the sentence uses ("the last
   four digits", "zip code", "email", "date", "16-digit"...) and whose kind of value the
   slot holds, judged by the slot's name or the value's shape; or an example in the
   sentence with the shape of the slot's value ("it looks like ABC123" for ``ZFA04Y``);
3. **words**, only when the first two found nothing: a word of the slot's name or
   aliases other than generic ones ("id", "number", "code"...), e.g. "Which card is
   it?" for ``card_id``.

A kind's phrasing inside a name found by the first tier ("id" in "user id") does not count
again, so "your user id and the last four digits of your card" asks for two slots.

When a rule fits several slots, the ones whose name or alias words the sentence uses are
kept; if that leaves none, the user does not guess and the rule finds nothing.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any
from typing import Literal


@dataclass(frozen=True)
class Phrasing:
    """One way an agent asks the user to confirm, with an example the README shows."""

    example: str
    pattern: re.Pattern[str]


def _phrasing(example: str, pattern: str) -> Phrasing:
    return Phrasing(example, re.compile(pattern, re.IGNORECASE))


#: What the offline user takes for a confirmation question: it answers yes or no to it
#: as its goal's ``confirm`` says. Checked before any question about its facts.
CONFIRMATION_PHRASINGS: tuple[Phrasing, ...] = (
    _phrasing("shall I / should I ...?", r"\b(shall|should) (i|we)\b"),
    _phrasing(
        "do you want me to / would you like me to ...",
        r"\b(do you|would you|you'?d) (want|like) me to\b|\bwant me to\b",
    ),
    _phrasing(
        "would you like to proceed / go ahead / continue?",
        r"\b(do|would) you (want|like|wish) to (proceed|go ahead|continue|confirm)\b",
    ),
    _phrasing(
        "is that correct / right / ok?",
        r"\b(is|does) (that|this|it) (sound |look )?(correct|right|ok|okay|alright|good|fine)\b",
    ),
    _phrasing(
        "can you confirm / please confirm / confirm ...?",
        r"\b(please|can you|could you|would you|kindly) confirm\b|\bconfirm\b[^.!?]*\?",
    ),
    _phrasing(
        "ok to proceed? / shall we go ahead? / proceed?",
        r"\b(ok|okay|alright|good|fine) to (proceed|go ahead|continue)\b"
        r"|\b(proceed|go ahead|continue)\s*\?",
    ),
    _phrasing("are you sure ...?", r"\bare you sure\b"),
    _phrasing("do you agree / do you approve ...?", r"\bdo you (agree|approve|accept)\b"),
    _phrasing("... (yes or no)?", r"\byes or no\b|\(y/n\)|\byes/no\b"),
)

#: A sentence that asks something of the user (a question, or a request for information).
ASKS = re.compile(
    r"(?i)(\?|please (provide|share|give|tell|enter|send|confirm)|could you|can you|"
    r"may i (have|get|ask)|i need|i'll need|i will need|i'd need)"
)
REFUSAL = re.compile(
    r"(?i)\b(can(no|')t|cannot|unable to|not (able|allowed|permitted|possible)|"
    r"won't be able|isn't possible|is not possible)\b"
)
#: A question answered with yes or no: it starts with an auxiliary verb.
YES_NO = re.compile(
    r"(?i)^\W*(is|are|was|were|do|does|did|have|has|had|can|could|will|would)\b[^?]*\?"
)
#: Words of a slot's name or aliases that say nothing about which fact it is.
GENERIC_WORDS = frozenset(
    """id ids no number numbers code codes the and for with you your yours our its his her
    their has have had was were are been not any all this that these those what which who
    when where how from into onto about per via""".split()
)


def is_confirmation(text: str) -> bool:
    """Whether the agent asks the user to confirm (any of :data:`CONFIRMATION_PHRASINGS`)."""
    return any(phrasing.pattern.search(text) for phrasing in CONFIRMATION_PHRASINGS)


def asks(text: str) -> bool:
    return bool(ASKS.search(text))


def refuses(text: str) -> bool:
    return bool(REFUSAL.search(text))


def label(slot: str) -> str:
    """A slot's name in words: ``card_id`` is "card id"."""
    return " ".join(re.split(r"[_\-\s]+", slot)).strip()


# --------------------------------------------------------------------------- values


def digits(value: Any) -> str:
    """The digits of a fact's value, in order ("" for a boolean or a structure)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return re.sub(r"\D", "", str(value))


def shape(value: str) -> str:
    """A value's shape: each run of letters and digits by kind, separators kept.

    "9{5}" is five digits, "a" letters, "x6" six letters and digits mixed: ``ZFA04Y``
    and ``ABC123`` have the shape "x6", ``mia_li_3668`` and ``joe_ng_1024`` "a_a_9{4}".
    """
    parts = []
    for part in re.findall(r"[A-Za-z0-9]+|[^A-Za-z0-9]", value):
        if part.isdigit():
            parts.append(f"9{{{len(part)}}}")
        elif part.isalpha():
            parts.append("a")
        elif part.isalnum():
            parts.append(f"x{len(part)}")
        else:
            parts.append(part)
    return "".join(parts)


def has_digit_shape(value: Any) -> bool:
    """Whether a value is a token with a digit, so that its shape tells it apart."""
    return isinstance(value, str) and bool(re.fullmatch(r"\S{3,}", value)) and digits(value) != ""


# --------------------------------------------------------------------------- slot rules

Answer = Literal["value", "last4", "yes_no"]


@dataclass(frozen=True)
class SlotRule:
    """A kind of fact, how an agent asks for it, and which slots hold one.

    ``asked`` is searched in an asking sentence; ``name`` in the slot's name, ``value``
    tells a value of the kind (either one makes the slot fit); ``answer`` says what the
    user gives: the value, or its last four digits.
    """

    kind: str
    example: str
    #: Which slots hold a fact of the kind, in words (the README's table).
    fits_when: str
    asked: re.Pattern[str]
    name: re.Pattern[str] | None = None
    value: Callable[[Any], bool] | None = None
    answer: Answer = "value"

    def fits(self, slot: str, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.name is not None and self.name.search(slot):
            return True
        return self.value is not None and self.value(value)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _matches(pattern: str) -> Callable[[Any], bool]:
    compiled = re.compile(pattern, re.IGNORECASE)
    return lambda value: isinstance(value, str) and bool(compiled.fullmatch(value.strip()))


def _is_date(value: Any) -> bool:
    if isinstance(value, datetime.date):
        return True
    return _matches(r"\d{4}-\d{2}-\d{2}([T ][\d:.]+Z?)?|\d{1,2}/\d{1,2}/\d{2,4}")(value)


def _is_phone(value: Any) -> bool:
    """7 to 15 digits (E.164's most): a 16-digit card number is no phone number."""
    return _matches(r"\+?[\d\s().-]{7,}")(value) and 7 <= len(digits(value)) <= 15


NUMBER_WORDS = {
    word: index
    for index, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen".split()
    )
}

#: The kinds of fact the offline user recognises a question about, in the order tried.
SLOT_RULES: tuple[SlotRule, ...] = (
    SlotRule(
        "last four digits",
        "the last four digits of your card / the card ending in?",
        "its value has 4 digits or more (the user gives the last four)",
        _rx(r"\b(last|final) (4|four) (digits|numbers)\b|\bend(s|ing)? (in|with)\b"),
        value=lambda value: len(digits(value)) >= 4,
        answer="last4",
    ),
    SlotRule(
        "email address",
        "your email / e-mail address",
        "its name has `mail`, or its value looks like an email address",
        _rx(r"\be ?-?mail\b"),
        name=_rx(r"mail"),
        value=_matches(r"[^@\s]+@[^@\s]+\.\w+"),
    ),
    SlotRule(
        "zip code",
        "your postal code / postcode / zip",
        "its name has `zip`, `postal` or `postcode`, or its value is 5 digits (and 4)",
        _rx(r"\b(zip|postal|post) ?code\b|\bpostcode\b|\bzip\b"),
        name=_rx(r"zip|postal|postcode"),
        value=_matches(r"\d{5}(-\d{4})?"),
    ),
    SlotRule(
        "phone number",
        "a phone number we can reach you at",
        "its name has `phone`, `mobile`, `cell` or `tel`, or its value is 7 to 15 digits",
        _rx(r"\b(phone|mobile|cell|telephone)\b|\bcontact number\b"),
        name=_rx(r"phone|mobile|cell|tel"),
        value=_is_phone,
    ),
    SlotRule(
        "date",
        "the date of birth / when would you ...",
        "its name has `date`, `dob`, `birth`, `day` or ends in `_at`/`_on`, or its value is a date",
        _rx(
            r"\b(date|birthday|born|dob|which day|what day)\b|\bwhen (do|did|will|would|are|were) you\b"
        ),
        name=_rx(r"date|dob|birth|day|_at$|_on$"),
        value=_is_date,
    ),
    SlotRule(
        "name",
        "your full name / who am I speaking with",
        "its name is `name` or ends in `_name`",
        _rx(
            r"\b(your|the) (full |first |last |given |family )?name\b|\bwho am i (speaking|talking)"
        ),
        name=_rx(r"(^|_)name$"),
    ),
    SlotRule(
        "digit count",
        "your 16-digit card number",
        "its value has that many digits",
        _rx(r"(?<!last )(?<!final )\b(\d+|" + "|".join(NUMBER_WORDS) + r")[- ]digits?\b"),
    ),
    SlotRule(
        "identifier",
        "your customer id / booking reference / account number",
        "its name ends in `id`, `no`, `number`, `code` or `ref`, or its value is a token with a digit",
        _rx(
            r"\b(id|identifier|reference|ref|(account|booking|confirmation|customer|member"
            r"(ship)?|order|ticket|case|record|card) (number|no|code|id))\b"
        ),
        name=_rx(r"(^|_)(id|no|number|code|ref|reference)$"),
        value=has_digit_shape,
    ),
)


def _digit_count(sentence: str) -> int | None:
    found = re.search(r"\b(\d+|" + "|".join(NUMBER_WORDS) + r")[- ]digits?\b", sentence, re.I)
    if found is None:
        return None
    word = found.group(1).lower()
    return int(word) if word.isdigit() else NUMBER_WORDS[word]


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class Asked:
    """A slot an agent's message asks about, how it was recognised and what to answer."""

    slot: str
    tier: str
    answer: Answer = "value"


def sentences(text: str) -> list[str]:
    """The text cut after ``.``, ``!`` or ``?`` followed by a space, and at line breaks."""
    return [part.strip() for part in re.split(r"(?<=[.!?])\s+|\n+", text) if part.strip()]


def _words(phrase: str) -> str:
    return r"(?<![\w-])" + r"[\s_-]+".join(map(re.escape, phrase.split())) + r"s?(?![\w-])"


class SlotMatcher:
    """Finds the slots an agent's message asks about (see the module's tiers)."""

    def __init__(
        self,
        facts: Mapping[str, Any],
        aliases: Mapping[str, Sequence[str]],
        requests: Iterable[str] = (),
    ) -> None:
        #: The user's facts; the slots of its goal's requests are matched by name and
        #: words only (they hold no value to judge a kind by).
        self.facts = dict(facts)
        self.slots = [*self.facts, *(slot for slot in requests if slot not in self.facts)]
        self.phrases = {slot: [label(slot), *aliases.get(slot, [])] for slot in self.slots}

    def _words_of(self, slot: str) -> set[str]:
        words = {w for phrase in self.phrases[slot] for w in re.findall(r"[a-z]+", phrase.lower())}
        return {w for w in words if w not in GENERIC_WORDS and len(w) > 2}

    def _mentions(self, sentence: str, slot: str) -> bool:
        return any(
            re.search(_words(word), sentence, re.IGNORECASE) for word in self._words_of(slot)
        )

    def _by_name(self, sentence: str) -> list[tuple[int, int, str]]:
        found = []
        for slot, phrases in self.phrases.items():
            spans = [
                match.span()
                for phrase in phrases
                if phrase.strip()
                for match in [re.search(_words(phrase.lower()), sentence, re.IGNORECASE)]
                if match
            ]
            if spans:
                start, end = min(spans)
                found.append((start, end, slot))
        return sorted(found)

    def _narrow(self, sentence: str, candidates: Iterable[str]) -> list[str]:
        """One slot, or the ones the sentence names words of; none if still ambiguous."""
        candidates = list(candidates)
        if len(candidates) <= 1:
            return candidates
        return [slot for slot in candidates if self._mentions(sentence, slot)]

    def _by_kind(self, sentence: str, taken: list[tuple[int, int, str]]) -> list[tuple[int, Asked]]:
        found: list[tuple[int, Asked]] = []
        named = {slot for _, _, slot in taken}
        for rule in SLOT_RULES:
            match = rule.asked.search(sentence)
            if match is None or any(s < match.end() and match.start() < e for s, e, _ in taken):
                continue
            if rule.kind == "digit count":
                count = _digit_count(sentence)
                candidates = [s for s, v in self.facts.items() if len(digits(v)) == count]
            else:
                candidates = [s for s, v in self.facts.items() if rule.fits(s, v)]
            for slot in self._narrow(sentence, (c for c in candidates if c not in named)):
                found.append((match.start(), Asked(slot, rule.kind, rule.answer)))
                named.add(slot)
        for token in re.finditer(r"[A-Za-z0-9][\w.@-]*[A-Za-z0-9]", sentence):
            candidates = [
                slot
                for slot, value in self.facts.items()
                if slot not in named and has_digit_shape(value) and shape(value) == shape(token[0])
            ]
            for slot in self._narrow(sentence, candidates):
                found.append((token.start(), Asked(slot, "same shape")))
                named.add(slot)
        return found

    def _sentence(self, sentence: str) -> list[Asked]:
        named = self._by_name(sentence)
        yes_no = bool(YES_NO.search(sentence))
        found = [(start, Asked(slot, "name", self._answer(slot))) for start, _, slot in named]
        found += self._by_kind(sentence, named)
        if not found:
            mentioned = [slot for slot in self.slots if self._mentions(sentence, slot)]
            flags = [slot for slot in mentioned if isinstance(self.facts.get(slot), bool)]
            # A yes/no question about something the user has a yes or no for is about that.
            chosen = flags if yes_no and flags else [s for s in mentioned if s not in flags]
            found = [(0, Asked(slot, "words", self._answer(slot))) for slot in chosen]
        return [asked for _, asked in sorted(found, key=lambda item: item[0])]

    def _answer(self, slot: str) -> Answer:
        return "yes_no" if isinstance(self.facts.get(slot), bool) else "value"

    def asked(self, text: str) -> list[Asked]:
        """The slots the text's asking sentences are about, in the order it asks them."""
        result: list[Asked] = []
        for sentence in sentences(text):
            if not asks(sentence):
                continue
            for item in self._sentence(sentence):
                if all(item.slot != seen.slot for seen in result):
                    result.append(item)
        return result


# --------------------------------------------------------------------------- stalls


def near_same(first: str, second: str, *, ratio: float = 0.85) -> bool:
    """Whether two agent messages say the same, up to case, punctuation and small edits."""

    def norm(text: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+", text.lower()))

    a, b = norm(first), norm(second)
    return a == b or SequenceMatcher(None, a, b, autojunk=False).ratio() >= ratio


def quote(text: str, limit: int = 160) -> str:
    """The agent's words on one line, cut to ``limit`` characters, for a stop reason."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- docs


def rules_table() -> str:
    """The README's list of what the offline user understands, from the tables above."""
    lines = ["| the agent asks to confirm, e.g. |", "|---|"]
    lines += [f"| {phrasing.example} |" for phrasing in CONFIRMATION_PHRASINGS]
    lines += ["", "| a question about | e.g. | answered from a fact when |", "|---|---|---|"]
    lines += [f"| {rule.kind} | {rule.example} | {rule.fits_when} |" for rule in SLOT_RULES]
    return "\n".join(lines)
