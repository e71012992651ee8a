"""The NLP mining pass (synthgen domain init, mine-modifications --no-llm): time and memory over samples.

    .venv/bin/python bench/mining.py [--repeat 40]

Mines the four shipped samples, then one sample made of all of them repeated --repeat times (with a
distinct suffix per copy so no question is a duplicate). Prints seconds per pass and the peak RSS; the last
line is the headline: questions per second on the large sample.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generation.config import BUNDLED_CONFIGS, load_config  # noqa: E402
from generation.mining import mining_settings, nlp_candidates, read_sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    mining = mining_settings(load_config(None))
    started = time.monotonic()
    nlp_candidates(["how do i start", "how do i stop"], mining)  # imports and the lexicon
    print(f"start-up (imports, lexicon): {time.monotonic() - started:.2f} s")
    everything = []
    for name in ("healthcare", "law", "finance", "engineering"):
        questions = read_sample(BUNDLED_CONFIGS / "samples" / f"{name}.csv")
        everything += questions
        started = time.monotonic()
        found = nlp_candidates(questions, mining)
        print(f"{name}: {len(questions)} questions, {len(found)} candidates, {time.monotonic() - started:.3f} s")
    large = [f"{q} in case {copy}" for copy in range(args.repeat) for q in everything]
    started = time.monotonic()
    found = nlp_candidates(large, mining)
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"large: {len(large)} questions, {len(found)} candidates, {elapsed:.2f} s, peak RSS {peak:.0f} MiB")
    print(f"nlp mining pass: {len(large) / elapsed:.0f} questions/s ({len(large)} questions)")


if __name__ == "__main__":
    main()
