"""The human loop: expert review sheets (export, import with agreement figures) and end-user feedback."""

from __future__ import annotations

import html
import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from generation.errors import InputDataError
from generation.io import read_csv_rows, write_csv, write_json, write_text

SHEET_NAME = "review_sheet"
# Rating columns of the review sheet: name -> (allowed values, what the expert answers)
RATINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "chosen_correct": (("1", "2", "3", "4", "5"), "Is the chosen answer correct? 1 = wrong .. 5 = fully correct"),
    "rejected_incorrect": (("1", "2", "3", "4", "5"), "Is the rejected answer wrong? 1 = it is correct .. 5 = clearly wrong"),
    "rejected_plausible": (("1", "2", "3", "4", "5"), "Would a layperson believe the rejected answer? 1 = absurd .. 5 = very plausible"),
    "relevant": (("1", "2", "3", "4", "5"), "Does the chosen answer address the question? 1 = not at all .. 5 = fully"),
    "question_ok": (("yes", "no"), "Is the prompt a genuine informational question?"),
    "pair_usable": (("yes", "no"), "Would you keep this pair for training?"),
}
SHEET_FIELDS = ("row", "prompt", "chosen", "rejected", "modification", "reviewer", *RATINGS, "comment")
# expert rating -> automated figure it is compared with (Spearman), and binary ratings -> automated decision (kappa)
SPEARMAN_PAIRS = {
    "relevant": "relevance_chosen",
    "rejected_plausible": "hardness",
    "chosen_correct": "judge_chosen_correct",
    "rejected_incorrect": "judge_rejected_incorrect",
}
KAPPA_PAIRS = {
    "pair_usable": ("passed", lambda s: s["passed"] == "1"),
    "question_ok": ("not question_not_informational", lambda s: "question_not_informational" not in s["flags"].split(";")),
}


def _scores(eval_dir: Path) -> list[dict[str, str]]:
    return read_csv_rows(eval_dir / "scores.csv", ["row", "prompt", "modification", "flags", "passed"], allow_empty=True)


def _summary(eval_dir: Path) -> dict[str, Any]:
    path = eval_dir / "summary.json"
    if not path.is_file():
        raise InputDataError(f"{path}: not found; run synthgen evaluate first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputDataError(f"{path}: expected a JSON object")
    return data


def stratified_sample(scores: list[dict[str, str]], size: int, seed: int) -> list[int]:
    """Row indices: round-robin over strata (first flag or 'clean', modification), seeded shuffle inside each."""
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, row in enumerate(scores):
        flag = row["flags"].split(";")[0] if row["flags"] else "clean"
        strata[(flag, row["modification"])].append(index)
    rng = random.Random(seed)
    queues = []
    for key in sorted(strata):
        members = strata[key][:]
        rng.shuffle(members)
        queues.append(members)
    chosen: list[int] = []
    while len(chosen) < size and any(queues):
        for queue in queues:
            if queue and len(chosen) < size:
                chosen.append(queue.pop())
    return sorted(chosen)


def export_review(eval_dir: Path, pairs: Path | None, size: int, seed: int, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write a blind review sheet (CSV for ratings, HTML to read) of a stratified sample; returns both paths."""
    from generation.evaluation.evaluate import read_pairs

    summary = _summary(eval_dir)
    pairs = pairs or Path(summary.get("input") or "")
    rows = read_pairs(pairs)
    scores = _scores(eval_dir)
    if len(rows) != len(scores):
        raise InputDataError(f"{pairs}: {len(rows)} rows, but {eval_dir / 'scores.csv'} has {len(scores)}; pass the evaluated file with --pairs")
    picked = stratified_sample(scores, size, seed)
    out_dir = out_dir or eval_dir / "review"
    sheet = [
        {"row": i, **rows[i], "modification": scores[i]["modification"], "reviewer": "", **{k: "" for k in RATINGS}, "comment": ""}
        for i in picked
    ]
    write_csv(out_dir / f"{SHEET_NAME}.csv", SHEET_FIELDS, sheet)
    legend = "".join(f"<li><b>{k}</b> ({'/'.join(v)}): {html.escape(q)}</li>" for k, (v, q) in RATINGS.items())
    body = "".join(
        f"<tr><td>{r['row']}</td><td>{html.escape(r['prompt'])}</td><td>{html.escape(r['chosen'])}</td>"
        f"<td>{html.escape(r['rejected'])}</td><td>{html.escape(r['modification'])}</td></tr>"
        for r in sheet
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Review sheet</title><style>body{font-family:sans-serif;"
        "max-width:1100px;margin:2em auto}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}table{border-collapse:collapse}"
        f"</style></head><body><h1>Review sheet ({len(sheet)} pairs)</h1><p>Fill in <code>{SHEET_NAME}.csv</code>: your name in "
        f"<code>reviewer</code> and, per row:</p><ul>{legend}</ul><p>Automated scores are hidden on purpose; "
        "import the sheet with <code>synthgen review import</code>.</p>"
        f"<table><tr><th>row</th><th>prompt</th><th>chosen</th><th>rejected</th><th>modification</th></tr>{body}</table></body></html>"
    )
    html_path = out_dir / f"{SHEET_NAME}.html"
    write_text(html_path, page)
    return out_dir / f"{SHEET_NAME}.csv", html_path


def read_ratings(path: Path, n_rows: int) -> list[dict[str, str]]:
    """Rated rows of a review sheet; a bad row index or rating value is a one-line error."""
    table = read_csv_rows(path, ["row", *RATINGS], allow_empty=True)
    rated = []
    for index, record in enumerate(table):
        try:
            row = int(record["row"])
        except ValueError:
            raise InputDataError(f"{path}: row {index}: row: {record['row']!r} is not a row number") from None
        if not 0 <= row < n_rows:
            raise InputDataError(f"{path}: row {index}: row {row} is not in the evaluated data (0..{n_rows - 1})")
        entry = {"row": str(row), "reviewer": (record.get("reviewer") or "").strip() or path.stem}
        for name, (allowed, _) in RATINGS.items():
            value = record[name].strip().lower()
            if value and value not in allowed:
                raise InputDataError(f"{path}: row {index}: {name}: {record[name]!r} is not one of {'/'.join(allowed)}")
            entry[name] = value
        if any(entry[name] for name in RATINGS):
            rated.append(entry)
    return rated


def _spearman(x: list[float], y: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    value = spearmanr(x, y).statistic
    return None if math.isnan(value) else round(float(value), 4)


def _kappa(a: list[Any], b: list[Any]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if len(a) < 3 or len(set(a) | set(b)) < 2:
        return None
    value = cohen_kappa_score(a, b)
    return None if math.isnan(value) else round(float(value), 4)


def import_review(sheets: list[Path], eval_dir: Path) -> dict[str, Any]:
    """Read rated sheets; agreement of experts with the automated scores (Spearman, Cohen's kappa) and between
    experts; saved as ``review_agreement.json`` and under ``review`` in summary.json."""
    summary = _summary(eval_dir)
    scores = _scores(eval_dir)
    ratings = [r for sheet in sheets for r in read_ratings(sheet, len(scores))]
    if not ratings:
        raise InputDataError(f"{', '.join(map(str, sheets))}: no rated rows (fill in at least one rating column)")
    full = read_csv_rows(eval_dir / "scores.csv", ["row"], allow_empty=True)
    report: dict[str, Any] = {"sheets": [str(s) for s in sheets], "ratings": len(ratings), "reviewers": sorted({r["reviewer"] for r in ratings})}
    vs_auto: dict[str, Any] = {}
    for rating, column in SPEARMAN_PAIRS.items():
        pairs = [(float(r[rating]), float(full[int(r["row"])][column])) for r in ratings if r[rating] and full[int(r["row"])].get(column)]
        vs_auto[rating] = {"automated": column, "n": len(pairs), "spearman": _spearman([p[0] for p in pairs], [p[1] for p in pairs])}
    for rating, (label, decide) in KAPPA_PAIRS.items():
        pairs = [(r[rating] == "yes", decide(scores[int(r["row"])])) for r in ratings if r[rating]]
        vs_auto[rating] = {"automated": label, "n": len(pairs), "cohen_kappa": _kappa([p[0] for p in pairs], [p[1] for p in pairs]),
                           "agreement": round(sum(a == b for a, b in pairs) / len(pairs), 4) if pairs else None}  # fmt: skip
    report["experts_vs_automated"] = vs_auto
    by_reviewer: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for r in ratings:
        by_reviewer[r["reviewer"]][r["row"]] = r
    between: dict[str, Any] = {}
    names = sorted(by_reviewer)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sorted(set(by_reviewer[a]) & set(by_reviewer[b]), key=int)
            figures: dict[str, Any] = {"rows": len(common)}
            for rating, (allowed, _) in RATINGS.items():
                both = [(by_reviewer[a][row][rating], by_reviewer[b][row][rating]) for row in common]
                both = [(x, y) for x, y in both if x and y]
                figures[rating] = {"n": len(both), "cohen_kappa": _kappa([x for x, _ in both], [y for _, y in both])}
            between[f"{a} vs {b}"] = figures
    report["between_experts"] = between
    write_json(eval_dir / "review_agreement.json", report)
    summary["review"] = report
    write_json(eval_dir / "summary.json", summary)
    return report


# ------------------------------------------------------------------------------------------ feedback

FEEDBACK_FIELDS = ("row", "rating", "comment", "modification")
_ROW_NAMES = ("row", "row_id", "id", "row id")


def import_feedback(path: Path, eval_dir: Path, replace: bool = False) -> dict[str, Any]:
    """Normalise end-user feedback (row id, rating, comment) into ``eval_dir/feedback.csv`` (appended to what is
    there unless ``replace``) and add per-modification figures to summary.json under ``feedback``."""
    summary = _summary(eval_dir)
    scores = _scores(eval_dir)
    table = read_csv_rows(path, [])
    header = {name.strip().lower().replace("_", " "): name for name in table[0]}  # column names in any case
    row_key = next((header[n.replace("_", " ")] for n in _ROW_NAMES if n.replace("_", " ") in header), None)
    if row_key is None:
        raise InputDataError(f"{path}: missing column 'row' (or row_id/id); columns are {list(table[0])}")
    if "rating" not in header:
        raise InputDataError(f"{path}: missing column 'rating'; columns are {list(table[0])}")
    rating_key, comment_key = header["rating"], header.get("comment")
    incoming = []
    for index, record in enumerate(table):
        raw_row, raw_rating = record[row_key].strip(), record[rating_key].strip()
        try:
            row = int(raw_row)
        except ValueError:
            raise InputDataError(f"{path}: row {index}: {row_key}: {raw_row!r} is not a row number") from None
        if not 0 <= row < len(scores):
            raise InputDataError(f"{path}: row {index}: {row_key} {row} is not in the evaluated data (0..{len(scores) - 1})")
        try:
            rating = float(raw_rating)
        except ValueError:
            raise InputDataError(f"{path}: row {index}: rating: {raw_rating!r} is not a number") from None
        if not math.isfinite(rating):
            raise InputDataError(f"{path}: row {index}: rating: {raw_rating!r} is not a finite number")
        incoming.append({
            "row": row, "rating": f"{rating:g}", "comment": " ".join((record.get(comment_key) or "").split()) if comment_key else "",
            "modification": scores[row]["modification"],
        })  # fmt: skip
    target = eval_dir / "feedback.csv"
    existing = [] if replace or not target.is_file() else read_csv_rows(target, FEEDBACK_FIELDS, allow_empty=True)
    rows = existing + incoming
    write_csv(target, FEEDBACK_FIELDS, rows)
    groups: dict[str, list[float]] = defaultdict(list)
    comments: dict[str, int] = defaultdict(int)
    for r in rows:
        mod = r["modification"] or "(none)"
        groups[mod].append(float(r["rating"]))
        comments[mod] += bool(r["comment"])
    all_ratings = [v for values in groups.values() for v in values]
    summary["feedback"] = {
        "file": str(target), "entries": len(rows), "mean_rating": round(sum(all_ratings) / len(all_ratings), 4),
        "by_modification": {
            mod: {"count": len(v), "mean_rating": round(sum(v) / len(v), 4), "min": min(v), "max": max(v), "comments": comments[mod]}
            for mod, v in sorted(groups.items())
        },
    }  # fmt: skip
    write_json(eval_dir / "summary.json", summary)
    return summary["feedback"]
