"""Continuous learning: per-modification stats from evaluation folders, weights, weighted sampling."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import synthgen
from generation.config import ModificationWeights, load_config
from generation.errors import ConfigError, InputDataError
from generation.modification_stats import (
    compute_weights,
    import_evaluation,
    load_stats,
    new_stats,
    parse_rating,
    rating_scale,
    save_stats,
    weights_for,
)
from generation.steps.questions import modification_weights, plan_slots

GOOD, BAD, NEW = "asks about the deadline", "asks about the weather", "asks about the fees"


def write_eval(folder: Path, scores: list[tuple[str, str, str]], feedback: list[tuple[str, str, str]] | None = None) -> Path:
    """An evaluation folder as `synthgen evaluate` writes it: scores.csv (+ feedback.csv)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "scores.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "prompt", "modification", "truthfulness", "flags", "passed"])
        for index, (modification, flags, passed) in enumerate(scores):
            writer.writerow([index, f"{folder.name} question {index}?", modification, "4", flags, passed])
    if feedback is not None:
        with open(folder / "feedback.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "rating", "comment", "modification"])
            for row, rating, modification in feedback:
                writer.writerow([row, rating, "a comment, with a comma", modification])
    return folder


def test_import_counts_passes_flags_and_feedback(tmp_path: Path):
    folder = write_eval(
        tmp_path / "run1" / "eval",
        [(GOOD, "", "true"), (GOOD, "", "True"), (GOOD, "off_topic", "false"), (BAD, "rejected_easy;off_topic", "false"),
         ("", "", "true")],  # a seed question: no modification, not counted
        [("0", "5", ""), ("3", "bad", ""), ("1", "1", GOOD), ("2", "3", "")],  # a 1-5 scale,
    )  # fmt: skip
    stats = new_stats()
    record = import_evaluation(stats, tmp_path / "run1")  # a run folder works too: its eval/ is used
    assert record["pairs"] == 4 and record["feedback"] == 3 and record["path"] == str(folder.resolve())
    good, bad = stats["modifications"][GOOD], stats["modifications"][BAD]
    assert (good["pairs"], good["passed"], good["flags"]) == (3, 2, {"off_topic": 1})
    assert (good["feedback_good"], good["feedback_bad"]) == (1, 1)  # row 0 rated 5 (via row), row 1 rated 1 of 5 (named)
    assert (bad["pairs"], bad["passed"], bad["flags"]) == (1, 0, {"rejected_easy": 1, "off_topic": 1})
    assert bad["feedback_bad"] == 1  # row 3 mapped to its modification through scores.csv
    # the same evaluation again changes nothing
    again = import_evaluation(stats, folder)
    assert again["skipped"] == "already imported" and stats["modifications"][GOOD]["pairs"] == 3
    assert len(stats["sources"]) == 1


def test_weights_favour_good_modifications_and_retire_failing_ones(tmp_path: Path):
    stats = new_stats({"min_count": 5, "retire_below": 0.25})
    for run in range(3):  # accumulated across runs
        write_eval(tmp_path / f"run{run}", [(GOOD, "", "true"), (GOOD, "", "true"), (BAD, "off_topic", "false"), (BAD, "", "false")])
        import_evaluation(stats, tmp_path / f"run{run}")
    figures = compute_weights(stats)
    assert figures[GOOD]["mean"] == pytest.approx((1 + 6) / (2 + 6), abs=1e-4)  # Beta(1,1) posterior mean
    assert figures[GOOD]["weight"] == figures[GOOD]["mean"] and not figures[GOOD]["retired"]
    assert figures[BAD]["mean"] == pytest.approx(1 / 8, abs=1e-4)
    assert figures[BAD]["retired"] and figures[BAD]["weight"] == 0.0
    # below min_count nobody is retired, however bad
    young = new_stats({"min_count": 10})
    young["modifications"] = stats["modifications"]
    assert compute_weights(young)[BAD]["retired"] is False

    path = tmp_path / "stats.json"
    save_stats(path, stats)
    assert load_stats(path)["modifications"] == stats["modifications"]
    resolved = weights_for(path, [GOOD, BAD, NEW])
    assert resolved["weights"] == {GOOD: 0.875, BAD: 0.0, NEW: 0.5}  # unseen: the prior mean
    with pytest.raises(ConfigError, match="every modification of this run is retired"):
        weights_for(path, [BAD])


def test_bad_evaluation_files_are_one_line_errors(tmp_path: Path):
    with pytest.raises(InputDataError, match="no scores.csv"):
        import_evaluation(new_stats(), tmp_path)
    write_eval(tmp_path / "e", [(GOOD, "", "maybe")])
    with pytest.raises(InputDataError, match=r"scores.csv: row 0: passed: expected true/false, got 'maybe'"):
        import_evaluation(new_stats(), tmp_path / "e")
    write_eval(tmp_path / "f", [(GOOD, "", "true")], [("0", "great", "")])
    with pytest.raises(InputDataError, match=r"feedback.csv: row 0: rating: expected good/bad or a number"):
        import_evaluation(new_stats(), tmp_path / "f")
    write_eval(tmp_path / "g", [(GOOD, "", "true")], [("7", "good", "")])
    with pytest.raises(InputDataError, match=r"feedback.csv: row 0: row '7' is not in scores.csv"):
        import_evaluation(new_stats(), tmp_path / "g")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json: not a valid stats file"):
        load_stats(tmp_path / "broken.json")
    (tmp_path / "settings.json").write_text(json.dumps({**new_stats(), "settings": {"retire_below": 3}}))
    with pytest.raises(ConfigError, match="settings.retire_below: must be between 0 and 1"):
        load_stats(tmp_path / "settings.json")


def test_rating_scales():
    five = ["5", "4", "3", "2", "1", "good", "bad"]
    assert rating_scale(five, "x") == "five"
    assert [parse_rating(v, "x", "five") for v in five] == [1, 1, 0, -1, -1, 1, -1]
    sign = ["1", "-1", "0", "0.5", "👎", ""]
    assert rating_scale(sign, "x") == "sign"
    assert [parse_rating(v, "x", "sign") for v in sign] == [1, -1, 0, 1, -1, 0]
    with pytest.raises(InputDataError, match="ratings from 0 to 9: expected -1..1"):
        rating_scale(["0", "9"], "x")
    with pytest.raises(InputDataError, match="x: rating: expected good/bad or a number, got 'great'"):
        parse_rating("great", "x")


def test_weighted_plan_is_deterministic_and_follows_weights():
    mods = [GOOD, BAD, NEW]
    weights = modification_weights(mods, ModificationWeights(weights={GOOD: 0.9, BAD: 0.0}, default_weight=0.3))
    assert weights == [0.9, 0.0, 0.3]
    seeds = ["q one", "q two"]
    plan = plan_slots(seeds, 400, mods, run_seed=11, max_attempts=3, weights=weights)
    assert plan_slots(seeds, 400, mods, run_seed=11, max_attempts=3, weights=weights) == plan  # same seed, same choices
    counts = Counter(m for slot in plan for m in slot.modifications)
    assert counts[BAD] == 0  # retired: never drawn
    assert counts[GOOD] > 2 * counts[NEW] > 0  # 0.9 vs 0.3
    uniform = plan_slots(seeds, 400, mods, run_seed=11, max_attempts=3)
    assert uniform != plan and Counter(m for slot in uniform for m in slot.modifications)[BAD] > 0
    with pytest.raises(ConfigError, match="every modification has weight 0"):
        modification_weights([BAD], ModificationWeights(weights={BAD: 0.0}))


def test_run_config_option_resolves_weights_from_the_stats_file(tmp_path: Path):
    stats = new_stats()
    stats["modifications"][GOOD] = {"pairs": 8, "passed": 8, "flags": {}, "feedback_good": 0, "feedback_bad": 0}
    save_stats(tmp_path / "stats" / "health.json", stats)
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(yaml.safe_dump({"name": "w", "modifications": [GOOD, NEW], "questions": {"modification_weights": "stats/health.json"}}))
    cfg = load_config(cfg_path)  # the path is relative to the run config
    weights = cfg.questions.modification_weights
    assert isinstance(weights, ModificationWeights)
    assert weights.file == str(tmp_path / "stats/health.json")
    assert weights.weights == {GOOD: 0.9, NEW: 0.5}
    # the saved effective config carries the weights themselves: the run is reproducible without the file
    assert cfg.public_dict()["questions"]["modification_weights"]["weights"] == {GOOD: 0.9, NEW: 0.5}
    with pytest.raises(ConfigError, match="nope.json: modification stats file not found"):
        load_config(cfg_path, ["questions.modification_weights=nope.json"])


def test_cli_stats_command(tmp_path: Path):
    write_eval(tmp_path / "run", [(GOOD, "", "true")] * 4 + [(BAD, "off_topic", "false")] * 6)
    stats_file = tmp_path / "stats.json"
    result = synthgen("modifications", "stats", str(stats_file), "--add", str(tmp_path / "run"), "--min-count", "5")
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stderr and "10 pair(s)" in result.stderr
    lines = result.stdout.splitlines()
    assert GOOD in lines[1] and lines[1].split()[0] == "0.833"  # (1+4)/(2+4), best first
    assert BAD in lines[2] and "RETIRED" in lines[2]
    saved = json.loads(stats_file.read_text())
    assert saved["settings"]["min_count"] == 5 and saved["modifications"][BAD]["pairs"] == 6
    as_json = synthgen("modifications", "stats", str(stats_file), "--json")
    assert json.loads(as_json.stdout)["modifications"][BAD]["retired"] is True
    missing = synthgen("modifications", "stats", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "modification stats file not found" in missing.stderr
    # restricted to a run's list: unseen modifications show at the prior
    listed = synthgen("modifications", "stats", str(stats_file), "--domain", "law")
    assert listed.returncode == 0, listed.stderr
    assert "(no stats yet: prior)" in listed.stdout and BAD not in listed.stdout
