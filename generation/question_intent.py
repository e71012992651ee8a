"""Is a question informational? One rule for the generation filter and the evaluator.

A dataset question must ask about the world. :func:`not_informational` says why one does not: it is
addressed to the assistant or the reader (their service, identity, opinion or own situation), chit-chat,
conversation management, meta text, or it has no content word at all. The cues are grammatical (person,
aspect, speech act) and live in ``configs/eval/not_informational.yaml``; the generation filter
(``steps/questions.check_question``, reason ``addressed_to_reader``) and the evaluator
(``question_not_informational``) both call this function, so a question one rejects the other flags.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from generation.config import BUNDLED_CONFIGS, read_yaml_mapping
from generation.errors import ConfigError

RULES_FILE = BUNDLED_CONFIGS / "eval" / "not_informational.yaml"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class IntentRules:
    """Compiled cue patterns by category, and the words that carry no information need."""

    categories: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]
    empty_words: frozenset[str]


@functools.lru_cache(maxsize=4)
def load_rules(path: Path = RULES_FILE) -> IntentRules:
    """The rules of ``path`` (default: the bundled ``configs/eval/not_informational.yaml``)."""
    data = read_yaml_mapping(path)
    categories = []
    for name, patterns in (data.get("categories") or {}).items():
        try:
            categories.append((str(name), tuple(re.compile(p, re.IGNORECASE) for p in patterns or [])))
        except re.error as exc:
            raise ConfigError(f"{path}: categories.{name}: invalid regular expression: {exc}") from None
    return IntentRules(tuple(categories), frozenset(str(data.get("empty_words") or "").split()))


# Contractions as they look after the pipeline's preprocessing strips punctuation ("you'd" -> "youd").
_BARE_CONTRACTIONS = {
    "youd": "you would", "youre": "you are", "youve": "you have", "youll": "you will", "whats": "what is",
    "hows": "how is", "im": "i am", "ive": "i have", "id": "i would", "ill": "i will", "dont": "do not",
    "doesnt": "does not", "didnt": "did not", "cant": "can not", "wont": "will not", "isnt": "is not",
    "arent": "are not", "wasnt": "was not", "werent": "were not", "wouldnt": "would not", "couldnt": "could not",
    "shouldnt": "should not", "havent": "have not", "hasnt": "has not", "lets": "let us", "thats": "that is",
}  # fmt: skip
_BARE = re.compile(r"\b(" + "|".join(_BARE_CONTRACTIONS) + r")\b", re.IGNORECASE)


def plain(text: str) -> str:
    """The text with typographic apostrophes made plain and bare contractions ("youd", "whats") spelled out."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").strip()
    return _BARE.sub(lambda m: _BARE_CONTRACTIONS[m.group(0).lower()], text)


def not_informational(question: str, extra_patterns: Iterable[re.Pattern[str]] = (), rules: IntentRules | None = None) -> str | None:
    """Why ``question`` is not an informational question (``category: matched text``), or None.

    ``extra_patterns`` (e.g. a domain pack's addressed-to-reader patterns) count as one more category.
    """
    rules = rules or load_rules()
    text = plain(question)
    tokens = _WORD.findall(text.lower())
    if len(tokens) < 2:
        return "no_content: fewer than 2 words"
    if all(token in rules.empty_words for token in tokens):
        return f"no_content: no content word in {text[:60]!r}"
    for name, patterns in rules.categories:
        for pattern in patterns:
            match = pattern.search(text)
            if match:
                return f"{name}: {match.group(0).strip()}"
    for pattern in extra_patterns:
        match = pattern.search(text)
        if match:
            return f"pattern: {match.group(0).strip()}"
    return None
