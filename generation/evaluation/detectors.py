"""Rule- and statistics-based defect detectors over text (no model needed).

Patterns come from ``configs/eval/defaults.yaml`` plus the run's ``evaluation.patterns`` (see
:func:`load_patterns`). Every function here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from generation.config import BUNDLED_CONFIGS, EvaluationConfig, read_yaml_mapping
from generation.errors import ConfigError

DEFAULTS_FILE = BUNDLED_CONFIGS / "eval" / "defaults.yaml"
PATTERN_KINDS = ("self_correction", "contradiction", "not_informational", "prompt_injection", "absurd")

# Negation cues; a closed grammatical class of English, used for stance and contradiction checks.
NEGATIONS = frozenset(
    "not no never cannot can't cant don't dont doesn't doesnt isn't isnt aren't arent won't wont wasn't "
    "weren't shouldn't wouldn't couldn't hasn't haven't didn't neither nor none nothing without".split()
)
# Closed-class function words and number words (grammar, not domain content).
FUNCTION_WORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that these "
    "those there their they them he she his her we our you your i my me which who whom whose what when where how why "
    "do does did has have had can could may might will would should must shall also often usually very more most "
    "each every any some such than then so because while about into over after before during".split()
)
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty sixty "
    "hundred thousand million half once twice daily weekly monthly yearly".split()
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CLAUSE = re.compile(r"[,;:]|\b(?:so|because|but|although|though|while|which|and)\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (apostrophes kept inside words)."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def sentences(text: str) -> list[str]:
    """Split text into sentences on ., ! and ? followed by space."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


@dataclass(frozen=True)
class Patterns:
    """Compiled detector patterns by kind."""

    compiled: dict[str, tuple[re.Pattern[str], ...]]

    def find(self, kind: str, text: str) -> str | None:
        """The first matching text of a pattern of ``kind``, or None."""
        for pattern in self.compiled.get(kind, ()):
            match = pattern.search(text)
            if match:
                return match.group(0)
        return None


def load_patterns(cfg: EvaluationConfig, extra_not_informational: Iterable[str] = (), defaults_file: Path = DEFAULTS_FILE) -> Patterns:
    """Default patterns plus the config's additions (and e.g. the domain's addressed-to-reader filters)."""
    defaults = read_yaml_mapping(defaults_file).get("patterns") or {}
    compiled: dict[str, tuple[re.Pattern[str], ...]] = {}
    for kind in PATTERN_KINDS:
        items = list(defaults.get(kind) or []) + list(getattr(cfg.patterns, kind))
        if kind == "not_informational":
            items += list(extra_not_informational)
        try:
            compiled[kind] = tuple(re.compile(p, re.IGNORECASE) for p in items)
        except re.error as exc:
            raise ConfigError(f"{defaults_file}: patterns.{kind}: invalid regular expression: {exc}") from None
    return Patterns(compiled)


# ------------------------------------------------------------------------------------- single texts


def self_contradiction(text: str, patterns: Patterns) -> str | None:
    """Evidence that an answer contradicts itself, or None.

    Three cues: an answer opening with "Yes," whose first clause is negated ("Yes, a CT scan cannot detect
    it"); two sentences that say the same thing except for a negation ("It is contagious. It is not
    contagious."); or an explicit contradiction pattern from config.
    """
    found = patterns.find("contradiction", text)
    if found:
        return found
    first = sentences(text)[0] if text.strip() else ""
    match = re.match(r"\s*yes\b[,.!:;]?\s*(.*)", first, re.IGNORECASE)
    if match:
        clause = re.split(r"\b(?:but|although|though|however|except|unless|while|if)\b|[,;:]", match.group(1), maxsplit=1)[0]
        if any(w in NEGATIONS for w in words(clause)):
            return first[:120]
    clauses = [words(c) for s in sentences(text) for c in _CLAUSE.split(s) if c.strip()]
    for i, a in enumerate(clauses):
        for b in clauses[i + 1 :]:
            core_a = [w for w in a if w not in NEGATIONS]
            core_b = [w for w in b if w not in NEGATIONS]
            neg_a = sum(w in NEGATIONS for w in a) % 2
            neg_b = sum(w in NEGATIONS for w in b) % 2
            if neg_a != neg_b and len(core_a) >= 3 and core_a == core_b:
                return " ".join(b)[:120]
    return None


def stance_differs(a: str, b: str, max_swap: int = 3) -> str | None:
    """How two similar answers differ in a way a similarity score misses, or None.

    Cues: negation polarity; the numbers they state (digits or number words); or a minimal edit, where
    each side has a few content words the other lacks (``skin`` -> ``liver``): the mark of a hard negative.
    A paraphrase rewords more than ``max_swap`` words; a restatement only adds words on one side.
    """
    wa, wb = words(a), words(b)
    if sum(w in NEGATIONS for w in wa) % 2 != sum(w in NEGATIONS for w in wb) % 2:
        return "negation"
    nums_a = set(re.findall(r"\d+(?:\.\d+)?", a)) | (set(wa) & NUMBER_WORDS)
    nums_b = set(re.findall(r"\d+(?:\.\d+)?", b)) | (set(wb) & NUMBER_WORDS)
    if nums_a != nums_b:
        return "numbers"
    content_a = set(wa) - FUNCTION_WORDS - NEGATIONS
    content_b = set(wb) - FUNCTION_WORDS - NEGATIONS
    only_a, only_b = content_a - content_b, content_b - content_a
    if 1 <= len(only_a) <= max_swap and 1 <= len(only_b) <= max_swap:
        return f"swapped {sorted(only_a)} -> {sorted(only_b)}"
    return None


def not_informational(question: str, patterns: Patterns) -> str | None:
    """Why a prompt is not an informational question (addressed to the reader, chit-chat, meta text), or None."""
    if len(words(question)) < 2:
        return "fewer than 2 words"
    return patterns.find("not_informational", question)


def pii_kinds(text: str) -> list[str]:
    """Kinds of personal data found in ``text`` by :func:`generation.pii.find_pii`."""
    from generation.pii import find_pii  # written alongside; imported lazily so the rest works without it

    return sorted({match.kind for match in find_pii(text)})


# -------------------------------------------------------------------------------------- collections


def shingles(text: str, n: int = 2) -> set[str]:
    """Word n-grams of a text (single words for texts shorter than n)."""
    tokens = words(text)
    if len(tokens) < n:
        return set(tokens)
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def near_duplicate_clusters(texts: Sequence[str], threshold: float, num_perm: int = 128, seed: int = 1) -> list[int]:
    """Cluster id per text: texts whose estimated word-bigram Jaccard is >= threshold share a cluster (MinHash LSH,
    :func:`generation.dedup.jaccard_clusters`). The cluster id is the index of its first member, so
    ``cluster[i] != i`` marks a later duplicate."""
    from generation.dedup import jaccard_clusters

    return jaccard_clusters(texts, threshold, key=lambda text: " ".join(words(text)), grams=shingles, num_perm=num_perm, seed=seed)


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams over the texts (0 when there are none)."""
    total, unique = 0, set()
    for text in texts:
        tokens = words(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def ngram_set(texts: Iterable[str], n: int) -> set[tuple[str, ...]]:
    """All word n-grams of the texts."""
    grams: set[tuple[str, ...]] = set()
    for text in texts:
        tokens = words(text)
        grams.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


def contamination(text: str, reference: set[tuple[str, ...]], n: int) -> float:
    """Share of the text's word n-grams that occur in the reference set (0 when it has none)."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return sum(g in reference for g in grams) / len(grams)
