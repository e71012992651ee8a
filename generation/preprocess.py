"""Pure text clean-up of seed questions.

Steps run in the order the config lists them. Typed placeholders such as ``[EMAIL]`` (written by the PII
scrubber, which runs on the raw text first) survive lower-casing and punctuation removal.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
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


def _row_key(text: str) -> int:
    """A compact 64-bit hash of a row for duplicate detection (a collision is ~1e-8 likely at 1M rows)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class SeenHashes:
    """A set of 64-bit row hashes in ~8 bytes each: recent ones in a Python set, older ones merged into a
    sorted NumPy array every ``spill_at`` additions."""

    def __init__(self, spill_at: int = 1 << 16):
        import numpy as np

        self._np = np
        self.spill_at = spill_at
        self.recent: set[int] = set()
        self.frozen = np.empty(0, dtype=np.uint64)

    def add(self, key: int) -> bool:
        """Add ``key``; False if it was already there."""
        if key in self.recent:
            return False
        if self.frozen.size:
            value = self._np.uint64(key)
            index = int(self._np.searchsorted(self.frozen, value))
            if index < self.frozen.size and self.frozen[index] == value:
                return False
        self.recent.add(key)
        if len(self.recent) >= self.spill_at:
            # Keys in `recent` are distinct and absent from `frozen`, so a concatenation and a sort suffice.
            merged = self._np.concatenate((self.frozen, self._np.fromiter(self.recent, dtype=self._np.uint64, count=len(self.recent))))
            merged.sort()
            self.frozen, self.recent = merged, set()
        return True


def iter_preprocess(questions: Iterable[str | None], steps: list[str], report: PreprocessReport) -> Iterator[str]:
    """Run the configured steps row by row, in order, yielding the rows kept and filling ``report``.

    Gives the same rows and counts as running each step over the whole column in turn, but holds only one
    row and, for ``drop_duplicates``, about 8 bytes per distinct row (:class:`SeenHashes`).
    """
    for step in steps:
        if step not in TEXT_STEPS and step not in ROW_STEPS:
            raise ValueError(f"unknown preprocessing step {step!r}")
        if step in ROW_STEPS:
            report.removed.setdefault(step, 0)
    seen = {position: SeenHashes() for position, step in enumerate(steps) if step == "drop_duplicates"}
    for question in questions:
        report.rows_in += 1
        row = "" if question is None else str(question)
        for position, step in enumerate(steps):
            if step == "drop_empty":
                if not row.strip():
                    report.removed[step] += 1
                    break
            elif step == "drop_duplicates":
                if not seen[position].add(_row_key(row)):
                    report.removed[step] += 1
                    break
            else:
                row = TEXT_STEPS[step](row)
        else:
            report.rows_out += 1
            yield row


def preprocess_questions(questions: Iterable[str | None], steps: list[str]) -> tuple[list[str], PreprocessReport]:
    """Run the configured steps over the questions, in order; returns the rows kept and a report."""
    report = PreprocessReport()
    rows = list(iter_preprocess(questions, steps, report))
    return rows, report


def normalise_question(text: str, steps: list[str]) -> str:
    """Apply only the text-rewriting steps (used on generated questions)."""
    for step in steps:
        if step in TEXT_STEPS:
            text = TEXT_STEPS[step](text)
    return text
