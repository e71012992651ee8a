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
from generation.evaluation.stance import NEGATIONS, sentences, words

DEFAULTS_FILE = BUNDLED_CONFIGS / "eval" / "defaults.yaml"
PATTERN_KINDS = ("self_correction", "self_correction_if_correct", "contradiction", "not_informational", "prompt_injection", "absurd")

_CLAUSE = re.compile(r"[,;:]|\b(?:so|because|but|although|though|while|which|and)\b")


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


def self_correction(rejected: str, chosen: str, patterns: Patterns, overlap_min: float = 0.4) -> str | None:
    """Evidence that the rejected answer retracts itself or gives the right answer after all, or None.

    A ``self_correction`` pattern is enough ("Just kidding", "Correct answer:"); an ambiguous marker
    (``self_correction_if_correct``: "In reality", "Actually,") counts when the text after it restates the
    chosen answer (``overlap_min`` of its content words occur there).
    """
    from generation.evaluation.stance import content_stems

    found = patterns.find("self_correction", rejected)
    if found:
        return found
    chosen_stems = set(content_stems(chosen))
    for pattern in patterns.compiled.get("self_correction_if_correct", ()):
        for match in pattern.finditer(rejected):
            after = set(content_stems(rejected[match.end() : match.end() + 300]))
            if after and len(after & chosen_stems) / len(after) >= overlap_min:
                return f"{match.group(0)} ... (then restates the chosen answer)"
    return None


def before_correction(text: str, patterns: Patterns, min_words: int = 3) -> str:
    """The text before its first self-correction marker ("Gout is caused by tight shoes." of "Gout is caused by
    tight shoes. This answer is incorrect; ..."), or the whole text when the marker leaves fewer than ``min_words``
    words before it."""
    starts = [m.start() for kind in ("self_correction", "self_correction_if_correct") for p in patterns.compiled.get(kind, ()) for m in [p.search(text)] if m]
    if not starts:
        return text
    head = text[: min(starts)].rstrip(" ,;:-(\n")
    return head if len(words(head)) >= min_words else text


def self_contradiction(text: str, patterns: Patterns, question: str = "") -> str | None:
    """Evidence that an answer contradicts itself, or None.

    Cues: an answer opening with "Yes," whose first clause is negated ("Yes, a CT scan cannot detect it"), or
    with "No," whose first clause restates the question's claim un-negated ("Are index funds actively
    managed?" - "No, index funds are actively managed"); two clauses that say the same thing except for a
    negation ("It is contagious. It is not contagious."); or an explicit contradiction pattern from config.
    """
    from generation.evaluation.stance import content_stems

    found = patterns.find("contradiction", text)
    if found:
        return found
    first = sentences(text)[0] if text.strip() else ""
    match = re.match(r"\s*(yes|no)\b[,.!:;]?\s*(.*)", first, re.IGNORECASE)
    if match:
        clause = re.split(r"\b(?:but|although|though|however|except|unless|while|if)\b|[,;:]", match.group(2), maxsplit=1)[0]
        negated = any(w in NEGATIONS for w in words(clause))
        if match.group(1).lower() == "yes" and negated:
            return first[:120]
        asked = set(content_stems(question))
        if match.group(1).lower() == "no" and not negated and len(asked) >= 2 and asked <= set(content_stems(clause)):
            return first[:120]
    clauses = [_clause_core(c) for s in sentences(text) for c in _CLAUSE.split(s) if c.strip()]
    for i, (core_a, neg_a, text_a) in enumerate(clauses):
        for core_b, neg_b, text_b in clauses[i + 1 :]:
            if neg_a != neg_b and min(len(core_a), len(core_b)) >= 3 and (core_a <= core_b or core_b <= core_a):
                return text_b[:120]  # the same claim, one side negated (or one qualified)
    return opposite_clauses(text)


def opposite_clauses(text: str) -> str | None:
    """Two clauses of one text about the same things (two or more shared content words) that use opposite
    words ("alcohol is safe with X, but alcohol with X is dangerous") or negate the same word, or None. For opposite
    words, a clause opening with a pronoun ("... and it is shrinking") shares the earlier clause's subject, unless
    it is a dummy subject ("it is best to"); an opposite word under a negation ("not incorrect") says the same as the
    other, not its opposite."""
    from generation.evaluation.stance import content_stems, lexicon_stems, load_lexicon, negated_stems, negation_flip

    lexicon = load_lexicon()
    parts = [c for s in sentences(text) for c in re.split(r"[,;:]|\b(?:and|but|although|though|while|whereas|yet)\b", s) if c.strip()]
    stems = [set(content_stems(c)) for c in parts]
    opposable = [stems[k] | lexicon_stems(c, lexicon) for k, c in enumerate(parts)]
    negated = [negated_stems(c, 2) for c in parts]
    for i in range(len(parts)):
        for j in range(i + 1, min(len(parts), i + 3)):  # neighbouring clauses
            shared = len(stems[i] & stems[j])
            refers_back = bool(_REFERS_BACK.match(parts[j])) and not _DUMMY_SUBJECT.match(parts[j])
            if shared + refers_back < 2:
                continue  # not about the same things
            only_i, only_j = opposable[i] - opposable[j], opposable[j] - opposable[i]
            pair = next(((x, y) for x in sorted(only_i) for y in sorted(only_j) if lexicon.flipped(x, y, negated[i], negated[j])), None)
            # not with a pronoun alone: "X does not raise A in most people, but it can raise A in some" is a hedge
            flipped = negation_flip(parts[i], parts[j], stems[i], stems[j]) if shared >= 2 else None
            if pair or flipped:
                why = f"{pair[0]}/{pair[1]}" if pair else f"{flipped!r} negated in one only"
                return f"{parts[i].strip()[:60]} / {parts[j].strip()[:60]} ({why})"
    return None


_REFERS_BACK = re.compile(r"\s*(it|they)\b", re.IGNORECASE)
# "it is best to", "it's important that", "it can be hard to": "it" stands for what follows, not an earlier subject
_DUMMY_SUBJECT = re.compile(r"\s*it(?:'s| is| was| can be| may be| might be| would be| will be)\s+(?:\w+\s+){0,2}?(?:to|that)\b", re.IGNORECASE)


_CONTRACTED = {"cannot": "can", "can't": "can", "cant": "can", "won't": "will", "wont": "will", "don't": "do", "dont": "do",
               "doesn't": "does", "doesnt": "does", "didn't": "did", "isn't": "is", "isnt": "is", "aren't": "are",
               "arent": "are", "wasn't": "was", "weren't": "were", "shouldn't": "should", "wouldn't": "would",
               "couldn't": "could", "hasn't": "has", "haven't": "have"}  # fmt: skip
_SUPPORT_VERBS = frozenset("do does did a an the".split())


def _clause_core(clause: str) -> tuple[frozenset[str], int, str]:
    """A clause as (stems without negations and support verbs, negation parity, its words)."""
    from generation.evaluation.stance import stem

    tokens = words(clause)
    parity = sum(t in NEGATIONS for t in tokens) % 2
    core = [_CONTRACTED.get(t, t) for t in tokens if t not in NEGATIONS or t in _CONTRACTED]
    return frozenset(stem(t) for t in core if t not in _SUPPORT_VERBS), parity, " ".join(tokens)


def not_informational(question: str, patterns: Patterns) -> str | None:
    """Why a prompt is not an informational question: the shared rule (:mod:`generation.question_intent`) plus
    the config's and the domain's extra patterns; None when it is one."""
    from generation.question_intent import not_informational as rule

    return rule(question, patterns.compiled.get("not_informational", ()))


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
