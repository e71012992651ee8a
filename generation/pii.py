"""PII detection and masking with typed placeholders (``[EMAIL]``, ``[PHONE]``...).

Phone numbers are found with ``phonenumbers`` (Google's libphonenumber; offline, international). The
other kinds are patterns with validation: card numbers must pass the Luhn check, IP addresses must parse
with :mod:`ipaddress`, SSNs follow the SSA's structural rules unless a label ("SSN") precedes them, and
dates of birth and medical record numbers are masked only after a label ("born on", "DOB", "MRN",
"medical record number"), so dosages, years, ages, readings and codes are left alone. Street addresses
are US-style ("221 Baker Street", "12 N Main St, Apt 4, Springfield, IL 62701"): capitalised street names
anywhere, lower-case ones only after "live at" / "address is" and the like.

The scrubber runs on raw text before any preprocessing; its placeholders match
:data:`generation.preprocess.PLACEHOLDER`, so they survive lower-casing and punctuation removal, and no
pattern matches a placeholder, so scrubbing twice changes nothing.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import phonenumbers

if TYPE_CHECKING:
    from generation.config import PiiConfig

KINDS = ("EMAIL", "PHONE", "SSN", "CARD", "IP", "DOB", "MRN", "ADDRESS")


@dataclass(frozen=True)
class PiiMatch:
    """One piece of PII: its kind and the span ``text[start:end]``."""

    kind: str
    start: int
    end: int
    text: str = ""

    @property
    def placeholder(self) -> str:
        return f"[{self.kind}]"


# ------------------------------------------------------------------------------------------ patterns

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")

_SSN_LABEL = r"(?:\bSSN\b|\bSS#|\bsocial\s+security\s*(?:number|no\.?|#)?)"
_SSN_LABELLED = re.compile(_SSN_LABEL + r"\s*(?:is|was|:|#|-|=)?\s*(?P<pii>(?<!\d)\d{3}([- ]?)\d{2}\2\d{4}(?!\d))", re.IGNORECASE)
_SSN_BARE = re.compile(r"(?<![\d-])(?P<area>\d{3})-(?P<group>\d{2})-(?P<serial>\d{4})(?![\d-]|\.\d)")  # spaced: label needed

_CARD = re.compile(
    # not the digits of a decimal fraction ("-0.3608123456789") or of a longer dotted number
    r"(?<![\d.-])(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5})(?![\d]|[ -]\d|[.,]\d)"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_VERSION_BEFORE = re.compile(r"(?:\bv|\bversion\s*|\brelease\s*)$", re.IGNORECASE)

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_DATE = (
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"  # 1985-05-12
    r"|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})"  # 12/05/1985, 5.12.85
    rf"|{_MONTH}\s+{_DAY}(?:,?\s+\d{{4}})?"  # May 12, 1985 / May 12th
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH},?(?:\s+\d{{4}})?"  # 12 May 1985 / 12th of May
    rf"|{_MONTH},?\s+\d{{4}})"  # May 1985
)
_DOB = re.compile(
    r"(?:\bborn(?:\s+on)?|\bD\.?O\.?B\b\.?|\bdate\s+of\s+birth|\bbirth\s*date|\bbirthday)"
    rf"\s*(?:is|was|:|-|=)?\s*(?P<pii>{_DATE})(?![\w/-]|\.\d)",
    re.IGNORECASE,
)
_MRN = re.compile(
    r"(?:\bMRN\b|\bMR\s*#|\bmedical\s+record\s*(?:number|no\.?|num\.?|#)?|\bpatient\s+(?:id|identifier|number)|\bchart\s+(?:number|no\.?|#))"
    r"\s*(?:is|was|:|#|-|=)?\s*#?\s*(?P<pii>(?=[A-Z0-9-]*\d[A-Z0-9-]*\d[A-Z0-9-]*\d[A-Z0-9-]*\d)[A-Z]{0,4}-?\d[A-Z0-9-]{3,}[A-Z0-9])\b",
    re.IGNORECASE,
)

_SUFFIX = (
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|ter|"
    r"circle|cir|highway|hwy|parkway|pkwy|square|sq|trail|trl|alley|plaza|crescent|close)\.?"
)
_DIRECTION = r"(?:[NSEW]\.?|North|South|East|West|Northeast|Northwest|Southeast|Southwest)"
_UNIT = r"(?:,?\s+(?i:apt|apartment|suite|ste|unit|floor|fl)\.?\s*#?\s*[A-Za-z0-9-]+|,?\s+#\s*[A-Za-z0-9-]+)?"
_CITY_STATE_ZIP = r"(?:,\s*[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+){0,2},?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?)?"
_ADDRESS = re.compile(
    rf"(?<![\w.,/-])\d{{1,6}}[A-Za-z]?\s+(?:{_DIRECTION}\s+)?(?:[A-Z][A-Za-z'.-]*|\d{{1,3}}(?:st|nd|rd|th))"
    rf"(?:\s+[A-Z][A-Za-z'.-]*){{0,3}}\s+{_SUFFIX}(?![\w])(?:\s+(?:NW|NE|SW|SE)\b)?{_UNIT}{_CITY_STATE_ZIP}"
)
_ADDRESS_LABELLED = re.compile(
    r"(?:\b(?:live|lives|living|lived|reside|resides|residing|located|stay|staying)\s+at|\baddress\s*(?:is|:))\s*"
    rf"(?P<pii>\d{{1,6}}[A-Za-z]?\s+(?:[A-Za-z'.-]+\s+){{1,4}}{_SUFFIX}(?![\w]){_UNIT}{_CITY_STATE_ZIP})",
    re.IGNORECASE,
)

# "Chapter 7 Bankruptcy Court", "Section 8 Housing Way": a numbered label, not a street number.
_LABELLED_NUMBER_BEFORE = re.compile(
    r"\b(?:chapter|ch|section|sec|title|article|art|rule|form|part|step|figure|fig|table|page|level|grade|stage|"
    r"type|phase|class|category|schedule|tier|room|act|no|number|item|paragraph|clause|amendment)\.?\s*$",
    re.IGNORECASE,
)
_PHONE_SEPARATED = re.compile(r"[\s().-]")
_DIGITS = re.compile(r"\d+")  # the same (Unicode) digits the detectors' patterns match

# Cheap pre-checks, so that most model replies (no digits, no "@") skip the expensive detectors: every kind
# but EMAIL needs digits (IPv6 written with letters only needs two colons instead); these are the fewest a
# match holds (a phone number: 4, the shortest national number in libphonenumber's metadata).
_MIN_DIGITS = {"SSN": 9, "CARD": 13, "MRN": 4, "DOB": 1, "PHONE": 4, "ADDRESS": 1}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _ssn_structure_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    return area not in {"000", "666"} and not area.startswith("9") and group != "00" and serial != "0000"


def _labelled(pattern: re.Pattern[str], kind: str, text: str) -> Iterable[PiiMatch]:
    for match in pattern.finditer(text):
        yield PiiMatch(kind, match.start("pii"), match.end("pii"))


def _emails(text: str) -> Iterable[PiiMatch]:
    for match in _EMAIL.finditer(text):
        yield PiiMatch("EMAIL", match.start(), match.end())


def _ssns(text: str) -> Iterable[PiiMatch]:
    yield from _labelled(_SSN_LABELLED, "SSN", text)
    for match in _SSN_BARE.finditer(text):
        if _ssn_structure_valid(match["area"], match["group"], match["serial"]):
            yield PiiMatch("SSN", match.start(), match.end())


def _cards(text: str) -> Iterable[PiiMatch]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield PiiMatch("CARD", match.start(), match.end())


def _ips(text: str) -> Iterable[PiiMatch]:
    for match in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text[max(0, match.start() - 10) : match.start()]):
            continue
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(match.group(0))
        except ValueError:
            continue
        if not (address.is_loopback or address.is_unspecified):  # 127.0.0.1, 0.0.0.0 identify no one
            yield PiiMatch("IP", match.start(), match.end())
    for match in _IPV6.finditer(text):
        candidate = match.group(0)
        if not re.search(r"[0-9A-Fa-f]", candidate):
            continue
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        if not (address.is_loopback or address.is_unspecified):
            yield PiiMatch("IP", match.start(), match.end())


def _phones(text: str, regions: tuple[str, ...]) -> Iterable[PiiMatch]:
    # VALID numbers in any configured region (national formats); plus numbers that are only *possible*
    # (e.g. the fictional 555 exchange) when written like a phone number: 10+ digits with separators,
    # or a leading "+". Bare digit runs and short ranges ("500-1000 mg") need the VALID match.
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            raw = match.raw_string
            digits = sum(ch.isdigit() for ch in raw)
            shaped = raw.startswith("+") and digits >= 8 or digits >= 10 and _PHONE_SEPARATED.search(raw)
            if shaped or phonenumbers.is_valid_number(match.number):
                yield PiiMatch("PHONE", match.start, match.end)


def _addresses(text: str) -> Iterable[PiiMatch]:
    yield from _labelled(_ADDRESS_LABELLED, "ADDRESS", text)
    for match in _ADDRESS.finditer(text):
        if not _LABELLED_NUMBER_BEFORE.search(text[max(0, match.start() - 12) : match.start()]):
            yield PiiMatch("ADDRESS", match.start(), match.end())


# ------------------------------------------------------------------------------------------ scrubber


class Scrubber:
    """A compiled PII policy: which kinds to mask, phone regions and extra ``KIND: regex`` patterns.

    An extra pattern masks its whole match, or only its named group ``pii`` when it has one (so a label
    such as "case no." can stay in the text).
    """

    def __init__(self, kinds: Iterable[str] = KINDS, phone_regions: Iterable[str] = ("US",), extra_patterns: dict[str, str] | None = None):
        self.kinds = tuple(kind for kind in KINDS if kind in set(kinds))
        self.phone_regions = tuple(phone_regions)
        self.extra = [(kind, re.compile(pattern)) for kind, pattern in (extra_patterns or {}).items()]
        self._order = [k for k in ("EMAIL", "SSN", "MRN", "DOB", "CARD", "IP", "PHONE", "ADDRESS") if k in self.kinds]

    def _possible_kinds(self, text: str) -> set[str]:
        """The kinds ``text`` could hold at all (a cheap pre-check; most model replies have no digits)."""
        digits = sum(map(len, _DIGITS.findall(text)))
        possible = {kind for kind, least in _MIN_DIGITS.items() if digits >= least} if digits else set()
        if "@" in text:
            possible.add("EMAIL")
        if digits or text.count(":") >= 2:
            possible.add("IP")
        return possible

    def find(self, text: str) -> list[PiiMatch]:
        """Non-overlapping PII spans in ``text``, in text order (earlier kinds in :data:`KINDS` win overlaps)."""
        if not text:
            return []
        possible = self._possible_kinds(text)
        if not possible and not self.extra:
            return []
        finders = {
            "EMAIL": lambda: _emails(text),
            "SSN": lambda: _ssns(text),
            "MRN": lambda: _labelled(_MRN, "MRN", text),
            "DOB": lambda: _labelled(_DOB, "DOB", text),
            "CARD": lambda: _cards(text),
            "IP": lambda: _ips(text),
            "PHONE": lambda: _phones(text, self.phone_regions),
            "ADDRESS": lambda: _addresses(text),
        }
        # Labelled kinds first: "SSN 123456789" is an SSN even though its digits could be a phone number.
        order = self._order
        candidates: list[tuple[int, PiiMatch]] = []
        for priority, kind in enumerate(order):
            if kind in possible:
                candidates.extend((priority, m) for m in finders[kind]())
        for priority, (kind, pattern) in enumerate(self.extra, start=len(order)):
            for match in pattern.finditer(text):
                group = "pii" if "pii" in pattern.groupindex else 0
                if match.end(group) > match.start(group):
                    candidates.append((priority, PiiMatch(kind, match.start(group), match.end(group))))
        chosen: list[PiiMatch] = []
        for _, match in sorted(candidates, key=lambda c: (c[0], -(c[1].end - c[1].start), c[1].start)):
            if all(match.end <= other.start or match.start >= other.end for other in chosen):
                chosen.append(match)
        return [PiiMatch(m.kind, m.start, m.end, text[m.start : m.end]) for m in sorted(chosen, key=lambda m: m.start)]

    def scrub(self, text: str) -> tuple[str, Counter[str]]:
        """``text`` with every PII span replaced by its typed placeholder, and the count per kind."""
        matches = self.find(text)
        if not matches:
            return text, Counter()
        counts: Counter[str] = Counter(m.kind for m in matches)
        pieces, last = [], 0
        for match in matches:
            pieces.append(text[last : match.start])
            pieces.append(match.placeholder)
            last = match.end
        pieces.append(text[last:])
        return "".join(pieces), counts


_DEFAULT = Scrubber()


def find_pii(text: str) -> list[PiiMatch]:
    """PII in ``text`` under the default policy (every kind, US phone numbers plus international ones)."""
    return _DEFAULT.find(text)


def scrub(text: str, kinds: Iterable[str] | None = None, phone_regions: Iterable[str] = ("US",), extra_patterns: dict[str, str] | None = None) -> tuple[str, Counter[str]]:
    """Mask PII in ``text`` with typed placeholders; returns the new text and the count per kind."""
    if kinds is None and tuple(phone_regions) == ("US",) and not extra_patterns:
        return _DEFAULT.scrub(text)
    return Scrubber(KINDS if kinds is None else kinds, phone_regions, extra_patterns).scrub(text)


@lru_cache(maxsize=16)
def _scrubber_from_json(policy: str) -> Scrubber:
    data = json.loads(policy)
    return Scrubber(data["kinds"], data["phone_regions"], data["extra_patterns"])


def scrubber_for(pii: "PiiConfig") -> Scrubber | None:
    """The scrubber a config asks for, or None when ``privacy.pii.enabled`` is false."""
    if not pii.enabled:
        return None
    return _scrubber_from_json(json.dumps(pii.model_dump(mode="json", exclude={"enabled"}), sort_keys=True))


def scrub_texts(texts: Iterable[Any], scrubber: Scrubber | None) -> tuple[list[Any], Counter[str]]:
    """Scrub each text of a column (non-strings pass through); returns the rows and the total counts."""
    total: Counter[str] = Counter()
    rows = []
    for text in texts:
        if scrubber is not None and isinstance(text, str):
            text, counts = scrubber.scrub(text)
            total.update(counts)
        rows.append(text)
    return rows, total


def scrub_reply(scrubber: Scrubber | None, client: Any, request: Any, result: Any) -> tuple[str, Counter[str]]:
    """Scrub a model reply as it enters a step; returns the text and what was masked in it.

    The request cache stores replies already scrubbed (with the counts), so a reply served from the
    cache reports the counts recorded when it was first generated: a resumed run reports the same figures.
    A fresh reply that the client's cache has just scrubbed with this same scrubber is not scrubbed again:
    the text and counts the cache stored are used (``ChatResult.scrubbed``).
    """
    if scrubber is None:
        return result.text, Counter()
    cache = getattr(client, "cache", None)
    stored = getattr(result, "scrubbed", None)
    cached = getattr(result, "cached", False)
    if stored is not None and not cached and getattr(cache, "scrubber", None) is scrubber:
        return stored[0], Counter(stored[1])
    text, counts = scrubber.scrub(result.text)
    if cached and cache is not None:
        counts.update(stored[1] if stored is not None else cache.masked_counts(client.cache_key(request)))
    return text, counts


def summarise_counts(*parts: dict[str, int] | None) -> dict[str, int]:
    """Add per-kind counts, sorted by kind."""
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part or {})
    return dict(sorted((k, v) for k, v in total.items() if v))


def privacy_summary(enabled: bool, stages: dict[str, Any]) -> dict[str, Any]:
    """The run summary's ``privacy`` section: what was masked where, per kind, from the stage figures."""
    questions = stages.get("questions") if isinstance(stages.get("questions"), dict) else {}
    responses = stages.get("responses") if isinstance(stages.get("responses"), dict) else {}
    masked = {
        "input_questions": summarise_counts(stages.get("pii_masked_input"), responses.get("pii_masked_input")),
        "generated_questions": summarise_counts(questions.get("pii_masked")),
        "answers": summarise_counts(responses.get("pii_masked")),
    }
    return {"pii_enabled": enabled, "masked": masked, "masked_total": summarise_counts(*masked.values())}
