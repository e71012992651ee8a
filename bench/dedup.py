"""Near-duplicate checks at scale: time per candidate question and memory per question, 10k to 1M questions.

Fills :class:`generation.dedup.NearDuplicateIndex` (the question filter's index) with generated questions
the way a run does (check, then add when not a near-duplicate), and measures the time of the last 2,000
checks at each size, the index's memory per question, and how many near-duplicates it found. Questions are
made from the shipped domain samples: a sample question's words, shuffled and recombined with random words
and numbers, plus ~5% light edits of earlier questions (near-duplicates the check must catch).

    .venv/bin/python bench/dedup.py [--sizes 10000,100000] [--full]   # --full adds 1,000,000

Last line: ``dedup: <time per check at the largest size / at the smallest>`` (1.0 = flat).
"""

from __future__ import annotations

import argparse
import csv
import random
import time

from common import REPO


def questions(seed: int = 0):
    rng = random.Random(seed)
    samples = []
    for path in sorted((REPO / "configs" / "samples").glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as handle:
            samples += [row["question"].lower().rstrip("?") for row in csv.DictReader(handle)]
    vocabulary = sorted({word for text in samples for word in text.split()})
    made: list[str] = []
    while True:
        if made and rng.random() < 0.05:  # a near-duplicate of an earlier question
            words = rng.choice(made[-5000:]).split()
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
        else:
            words = rng.choice(samples).split()
            rng.shuffle(words)
            words = words[: rng.randint(4, 9)] + [rng.choice(vocabulary), str(rng.randint(1, 10**6))]
        text = " ".join(words)
        made.append(text)
        if len(made) > 10000:
            del made[:5000]
        yield text


def main() -> None:
    from generation.dedup import NearDuplicateIndex

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="index sizes to measure at (comma-separated)")
    parser.add_argument("--full", action="store_true", help="also 1,000,000")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")} | ({1_000_000} if args.full else set()))
    index = NearDuplicateIndex(90)
    stream = questions()
    per_check = {}
    found = 0
    for size in sizes:
        while len(index) < size - 2000:
            found += index.check_and_add(next(stream)) is not None
        started, checks = time.perf_counter(), 0
        while len(index) < size:
            found += index.check_and_add(next(stream)) is not None
            checks += 1
        per_check[size] = (time.perf_counter() - started) / checks
        print(f"{size:>9,} questions: {1e6 * per_check[size]:.0f} us per check+add; {index.nbytes() / len(index):.0f} bytes per question; "
              f"{found} near-duplicates found so far")  # fmt: skip
    print(f"dedup: {per_check[sizes[-1]] / per_check[sizes[0]]:.2f}")


if __name__ == "__main__":
    main()
