"""Streaming input: batched loading, row-by-row preprocessing and the spooled seed sample match the in-memory path."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from generation.config import DatasetConfig, load_config
from generation.pii import scrub_texts, scrubber_for
from generation.pipeline import prepare_seed_questions
from generation.preprocess import PreprocessReport, iter_preprocess, preprocess_questions
from generation.sources import load_questions, open_questions
from generation.steps.common import derive_seed

REPO = Path(__file__).resolve().parent.parent


def in_memory_seeds(cfg) -> list[str]:
    """The seed sample as computed before streaming: whole column in memory, shuffle the cleaned rows."""
    raw, _ = scrub_texts(load_questions(cfg.dataset), scrubber_for(cfg.privacy.pii))
    cleaned, _ = preprocess_questions(raw, cfg.preprocess.steps)
    order = list(cleaned)
    random.Random(derive_seed(cfg.seed, "seed-order")).shuffle(order)
    return order[: min(cfg.questions.seed_questions or len(order), cfg.questions.target)]


@pytest.mark.parametrize("overrides", [(), ("seed=11", "questions.seed_questions=null", "questions.target=60")])
def test_streamed_seed_sample_is_the_same_as_in_memory(overrides: tuple[str, ...]):
    cfg = load_config(REPO / "configs/default.yaml", overrides)
    seeds, stats = prepare_seed_questions(cfg)
    assert seeds == in_memory_seeds(cfg)
    assert stats["load"]["rows"] == len(load_questions(cfg.dataset))
    assert stats["preprocess"]["rows_out"] >= len(seeds) > 0


def test_batched_source_reads_every_row_in_order(tmp_path: Path):
    path = tmp_path / "q.csv"
    rows = [f"question number {i}?" for i in range(2503)]
    path.write_text("question\n" + "\n".join(rows) + "\n", encoding="utf-8")
    source = open_questions(DatasetConfig(path="csv", data_files=str(path), column="question"), batch_size=100)
    assert len(source) == 2503 and list(source) == rows and list(source) == rows  # re-iterable


def test_row_by_row_preprocessing_counts_like_whole_column_steps():
    raw = ["Flu?", "flu", " ", None, "FLU!", "Cold", "cold?", ""]
    steps = ["drop_duplicates", "lowercase", "strip_punctuation", "normalise_whitespace", "drop_empty", "drop_duplicates"]
    report = PreprocessReport()
    assert list(iter_preprocess(raw, steps, report)) == ["flu", "cold"]
    # First dedupe: raw "" and None collapse to one empty row; then 2 empties dropped; then "flu" x3 and "cold" x2.
    assert report.as_dict() == {"rows_in": 8, "rows_out": 2, "removed": {"drop_duplicates": 4, "drop_empty": 2}}


def test_seen_hashes_spill_to_a_sorted_array_and_still_find_duplicates():
    from generation.preprocess import SeenHashes

    seen = SeenHashes(spill_at=100)
    keys = [(i * 0x9E3779B97F4A7C15) % 2**64 for i in range(1000)]
    assert all(seen.add(k) for k in keys)
    assert seen.frozen.size >= 900 and len(seen.recent) < 100
    assert not any(seen.add(k) for k in keys)  # found in the array and in the recent set alike
