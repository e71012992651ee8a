"""The evaluator on the labelled set (tests/data/eval/labelled.yaml), its outputs, inputs and human loop.

The embedding model, the plausibility model and the checkers load once per session; the labelled file is
evaluated once, and its per-flag figures must match the ones bench/evaluator.py stored in
configs/eval/precision.json (the figures the gate default and the report use).
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import load_bench_evaluator

from generation.cli import cli
from generation.config import GATE_PRECISION_MIN, PRECISION_FILE, load_config, measured_precise_flags
from generation.errors import ConfigError, InputDataError
from generation.evaluation import detectors as det
from generation.evaluation.evaluate import FLAG_CODES, Scorer, evaluate_file, score_columns
from generation.evaluation.judge import scale_score, yes_probability
from generation.evaluation.review import export_review, import_review

DATA = Path(__file__).parent / "data" / "eval"
# Flags the labelled set labels (chosen_doubtful needs a capable judge; contaminated needs a reference).
LABELLED_FLAGS = (
    "rejected_agrees", "rejected_easy", "rejected_self_corrects", "rejected_self_contradictory", "chosen_self_contradictory",
    "question_not_informational", "off_topic", "duplicate_prompt", "pii", "prompt_injection",
)  # fmt: skip
GOAL_FLAGS = ("rejected_agrees", "rejected_easy", "rejected_self_corrects", "rejected_self_contradictory", "question_not_informational")

bench = load_bench_evaluator()


def write_pairs(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["prompt", "chosen", "rejected"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def cfg():
    return load_config(None)


@pytest.fixture(scope="session")
def scorer(cfg):
    return Scorer(cfg)


@pytest.fixture(scope="session")
def labelled():
    return bench.read_labels(DATA / "labelled.yaml")


def evaluate_labelled(folder: Path, labelled: list[dict], cfg, scorer) -> tuple[Path, Path, dict, list[dict[str, str]]]:
    """Evaluate labelled pairs as one file in ``folder``: (folder, pairs CSV, summary, scores)."""
    pairs = write_pairs(folder / "pairs.csv", labelled)
    summary = evaluate_file(pairs, folder / "eval", cfg, progress=False, scorer=scorer)
    return folder, pairs, summary, read_csv(folder / "eval" / "scores.csv")


@pytest.fixture(scope="session")
def labelled_eval(tmp_path_factory, cfg, scorer, labelled):
    return evaluate_labelled(tmp_path_factory.mktemp("labelled"), labelled, cfg, scorer)


@pytest.fixture(scope="session")
def vllm_slices():
    """The vLLM slices by split, each a file of its own."""
    return {split: bench.read_labels(path) for split, path in bench.VLLM_SLICES.items()}


@pytest.fixture(scope="session")
def vllm_labelled(vllm_slices):
    return [pair for pairs in vllm_slices.values() for pair in pairs]


@pytest.fixture(scope="session")
def vllm_flags_by_slice(tmp_path_factory, cfg, scorer, vllm_slices):
    """The flags found on each vLLM slice, evaluated as its own file (as the bench does)."""
    found = {}
    for split, pairs in vllm_slices.items():
        scores = evaluate_labelled(tmp_path_factory.mktemp(f"labelled-{split}"), pairs, cfg, scorer)[3]
        found[split] = [set(s["flags"].split(";")) - {""} for s in scores]
    return found


@pytest.fixture(scope="session")
def vllm_flags(vllm_flags_by_slice):
    return [flags for found in vllm_flags_by_slice.values() for flags in found]


def test_labelled_set_is_real_labelled_per_flag_and_split(labelled):
    assert len(labelled) >= 150
    generated = [p for p in labelled if p["source"]["kind"] == "generated"]
    assert 2 * len(generated) >= len(labelled)  # at least half is real model output
    for pair in generated:
        assert {"model", "command", "run_seed", "row", "chosen_seed", "rejected_seed"} <= set(pair["source"])
        assert pair["source"]["command"].startswith("synthgen run")
    assert len({p["source"]["command"] for p in generated}) >= 4  # several domains and seeds
    for pair in labelled:
        assert set(pair["labels"]) == set(LABELLED_FLAGS), pair["id"]  # a yes/no label for every flag
        assert pair["split"] in ("dev", "heldout", "heldout2")
    assert 0.25 <= sum(p["split"].startswith("heldout") for p in labelled) / len(labelled) <= 0.45
    for flag in GOAL_FLAGS:
        assert sum(p["labels"][flag] for p in labelled) >= 20, flag
    assert sum(not any(p["labels"].values()) for p in labelled) >= 30  # clean pairs


@pytest.mark.parametrize("split", sorted(bench.VLLM_SLICES))
def test_vllm_slice_is_real_vllm_output_labelled_per_flag(vllm_slices, split):
    pairs = vllm_slices[split]
    assert len(pairs) >= 40
    for pair in pairs:
        assert pair["split"] == split and pair["source"]["kind"] == "generated", pair["id"]
        assert "--set model=smollm2-vllm-cpu" in pair["source"]["command"] and "vLLM" in pair["source"]["model"]
        assert {"run_seed", "row", "chosen_seed", "rejected_seed"} <= set(pair["source"])
        assert set(pair["labels"]) == set(LABELLED_FLAGS), pair["id"]
    assert len({p["source"]["command"] for p in pairs}) >= 3  # three domains and seeds
    for seed in {p["source"]["run_seed"] for p in pairs}:  # every row of each run, in order
        rows = [p["source"]["row"] for p in pairs if p["source"]["run_seed"] == seed]
        assert rows == list(range(len(rows))), (split, seed)


def test_measured_figures_match_the_stored_precision_file(labelled, labelled_eval, vllm_slices, vllm_labelled, vllm_flags, vllm_flags_by_slice):
    """The evaluator's figures on the labelled sets are the ones bench/evaluator.py stored (rerun it with
    --write after changing a detector), and every gated flag really has precision >= 0.8 there."""
    _, _, _, scores = labelled_eval
    found = [set(s["flags"].split(";")) - {""} for s in scores] + vllm_flags
    measured = bench.figures(labelled + vllm_labelled, found, resamples=200)
    stored = json.loads(PRECISION_FILE.read_text(encoding="utf-8"))
    assert stored["pairs"] == len(labelled) + len(vllm_labelled)
    assert stored["labels_sha256"] == bench.labels_digest(list(bench.DEFAULT_LABEL_FILES))
    for split, pairs in vllm_slices.items():  # each vLLM slice's own figures are stored too
        own = bench.figures(pairs, vllm_flags_by_slice[split], resamples=200)["flags"]
        for flag in LABELLED_FLAGS:
            then = stored[split][flag]
            assert abs(own[flag]["tp"] - then["tp"]) <= 1 and abs(own[flag]["fp"] - then["fp"]) <= 1, (split, flag)
    print(json.dumps({f: (e["precision"], e["recall"]) for f, e in measured["flags"].items()}))
    for flag in LABELLED_FLAGS:
        now, then = measured["flags"][flag], stored["flags"][flag]
        assert now["positives"] == then["positives"], flag
        # bf16 arithmetic may differ by CPU: allow one pair either way
        assert abs(now["tp"] - then["tp"]) <= 1 and abs(now["fp"] - then["fp"]) <= 1, (flag, now, then)
    for flag in measured_precise_flags():
        assert measured["flags"][flag]["precision"] >= GATE_PRECISION_MIN - 0.03, flag


def test_gate_default_is_the_flags_with_measured_precision(cfg):
    stored = json.loads(PRECISION_FILE.read_text(encoding="utf-8"))["flags"]
    gated = cfg.evaluation.gate.fail_on_flags
    assert gated == measured_precise_flags()
    for flag, entry in stored.items():
        assert (flag in gated) == (entry["precision"] is not None and entry["precision"] >= GATE_PRECISION_MIN and entry["flagged"] >= 5)
    with pytest.raises(ConfigError, match="precision.json"):
        measured_precise_flags(Path("/nonexistent/precision.json"))


def test_scores_summary_filtered_and_report(labelled, labelled_eval, cfg):
    folder, _, summary, scores = labelled_eval
    out = folder / "eval"
    assert list(scores[0]) == score_columns()
    assert [int(s["row"]) for s in scores] == list(range(len(labelled)))
    assert [s["prompt"] for s in scores] == [r["prompt"] for r in labelled]
    gate = set(cfg.evaluation.gate.fail_on_flags)
    for score in scores:
        flags = set(score["flags"].split(";")) - {""}
        assert score["passed"] == ("0" if flags & gate else "1")
        assert flags <= set(FLAG_CODES)
        assert -1 <= float(score["relevance_chosen"]) <= 1 and 0 <= float(score["hardness"]) <= 1
        assert score["judge_chosen_correct"] == ""  # no judge configured
    filtered = read_csv(out / "filtered.csv")
    assert list(filtered[0]) == ["prompt", "chosen", "rejected"]
    assert [f["prompt"] for f in filtered] == [s["prompt"] for s in scores if s["passed"] == "1"]
    on_disk = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["rows"] == len(labelled) and on_disk["passed"] == len(filtered)
    assert on_disk["misinformation_rate"] is None and "unverified" in on_disk["misinformation_note"]
    assert on_disk["flag_counts"]["duplicate_prompt"] == sum("duplicate_prompt" in s["flags"] for s in scores)
    assert 0 < on_disk["diversity"]["distinct_2"] <= 1 and on_disk["metrics"]["hardness"]["n"] == len(labelled)
    assert on_disk["config"]["gate"]["fail_on_flags"] == cfg.evaluation.gate.fail_on_flags
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 3
    assert not re.search(r"""(src|href)=['"]?https?://""", page)  # self-contained
    for code in LABELLED_FLAGS:
        assert f"<code>{code}</code> (" in page  # a worst-examples section per flag found
    assert "&lt;/question&gt;" in page  # text is escaped, not markup
    assert "measured precision" in page and "not measured" in page  # each flag's measured precision beside its rate


def test_modification_comes_from_provenance_or_questions_csv(tmp_path, cfg, scorer, labelled):
    rows = labelled[:3]
    pairs = write_pairs(tmp_path / "qr.csv", rows)
    (tmp_path / "qr.provenance.jsonl").write_text(
        "\n".join(json.dumps({"row": i, "modification": f"mod {i}"}) for i in range(3)) + "\n", encoding="utf-8"
    )
    evaluate_file(pairs, tmp_path / "a", cfg, progress=False, scorer=scorer)
    assert [s["modification"] for s in read_csv(tmp_path / "a" / "scores.csv")] == ["mod 0", "mod 1", "mod 2"]

    other = tmp_path / "other"
    other.mkdir()
    pairs = write_pairs(other / "pairs.csv", rows)
    with open(other / "questions.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["question", "source_question", "modification", "origin"])
        writer.writeheader()
        writer.writerow({"question": rows[1]["prompt"], "source_question": rows[1]["prompt"], "modification": "asks about X", "origin": "synthetic"})
    summary = evaluate_file(pairs, other / "eval", cfg, progress=False, scorer=scorer)
    assert [s["modification"] for s in read_csv(other / "eval" / "scores.csv")] == ["", "asks about X", ""]
    # no benchmark named: the run's own seed questions are no reference, contamination is not computed
    assert {s["contamination"] for s in read_csv(other / "eval" / "scores.csv")} == {""}
    assert summary["contamination"]["reference"] == "none" and "contaminated" not in summary["flag_counts"] or not summary["flag_counts"]["contaminated"]


def test_contamination_compares_what_is_new_with_the_named_benchmark(tmp_path, scorer):
    """Seed questions are not flagged for being seeds; a synthetic question or an answer copied from the
    benchmark is; the reference comes from --reference or evaluation.contamination.reference."""
    benchmark = tmp_path / "healthsearchqa.csv"
    benchmark.write_text(
        "question\nwhat are the early warning signs of a heart attack\nhow long does the flu shot take to work\n"
        "is it safe to take ibuprofen every day\n", encoding="utf-8",
    )  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"prompt": "how long does the flu shot take to work", "chosen": "About two weeks after the shot.", "rejected": "About two days after the shot."},
        {"prompt": "what are the early warning signs of a heart attack", "chosen": "Chest pain and breathlessness.", "rejected": "Itchy feet."},
        {"prompt": "what foods are high in vitamin k", "chosen": "Leafy greens such as kale and spinach.", "rejected": "White rice and sugar."},
        {"prompt": "what helps a sore throat", "chosen": "Warm drinks, honey and rest help.", "rejected": "is it safe to take ibuprofen every day"},
    ]
    pairs = write_pairs(run / "questions_and_responses.csv", rows)
    origins = ["seed", "synthetic", "synthetic", "synthetic"]
    (run / "questions_and_responses.provenance.jsonl").write_text(
        "".join(json.dumps({"row": i, "origin": o, "modification": ""}) + "\n" for i, o in enumerate(origins)), encoding="utf-8"
    )
    cfg = load_config(None, [f"evaluation.contamination.reference={benchmark}"])
    summary = evaluate_file(pairs, run / "eval", cfg, progress=False, scorer=Scorer(cfg, scorer.embedder, scorer.fluency, scorer.plausibility))
    scores = read_csv(run / "eval" / "scores.csv")
    flagged = ["contaminated" in s["flags"] for s in scores]
    assert flagged == [False, True, False, True]  # the seed row is not flagged; the copied question and answer are
    assert "prompt: 100%" in scores[1]["evidence"] and "rejected: 100%" in scores[3]["evidence"]
    assert summary["contamination"]["reference"] == str(benchmark) and summary["contamination"]["reference_questions"] == 3


@pytest.mark.parametrize(
    "content, message",
    [
        (b"prompt,chosen\nq,a\n", "missing column(s) ['rejected']"),
        (b"", "file is empty"),
        (b"prompt,chosen,rejected\n", "no data rows"),
        (b"prompt,chosen,rejected\nq\xff,a,b\n", "not valid UTF-8"),
        (b"prompt,chosen,rejected\nq,a,b\nq2,a2\n", "row 1 (line 3) has 2 fields, expected 3"),
        (b"prompt,chosen,rejected\nq,,b\n", "row 0: empty chosen"),
    ],
)
def test_malformed_input_is_a_one_line_error(tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = CliRunner().invoke(cli, ["evaluate", str(bad), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("synthgen: error: ") and message in lines[0] and str(bad) in lines[0]
    assert not (tmp_path / "out").exists()


def test_gate_settings_and_unverified_chosen_gate(tmp_path, scorer, labelled, caplog):
    cfg = load_config(None, ["evaluation.gate.fail_on_flags=[]", "evaluation.gate.require_chosen_correct=true"])
    pairs = write_pairs(tmp_path / "p.csv", labelled[12:20])
    summary = evaluate_file(pairs, tmp_path / "eval", cfg, progress=False, scorer=Scorer(cfg, scorer.embedder, scorer.fluency))
    assert summary["passed"] == 8  # nothing gates, and the chosen-correct gate cannot apply without a capable judge
    assert summary["chosen_correct_gate"].startswith("unverified")
    assert any("UNVERIFIED" in record.getMessage() for record in caplog.records)


def test_evaluation_keys_validate_in_a_domain_pack_and_judge_model_file(tmp_path):
    domains = Path(__file__).parent.parent / "configs" / "domains"
    pack = yaml.safe_load((domains / "healthcare.yaml").read_text(encoding="utf-8"))
    if "sample" in pack:
        pack["sample"] = str((domains / pack["sample"]).resolve())
    pack["evaluation"] = {
        "gate": {"require_chosen_correct": True, "fail_on_flags": ["pii", "rejected_agrees"]},
        "thresholds": {"relevance_min": 0.3},
        "judge": {"model": "strong-judge"},
        "extra_words": ["estoppel"],
    }
    (tmp_path / "domains").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "domains" / "law.yaml").write_text(yaml.safe_dump(pack), encoding="utf-8")
    (tmp_path / "models" / "strong-judge.yaml").write_text(
        yaml.safe_dump({"backend": {"engine": "endpoint", "base_url": "http://127.0.0.1:9/v1", "model": "Qwen2.5-32B-Instruct", "judge_capable": True}}),
        encoding="utf-8",
    )
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"name": "x", "domain": "law"}), encoding="utf-8")
    cfg = load_config(run)
    assert cfg.evaluation.gate.require_chosen_correct and cfg.evaluation.thresholds.relevance_min == 0.3
    assert cfg.evaluation.judge.backend is not None and cfg.evaluation.judge.backend.judge_capable
    assert cfg.backend.judge_capable is False
    pack["evaluation"]["thresholds"] = {"relevance_mn": 0.3}
    (tmp_path / "domains" / "law.yaml").write_text(yaml.safe_dump(pack), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"law.yaml: evaluation.thresholds.relevance_mn: unknown key"):
        load_config(run)


def test_fluency_checkers(scorer):
    fluency = scorer.fluency
    assert any("go" in issue for issue in fluency.grammar_issues("He go to the doctor every week."))
    assert fluency.grammar_issues("Take 200-400 mg... then rest - or sleep.") == []  # typography rules are off
    assert "diabetis" in fluency.spelling_issues("Metformin treats diabetis.")
    grammar, spelling, n_words = fluency.score("Metformin and ibuprofen are common medicines.")
    assert (grammar, spelling, n_words) == (0.0, 0.0, 6)


def test_collection_detectors():
    clusters = det.near_duplicate_clusters(["What causes gout?", "what causes gout", "How is gout treated?", "What causes gout ?"], 0.7)
    assert clusters == [0, 0, 2, 0]
    assert det.distinct_n(["a b a b"], 1) == 0.5 and det.distinct_n(["a b c"], 2) == 1.0
    reference = det.ngram_set(["what are the symptoms of flu"], 3)
    assert det.contamination("what are the symptoms of flu", reference, 3) == 1.0
    assert det.contamination("how is gout treated today", reference, 3) == 0.0


def test_judge_reply_scoring():
    assert yes_probability("No", {"Yes": -1.0, "No": -1.0}) == (0.5, "logprobs")
    assert yes_probability("Yes.", {}) == (1.0, "parsed")
    assert yes_probability("Maybe", {}) == (None, "unparsed")
    value, method = scale_score("4", {"4": -0.1, "5": -2.5, "x": -0.01})
    assert method == "logprobs" and 4.0 < value < 4.2
    assert scale_score("I rate it 3/5", {}) == (3.0, "parsed")


def test_review_export_and_import(labelled_eval, tmp_path):
    folder, pairs, _, scores = labelled_eval
    eval_dir = folder / "eval"
    sheet_csv, sheet_html = export_review(eval_dir, None, 20, 1, tmp_path / "review")
    sheet = read_csv(sheet_csv)
    assert len(sheet) == 20 and "flags" not in sheet[0] and "hardness" not in sheet[0]  # blind
    assert "<table>" in sheet_html.read_text(encoding="utf-8")
    first_flags = {(scores[int(r["row"])]["flags"].split(";")[0] or "clean") for r in sheet}
    assert len(first_flags) >= 8  # stratified: most flag kinds are represented
    # two reviewers: one follows the automated scores, one rates at random-ish
    rated = []
    for reviewer in ("ann", "bob"):
        for r in sheet:
            s = scores[int(r["row"])]
            usable = "yes" if (s["passed"] == "1") == (reviewer == "ann" or int(r["row"]) % 3 == 0) else "no"
            rel = str(1 + min(4, int(float(s["relevance_chosen"]) * 5))) if reviewer == "ann" else str(1 + int(r["row"]) % 5)
            rated.append({**r, "reviewer": reviewer, "pair_usable": usable, "relevant": rel, "question_ok": "yes"})
    path = tmp_path / "rated.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(sheet[0]))
        writer.writeheader()
        writer.writerows(rated)
    report = import_review([path], eval_dir)
    auto = report["experts_vs_automated"]
    assert auto["pair_usable"]["n"] == 40 and auto["relevant"]["n"] == 40
    from scipy.stats import spearmanr

    expected = spearmanr([float(r["relevant"]) for r in rated], [float(scores[int(r["row"])]["relevance_chosen"]) for r in rated]).statistic
    assert auto["relevant"]["spearman"] == pytest.approx(round(float(expected), 4))  # ann follows the score, bob does not
    assert report["between_experts"]["ann vs bob"]["rows"] == 20
    assert json.loads((eval_dir / "summary.json").read_text(encoding="utf-8"))["review"]["ratings"] == 40
    rated[0]["chosen_correct"] = "7"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(sheet[0]))
        writer.writeheader()
        writer.writerows(rated)
    with pytest.raises(InputDataError, match=r"rated.csv: row 0: chosen_correct: '7' is not one of 1/2/3/4/5"):
        import_review([path], eval_dir)


def test_feedback_import(labelled_eval, tmp_path):
    folder, _, _, scores = labelled_eval
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    for name in ("scores.csv", "summary.json"):
        (eval_dir / name).write_bytes((folder / "eval" / name).read_bytes())
    # give rows modifications so the per-modification figures have groups
    table = read_csv(eval_dir / "scores.csv")
    for i, row in enumerate(table):
        row["modification"] = "asks about treatments" if i % 2 else "asks about symptoms"
    with open(eval_dir / "scores.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    feedback = tmp_path / "fb.csv"
    feedback.write_text("Row ID,Rating,Comment\n0,5,great\n1,1,\"wrong, dangerous\"\n3,2,\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["feedback", "import", str(feedback), "--eval-dir", str(eval_dir)])
    assert result.exit_code == 0, result.output
    rows = read_csv(eval_dir / "feedback.csv")
    assert list(rows[0]) == ["row", "rating", "comment", "modification"]
    assert [(r["row"], r["rating"], r["modification"]) for r in rows] == [
        ("0", "5", "asks about symptoms"), ("1", "1", "asks about treatments"), ("3", "2", "asks about treatments"),
    ]  # fmt: skip
    figures = json.loads((eval_dir / "summary.json").read_text(encoding="utf-8"))["feedback"]["by_modification"]
    assert figures["asks about treatments"] == {"count": 2, "mean_rating": 1.5, "min": 1.0, "max": 2.0, "comments": 1}
    for content, message in (
        ("row,rating\n0,good\n", "row 0: rating: 'good' is not a number"),
        ("row,rating\n999,3\n", "row 0: row 999 is not in the evaluated data"),
        ("rating,comment\n3,x\n", "missing column 'row'"),
    ):
        feedback.write_text(content, encoding="utf-8")
        result = CliRunner().invoke(cli, ["feedback", "import", str(feedback), "--eval-dir", str(eval_dir)])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output


def test_report_shows_the_modification_weights_the_run_used(tmp_path, scorer, labelled, labelled_eval):
    cfg = load_config(None)
    first, second = cfg.modifications[0], cfg.modifications[1]
    cfg = load_config(None, [f"questions.modification_weights={{weights: {{'{first}': 0.9, '{second}': 0}}, default_weight: 0.4}}"])
    out = tmp_path / "eval"
    evaluate_file(write_pairs(tmp_path / "pairs.csv", labelled[:6]), out, cfg, scorer=scorer, progress=False)
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page.split("<h2>Modification sampling weights</h2>")[1].split("<h2>")[0]
    assert f"<td>{first}</td><td>0.900</td><td>from stats</td>" in section
    assert f"<td>{second}</td><td>0.000</td><td>retired</td>" in section
    assert section.count("<td>prior</td>") == len(cfg.modifications) - 2
    unweighted = (labelled_eval[0] / "eval" / "report.html").read_text(encoding="utf-8")
    assert "Modification sampling weights" not in unweighted


def test_report_shows_what_the_run_masked(tmp_path, cfg, scorer, labelled):
    run = tmp_path / "run"
    run.mkdir()
    privacy = {"pii_enabled": True, "masked": {"input_questions": {"EMAIL": 2, "SSN": 1}, "generated_questions": {}, "answers": {"PHONE": 1}}}
    (run / "run_summary.json").write_text(json.dumps({"privacy": privacy}), encoding="utf-8")
    evaluate_file(write_pairs(run / "questions_and_responses.csv", labelled[:4]), run / "eval", cfg, scorer=scorer, progress=False)
    section = (run / "eval" / "report.html").read_text(encoding="utf-8").split("<h2>Personal data masked by the run</h2>")[1].split("<h2>")[0]
    assert "scrubbing was on" in section
    assert "<td>input_questions</td><td>EMAIL 2, SSN 1</td>" in section and "<td>answers</td><td>PHONE 1</td>" in section
    assert "<td>generated_questions</td><td>none</td>" in section


def test_bench_reads_a_users_csv_labels_and_computes_intervals(tmp_path):
    labels = tmp_path / "mine.csv"
    labels.write_text(
        "prompt,chosen,rejected,rejected_easy,pii\n"
        "q1,a,b,yes,no\nq2,a,b,no,no\nq3,a,b,yes,no\nq4,a,b,no,yes\n", encoding="utf-8",
    )  # fmt: skip
    pairs = bench.read_labels(labels)
    assert [p["labels"] for p in pairs][0] == {"rejected_easy": True, "pii": False}
    result = bench.figures(pairs, [{"rejected_easy"}, {"rejected_easy"}, set(), {"pii"}], resamples=200)
    easy = result["flags"]["rejected_easy"]
    assert (easy["tp"], easy["fp"], easy["fn"], easy["precision"], easy["recall"]) == (1, 1, 1, 0.5, 0.5)
    assert 0 <= easy["precision_ci"][0] <= 0.5 <= easy["precision_ci"][1] <= 1
    assert result["flags"]["pii"]["precision"] == 1.0 and result["clean_pairs"] == 1
    labels.write_text("prompt,chosen,rejected,pii\nq,a,b,maybe\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"mine.csv: row 0: pii: 'maybe' is not yes/no"):
        bench.read_labels(labels)
    labels.write_text("prompt,chosen,rejected\nq,a,b\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="no label column"):
        bench.read_labels(labels)


def test_bench_offline_ceiling_finds_what_one_score_or_all_scores_can_separate():
    import numpy as np

    rng = np.random.default_rng(0)
    truth = np.arange(200) % 5 == 0  # 40 positives
    separating = np.where(truth, 0.9, 0.1) + rng.normal(0, 0.01, 200)
    noise = rng.normal(0, 1, 200)
    inverted = -separating  # a low value marks a positive: found with the other direction
    assert bench.offline_ceiling(truth, {"noise": noise})["recall"] < 0.3
    best = bench.offline_ceiling(truth, {"noise": noise, "inverted": inverted})
    assert best["recall"] == 1.0 and best["rule"].startswith("inverted <= ") and best["auc"] == 1.0 and best["auc_score"] == "-inverted"
    missing = separating.copy()
    missing[truth] = np.nan  # a missing score never counts as over the threshold
    assert bench.offline_ceiling(truth, {"missing": missing})["recall"] == 0.0
    decided = np.zeros(200, dtype=bool)
    assert bench.learned_ceiling(truth, {"noise": noise, "separating": separating}, decided)["recall"] == 1.0
    assert bench.learned_ceiling(truth, {"noise": noise}, decided)["recall"] < 0.3
    assert bench.learned_ceiling(truth, {"noise": noise}, truth)["recall"] == 1.0  # the evaluator's own decision counts
    assert bench.learned_ceiling(np.arange(20) < 3, {"noise": noise[:20]}, decided[:20]) is None  # too few positives to fold
    assert bench.best_recall_at_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([True, False, True, False])) == 0.5


def test_bench_judge_ranking_reads_each_flags_judge_column_in_its_direction():
    import numpy as np

    truth = np.array([True, True, False, False, False])
    same = np.array([0.9, 0.7, 0.8, 0.2, np.nan])  # one pair the judge did not answer
    plausible = np.array([0.1, 0.3, 0.9, 0.8, 0.7])  # low plausibility marks an easy negative
    columns = {"judge_same_claims": same, "judge_rejected_plausible": plausible}
    agrees = bench.judge_ranking(truth, columns, "rejected_agrees")
    assert agrees["score"] == "judge_same_claims" and agrees["auc"] == 0.833 and agrees["answered"] == 4
    assert agrees["recall"] == 0.5 and agrees["threshold"] == 0.9  # 0.8 would let a negative in: precision 2/3
    easy = bench.judge_ranking(truth, columns, "rejected_easy")
    assert easy["score"] == "-judge_rejected_plausible" and easy["auc"] == 1.0 and easy["recall"] == 1.0 and easy["threshold"] == 0.3
    assert bench.judge_ranking(truth, {"judge_same_claims": same}, "rejected_easy") is None  # no plausibility column
    assert bench.judge_ranking(np.zeros(5, dtype=bool), columns, "rejected_agrees") is None
    scores = [{"flags": "", "claim_support": "0.5", "judge_same_claims": "0.7"}, {"flags": "x", "claim_support": "", "judge_same_claims": ""}]
    assert set(bench.score_vectors(scores)) == {"claim_support"} and set(bench.score_vectors(scores, judge=True)) == {"judge_same_claims"}


def test_retired_threshold_keys_load_with_a_warning_naming_the_replacement(caplog):
    with caplog.at_level("WARNING", logger="generation.config"):
        cfg = load_config(None, ["evaluation.thresholds.agreement_max=0.85", "evaluation.thresholds.agreement_paraphrase=0.93"])
    assert not hasattr(cfg.evaluation.thresholds, "agreement_max")
    messages = [r.getMessage() for r in caplog.records]
    assert any("agreement_max is no longer used" in m and "claim_similarity_min" in m for m in messages)
    assert any("agreement_paraphrase is no longer used" in m for m in messages)
    with caplog.at_level("WARNING", logger="generation.config"):
        caplog.clear()
        load_config(None)
    assert not [r for r in caplog.records if "no longer used" in r.getMessage()]  # the bundled packs set none


def test_model_threads_auto_leaves_busy_cpus_alone(monkeypatch):
    from generation.evaluation import metrics

    cpus = len(os.sched_getaffinity(0))
    assert metrics.torch_threads(3) == 3 and load_config(None, ["evaluation.plausibility.threads=2"]).evaluation.plausibility.threads == 2
    monkeypatch.setattr(metrics.os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # this process alone
    assert metrics.torch_threads("auto") == cpus
    monkeypatch.setattr(metrics.os, "getloadavg", lambda: (cpus + 8.0, 1.0, 1.0))
    assert metrics.torch_threads("auto") == 1
    monkeypatch.setattr(metrics.os, "getloadavg", lambda: (2.0, 1.0, 1.0))  # one other busy process
    assert metrics.torch_threads("auto") == max(1, cpus - 1)
    with pytest.raises(ConfigError, match="evaluation.plausibility.threads"):
        load_config(None, ["evaluation.plausibility.threads=0"])
    monkeypatch.setenv("SYNTHGEN_EMBED_THREADS", "two")
    with pytest.raises(ConfigError, match="SYNTHGEN_EMBED_THREADS: 'two' is not a number"):
        metrics.Embedder()
