"""The LLM judge's mechanics and the end-of-run evaluation, against the real embedded model server.

SmolLM2-135M cannot judge medical truth; these tests check the machinery (log-probabilities, caching,
labelling as an unverified proxy), never the verdicts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import MODEL_ALIAS, REPO, load_bench_evaluator, synthgen, tiny_config

from generation.config import load_config
from generation.evaluation.evaluate import evaluate_file
from generation.evaluation.judge import REQUESTS_PER_PAIR

pytestmark = pytest.mark.model

PAIRS = [
    {"prompt": "What does insulin do?", "chosen": "Insulin lets cells take up glucose from the blood, lowering blood sugar.",
     "rejected": "Insulin raises blood sugar by turning muscle into glucose."},
    {"prompt": "Is influenza caused by a virus?", "chosen": "Yes, influenza is caused by influenza viruses.",
     "rejected": "No, influenza is caused by bacteria that live in cold water."},
    {"prompt": "How is strep throat treated?", "chosen": "Strep throat is treated with antibiotics such as penicillin.",
     "rejected": "Strep throat is treated with antacids, which neutralise the infection."},
]  # fmt: skip


def judge_config(tmp_path: Path, base_url: str, capable: bool) -> Path:
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    backend = {"engine": "endpoint", "base_url": base_url, "model": MODEL_ALIAS, "max_concurrency": 2, "judge_capable": capable}
    (models / "local-judge.yaml").write_text(yaml.safe_dump({"backend": backend}), encoding="utf-8")
    return tiny_config(tmp_path, base_url, name="judged", evaluation={"judge": {"model": "local-judge"}})


def write_pairs(path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["prompt", "chosen", "rejected"])
        writer.writeheader()
        writer.writerows(PAIRS)
    return path


def test_judge_scores_from_logprobs_are_cached_and_labelled_unverified(tmp_path, model_server):
    cfg = load_config(judge_config(tmp_path, model_server, capable=False))
    assert cfg.evaluation.judge.backend is not None and not cfg.evaluation.judge.backend.judge_capable
    pairs = write_pairs(tmp_path / "pairs.csv")
    out = tmp_path / "eval"
    summary = evaluate_file(pairs, out, cfg, progress=False)
    with open(out / "scores.csv", encoding="utf-8", newline="") as handle:
        scores = list(csv.DictReader(handle))
    for row in scores:
        assert 0.0 <= float(row["judge_chosen_correct"]) <= 1.0
        assert 0.0 <= float(row["judge_rejected_incorrect"]) <= 1.0
        assert 1.0 <= float(row["judge_truthfulness_chosen"]) <= 5.0
        assert 0.0 <= float(row["judge_same_claims"]) <= 1.0 and 0.0 <= float(row["judge_rejected_plausible"]) <= 1.0
        # a P(yes) strictly inside (0, 1) can only come from log-probabilities, not from a parsed Yes/No
    assert summary["judge"]["methods"].get("logprobs", 0) >= 2 * len(PAIRS)
    assert any(0.0 < float(r["judge_chosen_correct"]) < 1.0 for r in scores)
    assert summary["judge_model"] == "local-judge" and summary["judge_capable"] is False
    assert summary["misinformation_rate"] is None and summary["judge_proxy"]["status"] == "unverified proxy"
    assert all("unverified proxy" in m["judge"] for m in summary["judge_metrics"].values())
    requests = summary["judge"]["usage"]["primary"]["total"]["requests"]
    assert requests == len(PAIRS) * REQUESTS_PER_PAIR
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "UNVERIFIED PROXY" in page and "not a misinformation rate" in page

    again = evaluate_file(pairs, out, cfg, progress=False)  # a re-evaluation does not re-ask
    usage = again["judge"]["usage"]["primary"]["total"]
    assert usage["requests"] == 0 and usage["cache_hits"] == len(PAIRS) * REQUESTS_PER_PAIR
    with open(out / "scores.csv", encoding="utf-8", newline="") as handle:
        assert [r["judge_chosen_correct"] for r in csv.DictReader(handle)] == [r["judge_chosen_correct"] for r in scores]


def test_capable_judge_gates_on_chosen_correct(tmp_path, model_server):
    cfg = load_config(judge_config(tmp_path, model_server, capable=True), ["evaluation.gate.require_chosen_correct=true"])
    summary = evaluate_file(write_pairs(tmp_path / "pairs.csv"), tmp_path / "eval", cfg, progress=False)
    with open(tmp_path / "eval" / "scores.csv", encoding="utf-8", newline="") as handle:
        scores = list(csv.DictReader(handle))
    threshold = cfg.evaluation.thresholds.judge_correct_min
    for row in scores:
        doubtful = float(row["judge_chosen_correct"]) < threshold
        assert ("chosen_doubtful" in row["flags"]) == doubtful
        if doubtful:
            assert row["passed"] == "0"
        # a capable judge decides rejected_agrees from its pairwise answer, and the evidence says so
        same = float(row["judge_same_claims"]) >= cfg.evaluation.thresholds.judge_same_claims_min
        assert ("rejected_agrees" in row["flags"]) == same
        assert ("rejected_agrees: judge: P(same claims)" in row["evidence"]) == same
        if "rejected_easy" in row["flags"]:
            assert "rejected_easy: offline:" in row["evidence"] or float(row["judge_rejected_plausible"]) < 0.5
    assert summary["chosen_correct_gate"] == "applied" and summary["misinformation_rate"] is not None


def test_run_evaluates_into_eval_folder(tmp_path, model_server):
    out = tmp_path / "run"
    config = tiny_config(tmp_path, model_server, evaluation={"enabled": True})
    result = synthgen("-q", "run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["evaluation"]["status"] == "completed"
    with open(out / "eval" / "scores.csv", encoding="utf-8", newline="") as handle:
        scores = list(csv.DictReader(handle))
    assert len(scores) == summary["rows"]["pairs"]
    provenance = [json.loads(line) for line in (out / "questions_and_responses.provenance.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [s["modification"] for s in scores] == [p["modification"] for p in provenance]
    assert (out / "eval" / "report.html").is_file() and (out / "eval" / "filtered.csv").is_file()
    assert "## Quality" in (out / "README.md").read_text(encoding="utf-8")
    assert "eval/summary.json" in (out / "README.md").read_text(encoding="utf-8")


def test_bench_reports_how_the_judges_scores_rank_a_labelled_set(tmp_path, model_server, capsys):
    bench = load_bench_evaluator()
    # 10 real vLLM pairs: 2 rejected_agrees positives, and 5 rejected_easy positives and 5 negatives (the fewest the
    # cross-validated fit takes)
    vllm4 = yaml.safe_load((REPO / "tests" / "data" / "eval" / "labelled-vllm4.yaml").read_text(encoding="utf-8"))
    pairs = [vllm4[i] for i in (0, 3, 4, 7, 8, 10, 11, 12, 14, 15)]
    assert [sum(p["labels"][flag] for p in pairs) for flag in ("rejected_agrees", "rejected_easy")] == [2, 5]
    labels = tmp_path / "labels.yaml"
    labels.write_text(yaml.safe_dump(pairs, sort_keys=False, allow_unicode=True), encoding="utf-8")
    figures = tmp_path / "figures.json"
    config = judge_config(tmp_path, model_server, capable=False)
    assert bench.main(["--labels", str(labels), "-c", str(config), "--resamples", "20", "--json", str(figures)]) == 0
    out = capsys.readouterr().out
    assert f"judge {MODEL_ALIAS} (not judge_capable" in out
    ranking = json.loads(figures.read_text(encoding="utf-8"))["judge_ranking"]
    agrees, easy = ranking["rejected_agrees"], ranking["rejected_easy"]
    assert agrees["judge_score"]["answered"] == easy["judge_score"]["answered"] == 10
    assert agrees["judge_score"]["score"] == "judge_same_claims" and easy["judge_score"]["score"] == "-judge_rejected_plausible"
    assert all(0.0 <= entry["judge_score"]["auc"] <= 1.0 for entry in (agrees, easy))
    assert agrees["learned_with_judge"] is None  # 2 positives: too few for 5 folds
    assert 0.0 <= easy["learned_with_judge"]["recall"] <= 1.0 and easy["learned_with_judge"]["folds"] == 5
