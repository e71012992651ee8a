"""Dataset-level figures (summary.json) and the self-contained HTML report (plots inline as base64 PNG)."""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from generation.config import RunConfig
from generation.evaluation import detectors as det
from generation.evaluation.metrics import Embedder
from generation.io import write_text

UNVERIFIED = "unverified proxy"
HIST_METRICS = ("relevance_chosen", "relevance_rejected", "agreement", "hardness", "grammar_chosen", "spelling_chosen")


def distribution(values: list[float]) -> dict[str, float | int]:
    """n, mean, std, min, p10, p50, p90, max of the non-missing values."""
    arr = np.array([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {"n": 0}
    q = np.percentile(arr, [10, 50, 90])
    return {
        "n": int(arr.size), "mean": round(float(arr.mean()), 4), "std": round(float(arr.std()), 4),
        "min": round(float(arr.min()), 4), "p10": round(float(q[0]), 4), "p50": round(float(q[1]), 4),
        "p90": round(float(q[2]), 4), "max": round(float(arr.max()), 4),
    }  # fmt: skip


def build_summary(data: Any, results: list[dict[str, Any]], cfg: RunConfig, judge: dict[str, Any] | None, elapsed: float) -> dict[str, Any]:
    """The figures of summary.json; headline figures first (the dataset card shows the first entries)."""
    from generation.evaluation.evaluate import FLAG_CODES, METRIC_COLUMNS
    from generation.evaluation.judge import JUDGE_COLUMNS

    n = len(results)
    flag_counts = Counter(code for r in results for code in r["flags"])
    passed = sum(r["passed"] for r in results)
    prompts = [row["prompt"] for row in data.rows]
    th = cfg.evaluation.thresholds
    capable = bool(judge and judge.get("judge_capable"))
    summary: dict[str, Any] = {
        "rows": n,
        "passed": passed,
        "pass_rate": round(passed / n, 4) if n else 0.0,
        "judge_model": judge["name"] if judge else None,
        "judge_capable": capable,
        "flag_rates": {code: round(flag_counts.get(code, 0) / n, 4) if n else 0.0 for code in FLAG_CODES},
        "duplicate_rate": round(flag_counts.get("duplicate_prompt", 0) / n, 4) if n else 0.0,
    }
    doubtful = [r["judge_chosen_correct"] for r in results if r.get("judge_chosen_correct") is not None]
    rejected_ok = [r["judge_rejected_incorrect"] for r in results if r.get("judge_rejected_incorrect") is not None]
    rate = round(sum(p < th.judge_correct_min for p in doubtful) / len(doubtful), 4) if doubtful else None
    reject_rate = round(sum(p < th.judge_correct_min for p in rejected_ok) / len(rejected_ok), 4) if rejected_ok else None
    if judge is None:
        summary["misinformation_rate"] = None
        summary["misinformation_note"] = "no judge configured (evaluation.judge.model): factual accuracy is unverified"
    elif capable:
        summary["misinformation_rate"] = rate
        summary["rejected_not_incorrect_rate"] = reject_rate
        summary["misinformation_note"] = f"share of chosen answers judged incorrect by {judge['name']} (judge_capable)"
    else:
        summary["misinformation_rate"] = None
        summary["judge_proxy"] = {
            "status": UNVERIFIED, "judge": judge["name"], "chosen_doubtful_rate": rate, "rejected_not_incorrect_rate": reject_rate,
        }  # fmt: skip
        summary["misinformation_note"] = (
            f"the judge {judge['name']} is not marked judge_capable: its figures are unverified proxy flags, not a misinformation rate"
        )
    if cfg.evaluation.gate.require_chosen_correct:
        summary["chosen_correct_gate"] = "applied" if capable else "unverified: not applied (no capable judge)"
    summary["flag_counts"] = {code: flag_counts.get(code, 0) for code in FLAG_CODES}
    summary["diversity"] = {
        "distinct_1": round(det.distinct_n(prompts, 1), 4),
        "distinct_2": round(det.distinct_n(prompts, 2), 4),
        "distinct_3": round(det.distinct_n(prompts, 3), 4),
        "near_duplicate_clusters": len({r["duplicate_of"] if r["duplicate_of"] is not None else i for i, r in enumerate(results)}),
        "unique_prompts": len(set(prompts)),
    }
    contamination = [r["contamination"] for r in results if r.get("contamination") is not None]
    summary["contamination"] = {
        "reference": data.reference_source,
        "reference_questions": len(data.reference),
        "ngram": th.contamination_ngram,
        "mean": round(float(np.mean(contamination)), 4) if contamination else None,
        "rate_at_or_above_threshold": round(sum(c >= th.contamination_max for c in contamination) / len(contamination), 4) if contamination else None,
    }
    summary["metrics"] = {column: distribution([r.get(column) for r in results]) for column in METRIC_COLUMNS if column != "duplicate_of"}
    if judge:
        judge_label = f"{judge['name']}" + ("" if capable else f" ({UNVERIFIED})")
        summary["judge_metrics"] = {
            column: {**distribution([r.get(column) for r in results]), "judge": judge_label} for column in JUDGE_COLUMNS
        }
        summary["judge"] = {k: v for k, v in judge.items() if k != "usage"} | {"usage": judge.get("usage")}
    by_mod: dict[str, dict[str, Any]] = defaultdict(lambda: {"rows": 0, "passed": 0, "flag_counts": Counter()})
    for modification, result in zip(data.modifications, results):
        entry = by_mod[modification or "(none)"]
        entry["rows"] += 1
        entry["passed"] += result["passed"]
        entry["flag_counts"].update(result["flags"])
    summary["by_modification"] = {
        mod: {"rows": e["rows"], "passed": e["passed"], "pass_rate": round(e["passed"] / e["rows"], 4), "flag_counts": dict(e["flag_counts"])}
        for mod, e in sorted(by_mod.items())
    }
    summary["measured_precision"] = measured_precision()
    summary["tools"] = {
        "embedding": Embedder.name, "grammar": "harper-py (Harper), typography rules off", "spelling": "pyspellchecker",
        "near_duplicates": "datasketch MinHash LSH over word bigrams",
        "plausibility": cfg.evaluation.plausibility.model or "off",
        "claims": "configs/eval/lexicon.yaml (opposites, quantifiers, answer words), Snowball stems",
    }  # fmt: skip
    summary["input"] = str(data.path) if data.path else None
    summary["domain"] = {"pack": cfg.domain, **(cfg.domain_pack.model_dump() if cfg.domain_pack else {})}
    summary["elapsed_s"] = round(elapsed, 2)
    summary["config"] = cfg.evaluation.model_dump(mode="json")
    return summary


def measured_precision() -> dict[str, Any]:
    """Each flag's precision and recall measured on the labelled set (configs/eval/precision.json), for the report."""
    from generation.config import PRECISION_FILE

    try:
        data = json.loads(PRECISION_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        code: {k: entry.get(k) for k in ("precision", "precision_ci", "recall", "recall_ci", "positives", "flagged")}
        for code, entry in (data.get("flags") or {}).items()
    } | {"_source": f"{data.get('labels')} ({data.get('pairs')} labelled pairs; bench/evaluator.py)"}


def _precision_cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("precision") is None:
        return "not measured"
    ci = entry.get("precision_ci") or [None, None]
    interval = f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci[0] is not None else ""
    return f"{entry['precision']:.2f}{interval}, recall {entry['recall']:.2f}" if entry.get("recall") is not None else f"{entry['precision']:.2f}{interval}"


# ----------------------------------------------------------------------------------------- the page


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(results: list[dict[str, Any]], summary: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, column in zip(axes.flat, HIST_METRICS):
        values = [r[column] for r in results if r.get(column) is not None]
        ax.hist(values, bins=20, color="#4477aa")
        ax.set_title(column, fontsize=9)
    fig.tight_layout()
    plots.append(("Metric distributions", _png(fig)))
    counts = {k: v for k, v in summary["flag_counts"].items() if v}
    fig, ax = plt.subplots(figsize=(8, 0.4 * max(3, len(counts)) + 1))
    ax.barh(list(counts) or ["(no flags)"], list(counts.values()) or [0], color="#cc6677")
    ax.set_xlabel("pairs")
    ax.invert_yaxis()
    fig.tight_layout()
    plots.append(("Flag counts", _png(fig)))
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.hist([r["hardness"] for r in results if r.get("hardness") is not None], bins=20, range=(0, 1), color="#228833")
    ax.axvline(summary["config"]["thresholds"]["hardness_min"], color="k", linestyle="--", label="rejected_easy below")
    ax.set_xlabel("hardness: sqrt of the per-token likelihood ratio rejected/chosen (0 implausible .. 1 as natural)")
    ax.legend()
    fig.tight_layout()
    plots.append(("Hardness of rejected answers", _png(fig)))
    return plots


_SEVERITY = {  # which rows of a flag to show first: the most severe
    "off_topic": lambda r: min(r["relevance_chosen"], r["relevance_rejected"]),
    "rejected_easy": lambda r: r["hardness"] if r.get("hardness") is not None else 1.0,
    "rejected_agrees": lambda r: -r["agreement"],
    "chosen_doubtful": lambda r: r.get("judge_chosen_correct") or 0.0,
}


def _esc(value: Any) -> str:
    return html.escape(str(value if value is not None else ""))


def write_report(path: Path, data: Any, results: list[dict[str, Any]], summary: dict[str, Any], cfg: RunConfig) -> None:
    """A single HTML file with headline figures, plots and the worst examples per flag."""
    from generation.evaluation.evaluate import FLAG_CODES

    n = summary["rows"]
    heads = [
        ("pairs", n), ("passed the quality gate", f"{summary['passed']} ({summary['pass_rate']:.0%})"),
        ("duplicate rate", f"{summary['duplicate_rate']:.1%}"), ("distinct-2 of prompts", summary["diversity"]["distinct_2"]),
        ("near-duplicate clusters", summary["diversity"]["near_duplicate_clusters"]),
        ("mean relevance (chosen)", summary["metrics"]["relevance_chosen"].get("mean")),
        ("mean hardness (rejected)", summary["metrics"]["hardness"].get("mean")),
        ("contamination vs reference", summary["contamination"]["rate_at_or_above_threshold"]),
    ]  # fmt: skip
    if summary.get("misinformation_rate") is not None:
        heads.append((f"misinformation rate (judge {summary['judge_model']})", summary["misinformation_rate"]))
    elif summary.get("judge_proxy"):
        proxy = summary["judge_proxy"]
        heads.append((f"chosen doubted by judge {proxy['judge']} — UNVERIFIED PROXY, not a misinformation rate", proxy["chosen_doubtful_rate"]))
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>synthgen evaluation</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:14px}th{background:#f3f3f3}"
        ".note{background:#fff4d6;padding:8px;border-left:4px solid #e0a800}.ex td{max-width:330px}",
        "</style></head><body>",
        "<h1>Evaluation of preference pairs</h1>",
        f"<p>Input: <code>{_esc(summary.get('input'))}</code> — {n} pairs, evaluated in {summary['elapsed_s']} s.</p>",
        f"<p>Domain pack: <code>{_esc(summary['domain']['pack'])}</code> {_esc(summary['domain'].get('description') or '')}</p>",
        f"<p class='note'>{_esc(summary['misinformation_note'])}</p>",
        "<h2>Headline figures</h2><table>",
        *(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in heads),
        "</table>",
        "<h2>Flags</h2>",
        f"<p>Measured precision: of the pairs the flag marks in the labelled set {_esc(summary.get('measured_precision', {}).get('_source', ''))}, "
        "the share that truly have the defect (95% bootstrap interval), and the recall there. A rate is only as good as that precision.</p>",
        "<table><tr><th>code</th><th>pairs</th><th>rate</th><th>measured precision</th><th>meaning</th><th>excludes from filtered.csv</th></tr>",
    ]
    gate = set(cfg.evaluation.gate.fail_on_flags)
    for code, meaning in FLAG_CODES.items():
        label = meaning + (f" ({UNVERIFIED}: judge not capable)" if code == "chosen_doubtful" and not summary["judge_capable"] else "")
        out.append(
            f"<tr><td><code>{code}</code></td><td>{summary['flag_counts'][code]}</td><td>{summary['flag_rates'][code]:.1%}</td>"
            f"<td>{_esc(_precision_cell(summary.get('measured_precision', {}).get(code)))}</td>"
            f"<td>{_esc(label)}</td><td>{'yes' if code in gate else 'no'}</td></tr>"
        )
    out.append("</table>")
    for title, uri in _plots(results, summary):
        out.append(f"<h2>{_esc(title)}</h2><img alt='{_esc(title)}' src='{uri}'>")
    out.append("<h2>By modification</h2><table><tr><th>modification</th><th>pairs</th><th>pass rate</th><th>flags</th></tr>")
    for mod, entry in summary["by_modification"].items():
        flags = ", ".join(f"{k} {v}" for k, v in sorted(entry["flag_counts"].items()))
        out.append(f"<tr><td>{_esc(mod)}</td><td>{entry['rows']}</td><td>{entry['pass_rate']:.0%}</td><td>{_esc(flags)}</td></tr>")
    out.append("</table>")
    out.append(_length_section(data, cfg, Path(summary["input"]).parent / "run_summary.json" if summary.get("input") else None))
    out.append(_weights_section(cfg))
    out.append(_privacy_section(Path(summary["input"]).parent / "run_summary.json" if summary.get("input") else None))
    out.append("<h2>Worst examples per flag</h2>")
    for code in FLAG_CODES:
        rows = [i for i, r in enumerate(results) if code in r["flags"]]
        if not rows or cfg.evaluation.worst_examples == 0:
            continue
        rows.sort(key=lambda i: _SEVERITY.get(code, lambda r: 0.0)(results[i]))
        out.append(f"<h3><code>{code}</code> ({len(rows)})</h3><table class='ex'><tr><th>row</th><th>prompt</th><th>chosen</th><th>rejected</th><th>evidence</th></tr>")
        for i in rows[: cfg.evaluation.worst_examples]:
            row = data.rows[i]
            out.append(
                f"<tr><td>{i}</td><td>{_esc(row['prompt'])}</td><td>{_esc(row['chosen'])}</td><td>{_esc(row['rejected'])}</td>"
                f"<td>{_esc(results[i]['evidence'].get(code))}</td></tr>"
            )
        out.append("</table>")
    out.append(_dpo_section(path.parent))
    out.append("<h2>Tools and settings</h2><pre>" + _esc(json.dumps({"tools": summary["tools"], "config": summary["config"]}, indent=2)) + "</pre>")
    out.append("</body></html>")
    write_text(path, "\n".join(out))


def _length_section(data: Any, cfg: RunConfig, run_summary: Path | None) -> str:
    """The chosen/rejected word-count ratio of the evaluated pairs (DPO amplifies length differences), and the pair
    strategy and length control of the run that made them when its run_summary.json is beside the input."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from generation.steps.strategies import length_distribution, length_ratio

    band = cfg.responses.length_control.band
    figures = length_distribution(((row["chosen"], row["rejected"]) for row in data.rows), band)
    if not figures.get("pairs"):
        return ""
    responses: dict[str, Any] = {}
    if run_summary is not None and run_summary.is_file():
        try:
            responses = json.loads(run_summary.read_text(encoding="utf-8")).get("stages", {}).get("responses") or {}
        except (OSError, ValueError):
            responses = {}
    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.hist([math.log2(max(length_ratio(r["chosen"], r["rejected"]), 1e-3)) for r in data.rows], bins=30, color="#aa7744")
    for edge in band:
        ax.axvline(math.log2(edge), color="k", linestyle="--")
    ax.set_xlabel("log2(chosen words / rejected words); dashed: the band")
    fig.tight_layout()
    made = f"Strategy <code>{_esc(responses.get('strategy', 'unknown'))}</code> (from the run's run_summary.json). " if responses else ""
    control = responses.get("length_control")
    if control:
        made += (f"Length control: {control['resampled']} rejected answers asked again, {control['pairs_fixed']} pairs brought into the band, "
                 f"{control['questions_dropped']} questions dropped. ")  # fmt: skip
    buckets = "".join(f"<tr><td>{_esc(k)}</td><td>{v}</td></tr>" for k, v in figures["buckets"].items())
    return (
        f"<h2>Length: chosen/rejected word-count ratio</h2><p>{made}Median {figures['median']}, 10th-90th percentile "
        f"{figures['p10']}-{figures['p90']}; {figures['inside_band_share']:.0%} of pairs inside [{band[0]}, {band[1]}]. DPO learns length "
        f"differences as readily as content (arXiv 2403.19159).</p><table><tr><th>ratio</th><th>pairs</th></tr>{buckets}</table>"
        f"<img alt='length ratio' src='{_png(fig)}'>"
    )


def _privacy_section(run_summary: Path | None) -> str:
    """What the run that produced the input masked (its run_summary.json ``privacy``), per place and kind."""
    if run_summary is None or not run_summary.is_file():
        return ""
    try:
        privacy = json.loads(run_summary.read_text(encoding="utf-8")).get("privacy")
    except (OSError, ValueError):
        return ""
    if not isinstance(privacy, dict):
        return ""
    rows = "".join(
        f"<tr><td>{_esc(place)}</td><td>{_esc(', '.join(f'{k} {v}' for k, v in sorted((counts or {}).items())) or 'none')}</td></tr>"
        for place, counts in (privacy.get("masked") or {}).items()
    )
    state = "on" if privacy.get("pii_enabled") else "OFF"
    return (
        f"<h2>Personal data masked by the run</h2><p>PII scrubbing was {state} (privacy.pii); masked values became "
        f"typed placeholders such as [EMAIL] before anything was written.</p><table><tr><th>where</th><th>masked</th></tr>{rows}</table>"
    )


def _weights_section(cfg: RunConfig) -> str:
    """The modification sampling weights the run used (questions.modification_weights), if any."""
    weights = cfg.questions.modification_weights
    if weights is None or isinstance(weights, str):
        return ""
    rows = [(text, weights.weights.get(text, weights.default_weight), text in weights.weights) for text in cfg.modifications]
    body = "".join(
        f"<tr><td>{_esc(text)}</td><td>{weight:.3f}</td><td>{'retired' if weight == 0 else ('from stats' if seen else 'prior')}</td></tr>"
        for text, weight, seen in sorted(rows, key=lambda r: -r[1])
    )
    source = f" from <code>{_esc(weights.file)}</code>" if weights.file else ""
    return (
        f"<h2>Modification sampling weights</h2><p>This run drew modifications with these weights{source} "
        "(synthgen modifications stats); a weight of 0 retires a modification.</p>"
        f"<table><tr><th>modification</th><th>weight</th><th>source</th></tr>{body}</table>"
    )


def _dpo_section(eval_dir: Path) -> str:
    """The DPO training check's verdict and plot, when the run folder has one."""
    for folder in (eval_dir, eval_dir.parent):
        report = folder / "dpo_check.json"
        if report.is_file():
            try:
                verdict = json.loads(report.read_text(encoding="utf-8")).get("verdict")
            except (OSError, json.JSONDecodeError):
                continue
            png = folder / "dpo_check.png"
            image = f"<img alt='DPO check' src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'>" if png.is_file() else ""
            return f"<h2>DPO training check</h2><p>{_esc(verdict)} (<code>{_esc(report)}</code>)</p>{image}"
    return ""
