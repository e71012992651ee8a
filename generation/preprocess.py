"""Pure text clean-up of seed questions.

Steps run in the order the config lists them. Typed placeholders such as ``[EMAIL]`` (written by the PII
scrubber, which runs on the raw text first) survive lower-casing and punctuation removal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]")
_APOSTROPHES = re.compile(r"['’ʼ`]")
_WHITESPACE = re.compile(r"\s+")


def _outside_placeholders(text: str, transform: Callable[[str], str]) -> str:
    """Apply ``transform`` to the text between placeholders, leaving placeholders untouched."""
    pieces: list[str] = []
    last = 0
    for match in PLACEHOLDER.finditer(text):
        pieces.append(transform(text[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(transform(text[last:]))
    return "".join(pieces)


def lowercase(text: str) -> str:
    """Lower-case everything except placeholders."""
    return _outside_placeholders(text, str.lower)


def _drop_punctuation(segment: str) -> str:
    # Apostrophes join their word ("what's" -> "whats"); other punctuation and symbols separate words
    # ("covid-19" -> "covid 19"), as search queries are usually written.
    segment = _APOSTROPHES.sub("", segment)
    return "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in segment)


def strip_punctuation(text: str) -> str:
    """Remove punctuation and symbols except inside placeholders."""
    return _outside_placeholders(text, _drop_punctuation)


def normalise_whitespace(text: str) -> str:
    """Collapse runs of whitespace (including newlines and tabs) and trim."""
    return _WHITESPACE.sub(" ", text).strip()


TEXT_STEPS: dict[str, Callable[[str], str]] = {
    "lowercase": lowercase,
    "strip_punctuation": strip_punctuation,
    "normalise_whitespace": normalise_whitespace,
}
ROW_STEPS = {"drop_empty", "drop_duplicates"}


@dataclass
class PreprocessReport:
    """What preprocessing did: rows in/out and rows removed by each step."""

    rows_in: int = 0
    rows_out: int = 0
    removed: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "removed": dict(self.removed)}


def preprocess_questions(questions: Iterable[str | None], steps: list[str]) -> tuple[list[str], PreprocessReport]:
    """Run the configured steps over the questions, in order; returns the rows kept and a report."""
    rows = ["" if q is None else str(q) for q in questions]
    report = PreprocessReport(rows_in=len(rows))
    for step in steps:
        if step in TEXT_STEPS:
            rows = [TEXT_STEPS[step](row) for row in rows]
        elif step == "drop_empty":
            kept = [row for row in rows if row.strip()]
            report.removed[step] = len(rows) - len(kept)
            rows = kept
        elif step == "drop_duplicates":
            seen: set[str] = set()
            kept = []
            for row in rows:
                if row not in seen:
                    seen.add(row)
                    kept.append(row)
            report.removed[step] = len(rows) - len(kept)
            rows = kept
        else:
            raise ValueError(f"unknown preprocessing step {step!r}")
    report.rows_out = len(rows)
    return rows, report


def normalise_question(text: str, steps: list[str]) -> str:
    """Apply only the text-rewriting steps (used on generated questions)."""
    for step in steps:
        if step in TEXT_STEPS:
            text = TEXT_STEPS[step](text)
    return text
