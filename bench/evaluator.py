"""The evaluator's per-flag precision and recall on a labelled set, with bootstrap intervals, and its speed.

    python bench/evaluator.py                        # tests/data/eval/labelled*.yaml: all, dev, held-out, vLLM slice
    python bench/evaluator.py --labels my_set.csv    # your own labelled pairs (CSV or YAML, see below; repeatable)
    python bench/evaluator.py --write                # also store the figures in configs/eval/precision.json
    python bench/evaluator.py --time-pairs 300       # also time the whole evaluation of 300 pairs
    python bench/evaluator.py --set evaluation.judge.model=qwen2.5-32b-instruct-vllm-judge
                                                     # with a judge: also how its own scores rank the pairs

A labels file is either our YAML (a list of pairs with ``prompt``, ``chosen``, ``rejected`` and a ``labels``
mapping flag -> true/false, optional ``split`` and ``source``) or a CSV with columns ``prompt``, ``chosen``,
``rejected`` and one column per labelled flag (yes/no, true/false or 1/0). Flags without a label column are
not measured. Each labels file is evaluated as one file in its order (``duplicate_prompt`` looks backwards),
exactly as ``synthgen evaluate`` does, with the default config (``-c``/``--set`` change it).
The last line printed is the headline.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generation.config import BUNDLED_CONFIGS, load_config  # noqa: E402
from generation.errors import InputDataError  # noqa: E402
from generation.evaluation.evaluate import FLAG_CODES, evaluate_file  # noqa: E402

DEFAULT_LABELS = REPO / "tests" / "data" / "eval" / "labelled.yaml"
# The vLLM slices, split -> file: each measured once when fresh; all but the last then developed on (SPLIT_NOTES).
VLLM_SLICES = {split: REPO / "tests" / "data" / "eval" / f"labelled-{split}.yaml" for split in ("vllm", "vllm2", "vllm3", "vllm4")}
DEFAULT_LABEL_FILES = (DEFAULT_LABELS, *VLLM_SLICES.values())
SPLIT_ORDER = {"dev": 0, "heldout": 1, "heldout2": 2, "vllm": 3, "vllm2": 4, "vllm3": 5, "vllm4": 6}
SPLIT_NOTES = {
    "dev": " (rules developed on these)",
    "heldout": " (measured once, then a second round of rules looked at its errors)",
    "heldout2": " (measured once after that second round; this branch's rules were developed on dev errors only)",
    "vllm": " (vLLM output, labelled before any detector ran, measured once; a later round of rules looked at its errors)",
    "vllm2": " (vLLM output, labelled before any detector ran, measured once with round-1 rules; round 2 looked at its errors)",
    "vllm3": " (vLLM output, labelled after round-2 rules were committed and before any detector ran; measured once with them; round 3 looked at its errors)",
    "vllm4": " (vLLM output, labelled after round-3 rules were committed and before any detector ran; measured once with them)",
}
PRECISION_FILE = BUNDLED_CONFIGS / "eval" / "precision.json"
# The flags issue 15 sets goals for (precision and recall >= 0.8 with >= 20 positives).
GOAL_FLAGS = ("rejected_agrees", "rejected_easy", "rejected_self_corrects", "rejected_self_contradictory", "question_not_informational")
TRUE, FALSE = {"yes", "true", "1", "y"}, {"no", "false", "0", "n", ""}
# The judge column that decides each flag when the judge is judge_capable, and its direction (+1: high means flagged).
JUDGE_SCORES = {"rejected_agrees": ("judge_same_claims", 1.0), "rejected_easy": ("judge_rejected_plausible", -1.0)}


def labels_digest(files: list[Path]) -> str:
    """sha256 of the labelled files, in order (one file: its own sha256)."""
    if len(files) == 1:
        return hashlib.sha256(files[0].read_bytes()).hexdigest()
    return hashlib.sha256(b"".join(hashlib.sha256(f.read_bytes()).digest() for f in files)).hexdigest()


def read_labels(path: Path) -> list[dict[str, Any]]:
    """Pairs with ``labels`` (flag -> bool), ``split`` and ``source`` from our YAML or a CSV; one-line errors."""
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise InputDataError(f"{path}: expected a list of labelled pairs")
        pairs = []
        for index, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
                raise InputDataError(f"{path}: pair {index}: needs prompt, chosen, rejected and a labels mapping")
            for field in ("prompt", "chosen", "rejected"):
                if not isinstance(item.get(field), str) or not item[field].strip():
                    raise InputDataError(f"{path}: pair {index}: empty or missing {field}")
            unknown = set(item["labels"]) - set(FLAG_CODES)
            if unknown:
                raise InputDataError(f"{path}: pair {index}: unknown flag(s) {sorted(unknown)}")
            pairs.append({**item, "labels": {k: bool(v) for k, v in item["labels"].items()}})
        return pairs
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in ("prompt", "chosen", "rejected") if c not in columns]
        if missing:
            raise InputDataError(f"{path}: missing column(s) {missing}")
        flags = [c for c in columns if c in FLAG_CODES]
        if not flags:
            raise InputDataError(f"{path}: no label column (one of {', '.join(FLAG_CODES)})")
        pairs = []
        for index, row in enumerate(reader):
            labels = {}
            for flag in flags:
                value = (row.get(flag) or "").strip().lower()
                if value not in TRUE | FALSE:
                    raise InputDataError(f"{path}: row {index}: {flag}: {row.get(flag)!r} is not yes/no")
                labels[flag] = value in TRUE
            pairs.append({"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"], "labels": labels,
                          "split": row.get("split") or "all", "source": {"kind": row.get("source") or "user"}})  # fmt: skip
        return pairs


def bootstrap_interval(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, resamples: int, seed: int) -> tuple[list, list]:
    """95% percentile intervals of precision and recall, resampling pairs (one 0/1 vector each)."""
    rng = np.random.default_rng(seed)
    n = tp.size
    idx = rng.integers(0, n, size=(resamples, n))
    t, f, m = tp[idx].sum(1), fp[idx].sum(1), fn[idx].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision, recall = t / (t + f), t / (t + m)

    def interval(values: np.ndarray) -> list[float] | None:
        values = values[~np.isnan(values)]
        return [round(float(v), 3) for v in np.quantile(values, [0.025, 0.975])] if values.size else None

    return interval(precision), interval(recall)


def figures(pairs: list[dict[str, Any]], flags_found: list[set[str]], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per labelled flag: positives, flagged, TP/FP/FN, precision and recall with intervals; clean-pair false alarms."""
    out: dict[str, Any] = {"pairs": len(pairs), "flags": {}}
    labelled = sorted({f for p in pairs for f in p["labels"]}, key=list(FLAG_CODES).index)
    for flag in labelled:
        rows = [(p["labels"][flag], flag in found) for p, found in zip(pairs, flags_found) if flag in p["labels"]]
        truth = np.array([t for t, _ in rows], dtype=bool)
        pred = np.array([f for _, f in rows], dtype=bool)
        tp, fp, fn = truth & pred, ~truth & pred, truth & ~pred
        entry: dict[str, Any] = {"positives": int(truth.sum()), "flagged": int(pred.sum()), "tp": int(tp.sum()), "fp": int(fp.sum()), "fn": int(fn.sum())}
        entry["precision"] = round(entry["tp"] / entry["flagged"], 3) if entry["flagged"] else None
        entry["recall"] = round(entry["tp"] / entry["positives"], 3) if entry["positives"] else None
        entry["precision_ci"], entry["recall_ci"] = bootstrap_interval(tp.astype(float), fp.astype(float), fn.astype(float), resamples, seed)
        out["flags"][flag] = entry
    clean = [found for p, found in zip(pairs, flags_found) if not any(p["labels"].values())]
    out["clean_pairs"] = len(clean)
    out["clean_pairs_flagged"] = sum(bool(found) for found in clean)
    return out


def evaluate_pairs(pairs: list[dict[str, Any]], cfg: Any, folder: Path) -> tuple[list[set[str]], list[dict[str, str]], dict[str, Any]]:
    """Run ``synthgen evaluate`` on the pairs as one CSV; returns each row's flags, the scores and the summary."""
    from generation.io import read_csv_rows, write_csv

    path = folder / "pairs.csv"
    write_csv(path, ["prompt", "chosen", "rejected"], ({k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs))
    summary = evaluate_file(path, folder / "eval", cfg, progress=False)
    scores = read_csv_rows(folder / "eval" / "scores.csv", ["flags"])
    return [set(s["flags"].split(";")) - {""} for s in scores], scores, summary


def time_pairs(pairs: list[dict[str, Any]], n: int, cfg: Any, folder: Path) -> dict[str, float]:
    """Wall and CPU seconds of evaluating ``n`` distinct pairs (the set's answers recombined) in a fresh process state."""
    from generation.io import write_csv

    k = len(pairs)
    rows = [
        {"prompt": pairs[i % k]["prompt"] + ("" if i < k else f" ({i // k})"), "chosen": pairs[i % k]["chosen"],
         "rejected": pairs[(i + i // k) % k]["rejected"]}
        for i in range(n)
    ]  # fmt: skip
    path = folder / "timing.csv"
    write_csv(path, ["prompt", "chosen", "rejected"], rows)
    wall, cpu = time.monotonic(), time.process_time()
    evaluate_file(path, folder / "timing", cfg, progress=False)
    return {"pairs": n, "wall_s": round(time.monotonic() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}


def fmt(entry: dict[str, Any], key: str) -> str:
    value, ci = entry.get(key), entry.get(f"{key}_ci")
    if value is None:
        return "   -              "
    return f"{value:5.2f} [{ci[0]:.2f}-{ci[1]:.2f}]" if ci else f"{value:5.2f}"


def print_table(title: str, result: dict[str, Any]) -> None:
    print(f"\n{title}: {result['pairs']} pairs; clean pairs flagged {result['clean_pairs_flagged']}/{result['clean_pairs']}")
    print(f"  {'flag':30s} {'pos':>4s} {'flagged':>7s}  {'precision [95% CI]':20s} {'recall [95% CI]':20s}")
    for flag, e in result["flags"].items():
        print(f"  {flag:30s} {e['positives']:4d} {e['flagged']:7d}  {fmt(e, 'precision'):20s} {fmt(e, 'recall'):20s}")


def evaluate_label_files(files: list[Path], cfg: Any, folder: Path) -> tuple[list[dict[str, Any]], list[set[str]], list[dict[str, str]]]:
    """Every pair of every file with the flags found and its scores.csv row; each file is evaluated on its own,
    as one run's output."""
    pairs, found, scores = [], [], []
    for index, path in enumerate(files):
        these = read_labels(path)
        flags, rows, _ = evaluate_pairs(these, cfg, folder / f"labels-{index}")
        pairs += these
        found += flags
        scores += rows
    return pairs, found, scores


def score_vectors(scores: list[dict[str, str]], judge: bool = False) -> dict[str, np.ndarray]:
    """The offline scores of scores.csv as float columns (NaN where empty), row ids left out; with ``judge``, the
    judge's columns instead. Columns with no value at all are left out."""
    out = {}
    for column in scores[0] if scores else ():
        if column.startswith("judge_") != judge or column in ("row", "duplicate_of", "passed"):
            continue
        try:
            values = np.array([float(s[column]) if s[column] != "" else np.nan for s in scores])
        except ValueError:
            continue  # text: prompt, flags, evidence...
        if np.isfinite(values).any():
            out[column] = values
    return out


def roc_auc(values: np.ndarray, truth: np.ndarray) -> float | None:
    """P(a positive scores above a negative), ties counting half; missing values rank lowest."""
    v = np.where(np.isnan(values), -np.inf, values)
    pos, neg = v[truth], v[~truth]
    if not pos.size or not neg.size:
        return None
    return float(np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :]))


def _best_cut(values: np.ndarray, truth: np.ndarray, precision_min: float) -> tuple[np.ndarray, int | None, np.ndarray]:
    """Flag the pairs whose value is >= a threshold: (values sorted descending, index of the last flagged pair of
    the threshold with the most true positives at precision >= ``precision_min``, or None, cumulative hits).
    Thresholds fall between distinct finite values only; a missing value (-inf) is never flagged."""
    order = np.argsort(-values, kind="stable")
    ranked, hits = values[order], np.cumsum(truth[order])
    cut = np.r_[ranked[1:] != ranked[:-1], True] & np.isfinite(ranked)
    ok = cut & (hits / np.arange(1, values.size + 1) >= precision_min)
    return ranked, (int(np.flatnonzero(ok)[np.argmax(hits[ok])]) if ok.any() else None), hits


def offline_ceiling(truth: np.ndarray, columns: dict[str, np.ndarray], precision_min: float = 0.8) -> dict[str, Any] | None:
    """The most that one threshold on one offline score could do for a flag on these pairs: over every score
    column and both directions, the highest recall of a threshold whose precision is >= ``precision_min``, and the
    best ROC AUC. The threshold is fitted on the same pairs, so both are optimistic: an upper bound of what
    re-tuning a single threshold can give, not a measurement of the evaluator."""
    if not truth.any():
        return None
    best: dict[str, Any] = {"recall": 0.0, "rule": None, "auc": 0.0, "auc_score": None}
    for column, values in columns.items():
        for sign, op in ((1.0, ">="), (-1.0, "<=")):
            v = np.where(np.isnan(values), -np.inf, sign * values)  # missing: never over the threshold
            auc = roc_auc(v, truth)
            if auc is not None and auc > best["auc"]:
                best["auc"], best["auc_score"] = round(auc, 3), f"{'' if sign > 0 else '-'}{column}"
            ranked, k, hits = _best_cut(v, truth, precision_min)
            if k is not None and hits[k] / truth.sum() > best["recall"]:
                best["recall"], best["rule"] = round(float(hits[k] / truth.sum()), 3), f"{column} {op} {sign * ranked[k]:.4g}"
    return best


def best_recall_at_precision(probability: np.ndarray, truth: np.ndarray, precision_min: float = 0.8) -> float:
    """The highest recall of a threshold on ``probability`` whose precision is >= ``precision_min`` (0 when none)."""
    _, k, hits = _best_cut(probability, truth, precision_min)
    return round(float(hits[k] / truth.sum()), 3) if k is not None and truth.any() else 0.0


def learned_ceiling(truth: np.ndarray, columns: dict[str, np.ndarray], decided: np.ndarray, folds: int = 5, seed: int = 0) -> dict[str, Any] | None:
    """What a logistic regression over every offline score plus the evaluator's own decision reaches for a flag,
    cross-validated (each pair scored by a model fitted on the other folds): recall at precision >= 0.8 and
    ROC AUC. Missing scores take the column's median. None with fewer than ``folds`` positives."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if truth.sum() < folds or (~truth).sum() < folds:
        return None
    matrix = np.column_stack([*columns.values(), decided.astype(float)])
    medians = np.nanmedian(matrix, axis=0)
    matrix = np.where(np.isnan(matrix), medians, matrix)
    probability = np.zeros(truth.size)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(matrix, truth):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
        model.fit(matrix[train], truth[train])
        probability[test] = model.predict_proba(matrix[test])[:, 1]
    return {"recall": best_recall_at_precision(probability, truth), "auc": round(roc_auc(probability, truth) or 0.0, 3), "folds": folds}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _auc_text(value: float | None) -> str:
    return "n/a (one class only)" if value is None else f"{value:.2f}"


def judge_ranking(truth: np.ndarray, columns: dict[str, np.ndarray], flag: str, precision_min: float = 0.8) -> dict[str, Any] | None:
    """How well the judge's own score for ``flag`` (JUDGE_SCORES) ranks the labelled pairs: ROC AUC, and the best
    recall at precision >= ``precision_min`` of one threshold fitted on these pairs (an upper bound, like the
    offline ceiling). None without that judge column or without positives."""
    column, sign = JUDGE_SCORES.get(flag, (None, 1.0))
    if column not in columns or not truth.any():
        return None
    values = np.where(np.isnan(columns[column]), -np.inf, sign * columns[column])
    ranked, k, hits = _best_cut(values, truth, precision_min)
    return {
        "score": column if sign > 0 else f"-{column}", "auc": _rounded(roc_auc(values, truth)),
        "recall": round(float(hits[k] / truth.sum()), 3) if k is not None else 0.0,
        "threshold": round(float(sign * ranked[k]), 4) if k is not None else None,
        "answered": int(np.isfinite(columns[column]).sum()),
    }  # fmt: skip


def report_judge(cfg: Any) -> str:
    """The configured judge's model and whether it decides flags (judge_capable)."""
    backend = cfg.evaluation.judge.backend
    if backend is None:
        return "(none configured)"
    return f"{backend.model}" + ("" if backend.judge_capable else " (not judge_capable: its columns are filled, the offline cues decide)")


def goal_summary(name: str, head: dict[str, Any]) -> str:
    """One line: how many goal flags reach precision and recall >= 0.8 here, the weakest ones, clean-pair alarms."""
    goal = [f for f in GOAL_FLAGS if f in head["flags"]]
    met = [f for f in goal if (head["flags"][f]["precision"] or 0) >= 0.8 and (head["flags"][f]["recall"] or 0) >= 0.8]
    low_p = min(((head["flags"][f]["precision"] or 0), f) for f in goal) if goal else (None, "")
    low_r = min(((head["flags"][f]["recall"] or 0), f) for f in goal) if goal else (None, "")
    return (
        f"{name} ({head['pairs']} pairs): {len(met)}/{len(goal)} goal flags at precision and recall >= 0.8, lowest precision "
        f"{low_p[0]} ({low_p[1]}), lowest recall {low_r[0]} ({low_r[1]}), clean pairs flagged {head['clean_pairs_flagged']}/{head['clean_pairs']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, action="append", default=None,
                        help="a labelled file (repeatable; each is evaluated on its own); default: our two labelled files")
    parser.add_argument("-c", "--config", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--split", default="all", help="report only this split (every pair is still evaluated, file by file, in order)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--time-pairs", type=int, default=0, help="also time evaluating this many pairs")
    parser.add_argument("--write", action="store_true", help=f"store the figures in {PRECISION_FILE.relative_to(REPO)}")
    parser.add_argument("--json", type=Path, default=None, help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    files = args.labels or list(DEFAULT_LABEL_FILES)

    # the gate does not change any flag; fixing it keeps the bench independent of the precision file it writes
    cfg = load_config(args.config, ["evaluation.gate.fail_on_flags=[]", *args.overrides])
    started, cpu0 = time.monotonic(), time.process_time()
    try:
        with tempfile.TemporaryDirectory(prefix="synthgen-bench-eval-") as tmp:
            pairs, found, scores = evaluate_label_files(files, cfg, Path(tmp))
            elapsed = {"wall_s": round(time.monotonic() - started, 1), "cpu_s": round(time.process_time() - cpu0, 1)}
            timing = time_pairs(pairs, args.time_pairs, cfg, Path(tmp)) if args.time_pairs else None
    except (InputDataError, OSError, yaml.YAMLError) as exc:
        print(f"bench/evaluator.py: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "labels": [str(f.resolve().relative_to(REPO)) if f.resolve().is_relative_to(REPO) else str(f) for f in files],
        "labels_sha256": labels_digest(files),
        "evaluation_s": elapsed,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    selected = [i for i, p in enumerate(pairs) if args.split == "all" or p.get("split") == args.split]
    groups = {"all" if args.split == "all" else args.split: selected}
    if args.split == "all":
        for name in sorted({str(p.get("split")) for p in pairs if p.get("split")}, key=lambda n: (SPLIT_ORDER.get(n, 9), n)):
            groups[name] = [i for i in selected if pairs[i].get("split") == name]
    for kind in ("generated", "written"):
        members = [i for i in selected if (pairs[i].get("source") or {}).get("kind") == kind]
        if members:
            groups[f"{kind} ({args.split})" if args.split != "all" else kind] = members
    for name, members in groups.items():
        report[name] = figures([pairs[i] for i in members], [found[i] for i in members], args.resamples)
        print_table(f"{name}{SPLIT_NOTES.get(name, '')}", report[name])
    head = "all" if args.split == "all" else args.split
    columns = {name: values[groups[head]] for name, values in score_vectors(scores).items()}
    report["offline_ceiling"] = {}
    print(f"\noffline ceiling on {head}: what re-tuning could give (one threshold on one offline score, fitted on these same pairs:")
    print("  an upper bound; and a logistic regression over all of them, cross-validated)")

    def labelled(flag: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the pairs of ``head`` that carry a label for ``flag``: the truth, the evaluator's decision, and the mask."""
        truth = np.array([pairs[i]["labels"].get(flag, False) for i in groups[head]], dtype=bool)
        known = np.array([flag in pairs[i]["labels"] for i in groups[head]], dtype=bool)
        decided = np.array([flag in found[i] for i in groups[head]], dtype=bool)
        return truth[known], decided[known], known

    for flag in GOAL_FLAGS:
        truth, decided, known = labelled(flag)
        known_columns = {k: v[known] for k, v in columns.items()}
        ceiling = offline_ceiling(truth, known_columns)
        learned = learned_ceiling(truth, known_columns, decided)
        report["offline_ceiling"][flag] = {"one_score": ceiling, "learned": learned}
        if ceiling:
            rule = f" ({ceiling['rule']})" if ceiling["rule"] else ""
            print(f"  {flag:30s} one score: recall {ceiling['recall']:.2f} at precision >= 0.8{rule}, best ROC AUC " + (f"{ceiling['auc']:.2f} ({ceiling['auc_score']})" if ceiling["auc_score"] else _auc_text(None)))
        if learned:
            print(f"  {'':30s} all scores + the evaluator's decision, logistic, {learned['folds']}-fold: recall {learned['recall']:.2f} at precision >= 0.8, ROC AUC {learned['auc']:.2f}")
    judge_columns = {name: values[groups[head]] for name, values in score_vectors(scores, judge=True).items()}
    if judge_columns:
        report["judge_ranking"] = {}
        print(f"\njudge {report_judge(cfg)} on {head}: how its own score ranks the pairs (threshold fitted on these same pairs),")
        print("  and a logistic regression over the offline scores, the judge's scores and the evaluator's decision, cross-validated")
        for flag in JUDGE_SCORES:
            truth, decided, known = labelled(flag)
            known_judge = {k: v[known] for k, v in judge_columns.items()}
            ranking = judge_ranking(truth, known_judge, flag)
            with_judge = learned_ceiling(truth, {**{k: v[known] for k, v in columns.items()}, **known_judge}, decided)
            report["judge_ranking"][flag] = {"judge_score": ranking, "learned_with_judge": with_judge}
            if ranking:
                print(
                    f"  {flag:30s} {ranking['score']}: ROC AUC {_auc_text(ranking['auc'])}, recall {ranking['recall']:.2f} at precision >= 0.8"
                    f" (threshold {ranking['threshold']}; {ranking['answered']} pairs answered)"
                )  # fmt: skip
            if with_judge:
                print(f"  {'':30s} offline + judge scores + the evaluator's decision, logistic, {with_judge['folds']}-fold: recall {with_judge['recall']:.2f} at precision >= 0.8, ROC AUC {with_judge['auc']:.2f}")
    if timing:
        report["timing"] = timing
        print(f"\ntiming: {timing['pairs']} pairs evaluated in {timing['wall_s']} s wall, {timing['cpu_s']} s CPU (load may be shared)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.write and args.split == "all":
        stored = {
            "about": "measured by bench/evaluator.py on the labelled sets; precision/recall per flag with 95% bootstrap intervals",
            "labels": report["labels"], "labels_sha256": report["labels_sha256"],
            "flags": report["all"]["flags"], **{name: report[name]["flags"] for name in report if name in SPLIT_ORDER},
            "pairs": report["all"]["pairs"],
        }  # fmt: skip
        PRECISION_FILE.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {PRECISION_FILE}")
    parts = [name for name in ("all", "vllm4", "vllm3", "vllm2") if name in report] or [args.split]
    speed = f"; {timing['pairs']} pairs in {timing['wall_s']} s wall / {timing['cpu_s']} s CPU" if timing else ""
    print("evaluator on " + "; ".join(goal_summary(part, report[part]) for part in parts) + speed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
