"""The DPO training check: split, statistics and log-prob maths (fast), then real short DPO runs (marked dpo)."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.dpo_check import (
    CheckSettings,
    Pair,
    Preference,
    SeedResult,
    bootstrap_mean_over_groups,
    load_dpo_model_config,
    load_pairs,
    lora_config,
    response_logprobs,
    run_check,
    score_sequences,
    split_by_topic,
)
from generation.errors import ConfigError, InputDataError
from tests.conftest import synthgen

# Facts the chosen answer states correctly in a full sentence and the rejected answer gets wrong, tersely.
FACTS = [
    ("the capital of France", "Paris", "Berlin"),
    ("the capital of Japan", "Tokyo", "Cairo"),
    ("the capital of Italy", "Rome", "Oslo"),
    ("the capital of Spain", "Madrid", "Lima"),
    ("the capital of Germany", "Berlin", "Nairobi"),
    ("the capital of Egypt", "Cairo", "Dublin"),
    ("the capital of Russia", "Moscow", "Lisbon"),
    ("the capital of England", "London", "Bangkok"),
    ("the largest planet in the solar system", "Jupiter", "Mercury"),
    ("the planet closest to the Sun", "Mercury", "Neptune"),
    ("the number of legs a spider has", "eight", "three"),
    ("the number of days in a week", "seven", "twelve"),
    ("the colour of a clear daytime sky", "blue", "green"),
    ("the boiling point of water at sea level", "100 degrees Celsius", "20 degrees Celsius"),
    ("the freezing point of water", "0 degrees Celsius", "50 degrees Celsius"),
    ("the chemical formula of water", "H2O", "CO2"),
    ("the animal known as the king of the jungle", "the lion", "the rabbit"),
    ("the organ that pumps blood through the body", "the heart", "the stomach"),
    ("the number of continents on Earth", "seven", "forty"),
    ("the fastest land animal", "the cheetah", "the snail"),
]
QUESTIONS = ["What is {fact}?", "Tell me {fact}.", "Quick question: what is {fact}?"]


def write_fact_pairs(path: Path, swap_fraction: float = 0.0, seed: int = 0) -> Path:
    """60 pairs over 20 topics (one per fact); optionally swap chosen/rejected on a random share of rows."""
    rows = []
    for fact, right, wrong in FACTS:
        for question in QUESTIONS:
            chosen = f"{fact[0].upper()}{fact[1:]} is {right}. I hope that helps you with your question!"
            rows.append({"prompt": question.format(fact=fact), "chosen": chosen, "rejected": f"{wrong[0].upper()}{wrong[1:]}.", "topic": fact})
    swap = random.Random(seed).sample(range(len(rows)), round(swap_fraction * len(rows)))
    for i in swap:
        rows[i]["chosen"], rows[i]["rejected"] = rows[i]["rejected"], rows[i]["chosen"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["prompt", "chosen", "rejected", "topic"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _pairs(topics: list[str], per_topic: int = 2) -> list[Pair]:
    return [Pair(i * per_topic + j, [{"role": "user", "content": f"{t} q{j}"}], "yes", "no", t) for i, t in enumerate(topics) for j in range(per_topic)]


# ----------------------------------------------------------------------------------------- fast tests


def test_split_keeps_topics_whole_and_is_deterministic() -> None:
    pairs = _pairs([f"topic {k}" for k in range(10)], per_topic=3)
    train, held = split_by_topic(pairs, 0.3, seed=5)
    assert {p.topic for p in train}.isdisjoint({p.topic for p in held})
    assert len({p.topic for p in held}) == 3 and len(train) + len(held) == len(pairs)
    again = split_by_topic(pairs, 0.3, seed=5)
    assert [p.row for p in again[1]] == [p.row for p in held]
    other_splits = {tuple(p.row for p in split_by_topic(pairs, 0.3, seed=s)[1]) for s in range(6)}
    assert len(other_splits) > 1


def test_split_needs_two_topics() -> None:
    with pytest.raises(InputDataError, match="at least 2 topics"):
        split_by_topic(_pairs(["only"], per_topic=5), 0.3, seed=0)
    train, held = split_by_topic(_pairs(["a", "b"]), 0.9, seed=0)
    assert train and held  # at least one topic stays on each side


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_data() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_mean_over_groups([rng.normal(1.0, 1.0, 20)], 1000, seed=1)
    large = bootstrap_mean_over_groups([rng.normal(1.0, 1.0, 2000)], 1000, seed=1)
    assert small["ci_low"] < small["estimate"] < small["ci_high"]
    assert large["ci_low"] < 1.0 < large["ci_high"]
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 5
    assert bootstrap_mean_over_groups([np.zeros(5), np.ones(5)], 200, seed=0) == {"estimate": 0.5, "ci_low": 0.5, "ci_high": 0.5}
    assert bootstrap_mean_over_groups([np.array([1.0, 2.0])], 500, seed=3) == bootstrap_mean_over_groups([np.array([1.0, 2.0])], 500, seed=3)


def test_response_logprobs_counts_only_response_tokens() -> None:
    # vocab 3; position t predicts token t+1. Uniform logits except where we make one token certain-ish.
    logits = torch.zeros(1, 4, 3)
    logits[0, 1, 2] = math.log(8.0)  # p(token 2 at position 2) = 8 / 10
    input_ids = torch.tensor([[0, 1, 2, 0]])
    response_mask = torch.tensor([[0, 0, 1, 1]])  # response = tokens at positions 2 and 3
    total, count = response_logprobs(logits, input_ids, response_mask)
    assert count.item() == 2
    assert total.item() == pytest.approx(math.log(0.8) + math.log(1 / 3), abs=1e-6)


def test_score_sequences_is_padding_invariant() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64))  # fmt: skip
    seqs = [([1, 2, 3], [4, 5]), ([7, 8, 9, 10, 11, 12], [13, 14, 15, 16]), ([2], [3])]
    batched, counts = score_sequences(model, seqs, pad_id=0, batch_size=3)
    singles = [score_sequences(model, [s], pad_id=0, batch_size=1)[0][0] for s in seqs]
    assert counts.tolist() == [2, 4, 1]
    assert batched == pytest.approx(singles, abs=1e-4)
    with torch.no_grad():
        logits = model(torch.tensor([[2, 3]])).logits
    assert singles[2] == pytest.approx(torch.log_softmax(logits[0, 0], -1)[3].item(), abs=1e-5)


def test_load_pairs_csv_topics_and_errors(tmp_path: Path) -> None:
    data = write_fact_pairs(tmp_path / "pairs.csv")
    pairs = load_pairs(data)
    assert len(pairs) == 60 and len({p.topic for p in pairs}) == 20
    assert pairs[0].prompt == [{"role": "user", "content": "What is the capital of France?"}]

    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,chosen,rejected\nq,a,b\nq2,,b\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"bad.csv: row 1: column 'chosen' must be non-empty"):
        load_pairs(bad)
    (tmp_path / "nocol.csv").write_text("prompt,chosen\nq,a\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"missing column\(s\) \['rejected'\]"):
        load_pairs(tmp_path / "nocol.csv")


def test_load_pairs_jsonl_and_provenance_topics(tmp_path: Path) -> None:
    rows = [
        {"prompt": [{"role": "user", "content": f"question {i}"}], "chosen": [{"role": "assistant", "content": "good"}],
         "rejected": [{"role": "assistant", "content": "bad"}]}
        for i in range(4)
    ]  # fmt: skip
    data = tmp_path / "questions_and_responses.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert [p.topic for p in load_pairs(data)] == [f"question {i}" for i in range(4)]
    (tmp_path / "questions_and_responses.provenance.jsonl").write_text(
        "".join(json.dumps({"row": i, "source_question": f"seed {i // 2}"}) + "\n" for i in range(4)), encoding="utf-8"
    )
    assert [p.topic for p in load_pairs(data)] == ["seed 0", "seed 0", "seed 1", "seed 1"]
    data.write_text(json.dumps(rows[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"questions_and_responses.jsonl: line 2: invalid JSON"):
        load_pairs(data)
    rows[0]["chosen"] = [{"role": "user", "content": "x"}]
    data.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"row 0: column 'chosen' must be one 'assistant' message"):
        load_pairs(data)


def test_model_configs_and_lora_without_peft(tmp_path: Path) -> None:
    assert load_dpo_model_config(None).gguf is not None
    qwen = load_dpo_model_config("qwen2.5-0.5b-lora")
    assert qwen.hf == "Qwen/Qwen2.5-0.5B-Instruct" and qwen.lora is not None and qwen.lora.r == 16
    bad = tmp_path / "m.yaml"
    bad.write_text("name: x\nhf: a/b\ngguf: {package: p, file: f}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"m.yaml: \(top level\): set exactly one of gguf"):
        load_dpo_model_config(bad)
    bad.write_text("name: x\nhf: a/b\nlora: {rank: 4}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"m.yaml: lora.rank: unknown key"):
        load_dpo_model_config(bad)
    try:
        import peft  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="lora needs the 'peft' package"):
            lora_config(qwen)
    else:
        assert lora_config(qwen).r == 16


def test_cli_bad_data_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "questions_and_responses.csv").write_text("prompt,chosen,rejected\nq,,b\n", encoding="utf-8")
    result = synthgen("dpo-check", "-o", str(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("synthgen: error: ") and "questions_and_responses.csv: row 0: column 'chosen'" in lines[-1]
    assert not (tmp_path / "dpo_check.json").exists()


# ----------------------------------------------------------------------------- real training (slow)

# 10 steps of 2 pairs per seed, 2 seeds: the clear signal is learnt within a few steps, and the swapped
# control gets exactly the same training. Other load on shared 2-core machines can triple step times.
STEPS = 10
BATCH = 2


@pytest.mark.dpo
@pytest.mark.timeout(1800)
def test_clear_preference_signal_is_detected(tmp_path: Path) -> None:
    data = write_fact_pairs(tmp_path / "pairs.csv")
    result = synthgen("dpo-check", "-o", str(tmp_path / "out"), "--data", str(data), "--steps", str(STEPS), "--batch-size", str(BATCH), timeout=1700)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "dpo_check.json").read_text(encoding="utf-8"))
    accuracy = report["figures"]["preference_accuracy"]
    assert accuracy["delta"]["ci_low"] > 0, accuracy
    assert report["figures"]["margin_length_normalised"]["delta"]["ci_low"] > 0
    assert report["signal_detected"] is True
    assert len(report["seeds"]) == 2 and all(len(s["log_history"]) == STEPS for s in report["seeds"])
    assert 0 < report["peak_rss_mb"] < 24 * 1024
    assert (tmp_path / "out" / "dpo_check.png").stat().st_size > 10_000
    assert "held-out accuracy" in result.stderr


@pytest.mark.dpo
@pytest.mark.timeout(1800)
def test_randomly_swapped_labels_show_no_signal(tmp_path: Path) -> None:
    data = write_fact_pairs(tmp_path / "pairs.csv", swap_fraction=0.5, seed=3)
    report = run_check(data, tmp_path / "out", load_dpo_model_config(None), CheckSettings(steps=STEPS, batch_size=BATCH))
    assert not report["figures"]["preference_accuracy"]["delta"]["ci_low"] > 0, report["figures"]
    assert report["signal_detected"] is False
    assert report["verdict"].startswith(("no signal", "weak signal"))


@pytest.mark.dpo
def test_fixed_seed_runs_are_reproducible(tmp_path: Path) -> None:
    data = write_fact_pairs(tmp_path / "pairs.csv")
    settings = CheckSettings(steps=2, seeds=1, seed=4, batch_size=BATCH)
    first = run_check(data, tmp_path / "a", load_dpo_model_config(None), settings)
    second = run_check(data, tmp_path / "b", load_dpo_model_config(None), settings)
    assert first["seeds"][0]["log_history"] == second["seeds"][0]["log_history"]
    assert first["figures"] == second["figures"]


# --------------------------------------------------------------------------------------------- compare


def test_compare_bad_usage_is_one_line_exit_2(tmp_path: Path) -> None:
    from generation.dpo_compare import compare_runs

    clear = write_fact_pairs(tmp_path / "clear.csv")
    other = tmp_path / "other.csv"
    other.write_text("prompt,chosen,rejected\nwhat is x?,x is y.,x is z.\nwhat is w?,w is v.,w is u.\n", encoding="utf-8")
    model = load_dpo_model_config(None)
    for runs, expected in (([clear], "--compare needs at least two runs, got 1"), ([clear, other], "the runs share 0 topic"),
                           ([clear, tmp_path / "missing.csv"], "missing.csv: file not found")):  # fmt: skip
        with pytest.raises(InputDataError, match=expected):
            compare_runs(runs, tmp_path / "out", model, CheckSettings())
    result = synthgen("dpo-check", "-o", str(tmp_path / "out"), "--data", str(clear), "--compare", str(clear), str(clear))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].endswith("--data and --compare exclude each other: give the runs (folders or pair files) as arguments")
    assert not (tmp_path / "out" / "dpo_compare.json").exists()


def test_compare_lead_is_the_pairwise_difference_of_the_two_runs() -> None:
    """The statement's lead (best minus runner-up) and the table's difference of the same two runs are one figure with
    one interval, whichever order the runs were given in (here the best run is the last one)."""
    from generation.dpo_compare import RunPairs, build_report

    settings = CheckSettings(seeds=2)
    rng = np.random.default_rng(7)
    before = [Preference(rng.normal(-40, 5, 12), np.full(12, 20.0), rng.normal(-42, 5, 12), np.full(12, 20.0)) for _ in range(2)]

    def results(shift: float) -> list[SeedResult]:
        out = []
        for k, b in enumerate(before):
            after = Preference(b.chosen + shift * 20 + rng.normal(0, 4, 12), b.chosen_n, b.rejected - shift * 20, b.rejected_n)
            out.append(SeedResult(k, 30, 12, ["t"], b, after))
        return out

    names = ("prompted", "corrupt", "ranked")
    common = {name: results(shift) for name, shift in zip(names, (0.05, 0.1, 0.3))}
    runs = [RunPairs(name, Path(f"{name}.csv"), _pairs(["a", "b"])) for name in names]
    report = build_report(runs, ["a", "b"], [], common, common, load_dpo_model_config(None), settings, "cpu")
    most = report["most_moved"]
    assert (most["run"], most["lead_over"]) == ("ranked", "corrupt")
    (pair,) = [d for d in report["differences"] if d["runs"] == ["corrupt", "ranked"]]
    table = pair["margin_per_token_change"]  # corrupt minus ranked
    assert most["lead"]["estimate"] == pytest.approx(-table["estimate"])
    assert (most["lead"]["ci_low"], most["lead"]["ci_high"]) == pytest.approx((-table["ci_high"], -table["ci_low"]))
    assert f"by {most['lead']['estimate']:+.3f} (95% CI {-table['ci_high']:+.3f} .. {-table['ci_low']:+.3f})" in report["statement"]


def test_compare_pairs_of_runs_never_share_a_resampling_stream() -> None:
    """With 13 runs, the pairs (0, 12) and (1, 2) once drew the same bootstrap seed, so equal differences got equal
    intervals. Each pair of runs resamples on its own stream (the same one in either order), and so does each figure."""
    from generation.dpo_compare import _difference

    names = [f"run{k}" for k in range(13)]
    rng = np.random.default_rng(3)
    values = {name: [rng.normal(0, 1, 15) for _ in range(2)] for name in names}
    difference = [rng.normal(0.5, 1, 15) for _ in range(2)]
    values["run0"] = [a + d for a, d in zip(values["run12"], difference)]  # run0 - run12 == run1 - run2 == difference
    values["run1"] = [a + d for a, d in zip(values["run2"], difference)]
    settings = CheckSettings(seeds=2)
    far, near = (_difference(values, a, b, names, settings, 100) for a, b in (("run0", "run12"), ("run1", "run2")))
    assert far["estimate"] == pytest.approx(near["estimate"])
    assert (far["ci_low"], far["ci_high"]) != pytest.approx((near["ci_low"], near["ci_high"]), abs=1e-9)
    mirrored = _difference(values, "run12", "run0", names, settings, 100)
    assert (mirrored["ci_low"], mirrored["ci_high"]) == pytest.approx((-far["ci_high"], -far["ci_low"]))
    other_figure = _difference(values, "run0", "run12", names, settings, 300)
    assert (other_figure["ci_low"], other_figure["ci_high"]) != pytest.approx((far["ci_low"], far["ci_high"]), abs=1e-9)


@pytest.mark.dpo
@pytest.mark.timeout(1200)
def test_compare_names_the_run_that_moved_the_held_out_margin_most(tmp_path: Path) -> None:
    """Two runs over the same 20 topics, one seed, 4 steps each: correct labels against half swapped."""
    clear = tmp_path / "clear"
    clear.mkdir()
    write_fact_pairs(clear / "questions_and_responses.csv")
    noisy = write_fact_pairs(tmp_path / "noisy.csv", swap_fraction=0.5, seed=3)
    out = tmp_path / "compare"
    result = synthgen("dpo-check", "--compare", str(clear), str(noisy), "-o", str(out), "--steps", "4", "--seeds", "1",
                      "--batch-size", str(BATCH), timeout=1100)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "dpo_compare.json").read_text(encoding="utf-8"))
    first, second = report["runs"]
    assert (first["name"], second["name"]) == ("clear", "noisy") and report["shared_topics"] == 20
    # the same base model on the same common held-out pairs: identical "before" figures
    assert report["splits"][0]["common_held_out_pairs"] == 36
    for key in ("preference_accuracy", "margin_length_normalised"):
        assert first["figures"][key]["before"] == second["figures"][key]["before"]
    assert report["most_moved"]["run"] == "clear" and report["most_moved"]["lead_over"] == "noisy"
    assert report["most_moved"]["lead"]["ci_low"] > 0 and report["most_moved"]["beyond_noise"] is True
    diff = report["differences"][0]
    assert diff["runs"] == ["clear", "noisy"] and diff["margin_per_token_change"]["estimate"] == pytest.approx(report["most_moved"]["lead"]["estimate"])
    assert first["own_held_out"]["figures"]["margin_length_normalised"]["delta"]["ci_low"] > 0
    assert len(first["log_history"][0]) == 4 and first["train_pairs"] == [42]
    assert (out / "dpo_compare.png").stat().st_size > 10_000
    assert "clear moved the held-out margin/token most" in result.stderr and "beyond noise" in result.stderr
