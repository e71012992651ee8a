"""The near-duplicate index: the old decisions while small, LSH recall against the exact scan when large."""

from __future__ import annotations

import csv
import random

from rapidfuzz import fuzz, process

from conftest import REPO
from generation.dedup import NearDuplicateIndex
from generation.preprocess import normalise_question

STEPS = ["lowercase", "strip_punctuation", "normalise_whitespace"]


def sample_questions() -> list[str]:
    """The real questions shipped with every domain pack (healthcare, law, finance, engineering)."""
    questions = []
    for path in sorted((REPO / "configs" / "samples").glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as handle:
            questions += [normalise_question(row["question"], STEPS) for row in csv.DictReader(handle)]
    return questions


def perturb(rng: random.Random, text: str, vocabulary: list[str]) -> str:
    """One or two word-level edits or a typo: what near-duplicate rewrites of a question look like."""
    words = text.split()
    for _ in range(rng.choice((1, 1, 2))):
        i = rng.randrange(len(words))
        op = rng.random()
        if op < 0.35:
            words[i] = rng.choice(vocabulary)
        elif op < 0.55 and len(words) > 3:
            del words[i]
        elif op < 0.75:
            words.insert(i, rng.choice(vocabulary))
        else:
            letters = list(words[i])
            letters[rng.randrange(len(letters))] = rng.choice("abcdefghijklmnopqrstuvwxyz")
            words[i] = "".join(letters)
    return " ".join(words)


def corpus(rng: random.Random, size: int) -> tuple[list[str], list[str]]:
    real = sample_questions()
    vocabulary = sorted({w for q in real for w in q.split()})
    frames = ["what happens if {} and", "is it true that {}", "how often {} in practice", "{} according to experts",
              "why do people say {}", "{} for beginners"]  # fmt: skip
    texts = list(real)
    while len(texts) < size:
        base = rng.choice(real)
        texts.append(rng.choice(frames).format(" ".join(rng.sample(base.split(), min(4, len(base.split())))) + " " + rng.choice(vocabulary)))
    return texts, vocabulary


def test_small_indexes_decide_exactly_like_the_old_scan():
    rng = random.Random(1)
    texts, vocabulary = corpus(rng, 600)
    index = NearDuplicateIndex(90)
    kept: list[str] = []
    for text in texts + [perturb(rng, rng.choice(texts), vocabulary) for _ in range(400)]:
        expected = process.extractOne(text, kept, scorer=fuzz.ratio, score_cutoff=90) if kept else None
        assert index.check_and_add(text) == (expected[0] if expected else None)
        if expected is None:
            kept.append(text)
    assert len(index) == len(kept) < 1000


def test_the_lsh_index_finds_what_the_exact_scan_finds():
    rng = random.Random(2)
    texts, vocabulary = corpus(rng, 4000)
    index = NearDuplicateIndex(90, exact_below=0)  # LSH from the first text
    kept = [text for text in texts if index.check_and_add(text) is None]
    queries = []
    while len(queries) < 400:
        query = perturb(rng, rng.choice(kept), vocabulary)
        if process.extractOne(query, kept, scorer=fuzz.ratio, score_cutoff=90):
            queries.append(query)
    found = 0
    for query in queries:
        twin = index.find(query)
        if twin is not None:
            assert fuzz.ratio(query, twin) >= 90  # never a false positive: every twin is verified
            found += 1
    assert found / len(queries) >= 0.97, found
    unrelated = [f"completely different text number {i} about {rng.choice(vocabulary)}" for i in range(50)]
    assert all(index.find(text) is None for text in unrelated)
    # a few bytes a text besides the text itself: no Python object per text
    per_text = (index.nbytes() - sum(len(t.encode()) for t in kept)) / len(kept)
    assert per_text <= 8 * (index.bands + 2)


def test_the_reported_twin_is_the_best_match_earliest_on_ties():
    index = NearDuplicateIndex(80, exact_below=0)
    for text in ("how to treat a cold fast", "how to treat a cold fastt", "how to treat a cold fast at home"):
        index.add(text)
    assert index.find("how to treat a cold fast") == "how to treat a cold fast"
    assert index.find("how to treat a cold fas") == "how to treat a cold fast"
