"""Helpers shared by the LLM steps: prompt rendering, seeds, output clean-up and dropped-row records."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from generation.config import ChatTemplate

_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)(?=\s|$)")
_WRAPPERS = "\"'“”‘’`*_ "


def derive_seed(run_seed: int, *parts: object) -> int:
    """A stable 31-bit seed for one choice or request, derived from the run seed and labels."""
    text = ":".join([str(run_seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


_DELIMITER_TAG = re.compile(r"<\s*(/?)\s*question\s*>", re.IGNORECASE)


def render_messages(template: ChatTemplate, **values: str) -> list[dict[str, str]]:
    """Fill a chat template; values are inserted verbatim (braces in them are not interpreted), except that
    a ``<question>``/``</question>`` tag inside a value becomes ``[question]``/``[/question]``, so data can
    never close the tags the templates wrap it in (prompt injection)."""
    values = {key: _DELIMITER_TAG.sub(r"[\1question]", value) for key, value in values.items()}
    messages = []
    if template.system:
        messages.append({"role": "system", "content": template.system.format(**values)})
    messages.append({"role": "user", "content": template.user.format(**values)})
    return messages


@lru_cache(maxsize=256)
def compile_patterns(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def first_match(text: str, patterns: list[str]) -> str | None:
    """The first configured pattern that matches ``text``, or None."""
    for pattern in compile_patterns(tuple(patterns)):
        if pattern.search(text):
            return pattern.pattern
    return None


def strip_preamble(text: str, patterns: list[str]) -> str:
    """Remove leading labels such as "Answer:" or "Here's a new question:" and wrapping quotes."""
    compiled = compile_patterns(tuple(patterns))
    changed = True
    text = text.strip()
    while changed and text:
        changed = False
        for pattern in compiled:
            match = pattern.match(text)
            if match and match.end() > 0:
                text = text[match.end() :].strip()
                changed = True
        stripped = text.strip(_WRAPPERS)
        if stripped != text and stripped:
            # strip wrapping quotes/markdown only when they wrap the whole text
            if text[0] in _WRAPPERS and text[-1] in _WRAPPERS:
                text = stripped
                changed = True
    return text


def word_count(text: str) -> int:
    return len(text.split())


def trim_to_sentences(text: str, max_words: int, truncated: bool) -> str:
    """Bound an answer to ``max_words`` and, if it was cut off, end it at the last full sentence."""
    words = text.split()
    if len(words) > max_words:
        text = " ".join(words[:max_words])
        truncated = True
    if truncated:
        ends = [m.end() for m in _SENTENCE_END.finditer(text)]
        if ends:
            text = text[: ends[-1]]
    return text.strip()


@dataclass
class DroppedRow:
    """A candidate the pipeline threw away, and why; written to ``dropped.csv``."""

    stage: str
    reason: str
    text: str
    question: str
    modification: str
    attempt: int
    detail: str = ""

    FIELDS = ("stage", "reason", "text", "question", "modification", "attempt", "detail")

    def as_row(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.FIELDS}
