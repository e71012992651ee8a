"""Continuous learning: per-modification quality accumulated across runs, and sampling weights from it.

An evaluation folder (``OUTDIR/eval/``) holds ``scores.csv`` (one row per pair: ``row, prompt,
modification, ..., flags, passed``) and optionally ``feedback.csv`` (imported user feedback: ``row,
rating, comment, modification``; ratings good/bad, or numbers: -1..1 by sign, or a 1-5 score). :func:`import_evaluation` adds their counts to a stats file (JSON),
once per distinct evaluation (a file hash is recorded, so importing the same folder twice changes
nothing). Weights are the posterior mean of a modification's success rate under a Beta(alpha, beta)
prior: ``(alpha + good) / (alpha + beta + good + bad)``, where good = passed pairs + positive feedback
(times ``feedback_weight``), bad = failed pairs + negative feedback. A modification with at least
``min_count`` observations whose mean stays below ``retire_below`` is retired (weight 0). Modifications
the stats have not seen get the prior mean, so new entries are still tried.

``questions.modification_weights: PATH`` makes a run draw modifications with these weights.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from generation.errors import ConfigError, InputDataError
from generation.io import read_csv_rows, write_json

STATS_VERSION = 1
DEFAULT_SETTINGS = {"prior_alpha": 1.0, "prior_beta": 1.0, "min_count": 5, "retire_below": 0.25, "feedback_weight": 1.0}
TRUE_VALUES = {"true", "1", "yes", "y", "pass", "passed"}
FALSE_VALUES = {"false", "0", "no", "n", "fail", "failed"}
GOOD_RATINGS = {"good", "up", "thumbs_up", "positive", "+", "+1", "yes", "accept", "accepted", "👍"}
BAD_RATINGS = {"bad", "down", "thumbs_down", "negative", "-", "-1", "no", "reject", "rejected", "👎"}
FLAG_SEPARATORS = (";", ",", "|")


def new_stats(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """An empty stats document."""
    return {"version": STATS_VERSION, "settings": {**DEFAULT_SETTINGS, **(settings or {})}, "sources": [], "modifications": {}}


def _check_settings(settings: dict[str, Any], origin: str) -> dict[str, Any]:
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ConfigError(f"{origin}: settings.{sorted(unknown)[0]}: unknown key")
    merged = {**DEFAULT_SETTINGS, **settings}
    for key in ("prior_alpha", "prior_beta", "feedback_weight"):
        value = merged[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{origin}: settings.{key}: must be a positive number, got {value!r}")
    if not isinstance(merged["min_count"], int) or isinstance(merged["min_count"], bool) or merged["min_count"] < 1:
        raise ConfigError(f"{origin}: settings.min_count: must be a positive integer, got {merged['min_count']!r}")
    retire = merged["retire_below"]
    if not isinstance(retire, (int, float)) or isinstance(retire, bool) or not 0 <= retire <= 1:
        raise ConfigError(f"{origin}: settings.retire_below: must be between 0 and 1, got {retire!r}")
    return merged


def load_stats(path: Path, create: bool = False) -> dict[str, Any]:
    """Read a stats file (a new, empty document when it does not exist and ``create``)."""
    if not path.is_file():
        if create:
            return new_stats()
        raise ConfigError(f"{path}: modification stats file not found (create it with synthgen modifications stats {path} --add EVAL_DIR)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid stats file ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != STATS_VERSION or not isinstance(data.get("modifications"), dict):
        raise ConfigError(f"{path}: not a synthgen modification stats file (version {STATS_VERSION} expected)")
    data["settings"] = _check_settings(data.get("settings") or {}, str(path))
    data.setdefault("sources", [])
    for text, entry in data["modifications"].items():
        for key in ("pairs", "passed", "feedback_good", "feedback_bad"):
            value = entry.get(key, 0) if isinstance(entry, dict) else None
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{path}: modifications[{text!r}].{key}: must be a count >= 0")
            entry[key] = value
        entry.setdefault("flags", {})
    return data


def save_stats(path: Path, stats: dict[str, Any]) -> None:
    """Write the stats file atomically."""
    write_json(path, stats)


def _eval_files(folder: Path) -> tuple[Path, Path | None]:
    """``scores.csv`` (and ``feedback.csv`` when present) of an evaluation folder or a run folder."""
    for candidate in (folder, folder / "eval"):
        if (candidate / "scores.csv").is_file():
            feedback = candidate / "feedback.csv"
            return candidate / "scores.csv", feedback if feedback.is_file() else None
    raise InputDataError(f"{folder}: no scores.csv here or in {folder / 'eval'} (run synthgen evaluate first)")


def parse_passed(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise InputDataError(f"{where}: passed: expected true/false, got {value!r}")


def _number(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def rating_scale(values: list[str], where: str) -> str:
    """The scale of a feedback file's numeric ratings: ``sign`` (all within -1..1: +1 good, -1 bad) or
    ``five`` (all within 1..5: 4-5 good, 1-2 bad, 3 neutral). Words (good/bad) need no scale."""
    numbers = [n for v in values if v.strip().lower() not in GOOD_RATINGS | BAD_RATINGS and (n := _number(v)) is not None]
    if not numbers or (min(numbers) >= -1 and max(numbers) <= 1):
        return "sign"
    if min(numbers) >= 1 and max(numbers) <= 5:
        return "five"
    raise InputDataError(f"{where}: ratings from {min(numbers):g} to {max(numbers):g}: expected -1..1 (+1 good, -1 bad) or a 1-5 score")


def parse_rating(value: str, where: str, scale: str = "sign") -> int:
    """+1 (good), -1 (bad) or 0 (neutral): good/bad words, or a number on the file's scale (see rating_scale)."""
    text = value.strip().lower()
    if text in GOOD_RATINGS:
        return 1
    if text in BAD_RATINGS:
        return -1
    if text in {"", "neutral", "none"}:
        return 0
    score = _number(text)
    if score is None:
        raise InputDataError(f"{where}: rating: expected good/bad or a number, got {value!r}")
    if scale == "five":
        return 1 if score >= 4 else -1 if score <= 2 else 0
    return 1 if score > 0 else -1 if score < 0 else 0


def split_flags(value: str) -> list[str]:
    text = value.strip()
    for sep in FLAG_SEPARATORS:
        text = text.replace(sep, " ")
    return [flag for flag in text.split() if flag]


def _file_hash(*paths: Path | None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path is not None:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def import_evaluation(stats: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Add one evaluation's scores (and feedback) to ``stats`` in place; returns what was counted.

    Seed questions (empty modification) are not counted. An evaluation already imported (same file
    contents) is skipped and reported as such.
    """
    scores_path, feedback_path = _eval_files(folder)
    fingerprint = _file_hash(scores_path, feedback_path)
    if any(source.get("sha256") == fingerprint for source in stats["sources"]):
        return {"path": str(scores_path.parent), "skipped": "already imported", "pairs": 0, "feedback": 0}
    scores = read_csv_rows(scores_path, ["row", "modification", "passed"], allow_empty=True)
    by_row: dict[str, str] = {}
    counted = 0
    mods = stats["modifications"]

    def entry(text: str) -> dict[str, Any]:
        return mods.setdefault(text, {"pairs": 0, "passed": 0, "flags": {}, "feedback_good": 0, "feedback_bad": 0})

    for index, row in enumerate(scores):
        text = row["modification"].strip()
        by_row[row["row"].strip()] = text
        passed = parse_passed(row["passed"], f"{scores_path}: row {index}")
        if not text:
            continue
        item = entry(text)
        item["pairs"] += 1
        item["passed"] += int(passed)
        for flag in split_flags(row.get("flags", "")):
            item["flags"][flag] = item["flags"].get(flag, 0) + 1
        counted += 1
    feedback_counted = 0
    if feedback_path is not None:
        feedback_rows = read_csv_rows(feedback_path, ["row", "rating"], allow_empty=True)
        scale = rating_scale([row["rating"] for row in feedback_rows], str(feedback_path))
        for index, row in enumerate(feedback_rows):
            where = f"{feedback_path}: row {index}"
            text = (row.get("modification") or "").strip() or by_row.get(row["row"].strip(), "")
            if row["row"].strip() and not text and row["row"].strip() not in by_row:
                raise InputDataError(f"{where}: row {row['row']!r} is not in {scores_path.name} and no modification is given")
            rating = parse_rating(row["rating"], where, scale)
            if not text or rating == 0:
                continue
            item = entry(text)
            item["feedback_good" if rating > 0 else "feedback_bad"] += 1
            feedback_counted += 1
    record = {
        "path": str(scores_path.parent.resolve()), "sha256": fingerprint, "pairs": counted, "feedback": feedback_counted,
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    stats["sources"].append(record)
    return record


def score(entry: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Posterior mean, observation count, weight and retirement of one modification's stats."""
    fw = settings["feedback_weight"]
    good = entry["passed"] + fw * entry["feedback_good"]
    bad = (entry["pairs"] - entry["passed"]) + fw * entry["feedback_bad"]
    alpha, beta = settings["prior_alpha"], settings["prior_beta"]
    mean = (alpha + good) / (alpha + beta + good + bad)
    observations = entry["pairs"] + entry["feedback_good"] + entry["feedback_bad"]
    retired = observations >= settings["min_count"] and mean < settings["retire_below"]
    return {"mean": round(mean, 4), "observations": observations, "retired": retired, "weight": 0.0 if retired else round(mean, 4)}


def prior_mean(settings: dict[str, Any]) -> float:
    return round(settings["prior_alpha"] / (settings["prior_alpha"] + settings["prior_beta"]), 4)


def compute_weights(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every modification in the stats with its figures (see :func:`score`)."""
    settings = stats["settings"]
    return {text: {**entry, **score(entry, settings)} for text, entry in sorted(stats["modifications"].items())}


def weights_for(path: Path, modifications: list[str]) -> dict[str, Any]:
    """The ``questions.modification_weights`` section for a run's modification list, from a stats file.

    Unseen modifications get the prior mean; a ConfigError if every modification is retired.
    """
    stats = load_stats(path)
    figures = compute_weights(stats)
    default = prior_mean(stats["settings"])
    weights = {text: figures[text]["weight"] if text in figures else default for text in modifications}
    if not any(weights.values()):
        raise ConfigError(f"{path}: every modification of this run is retired (weight 0); add new modifications or relax settings.retire_below")
    return {"file": str(path), "default_weight": default, "weights": weights}


def format_table(stats: dict[str, Any], modifications: list[str] | None = None) -> str:
    """A plain-text table of the weights (for the CLI)."""
    figures = compute_weights(stats)
    default = prior_mean(stats["settings"])
    texts = modifications if modifications is not None else list(figures)
    lines = [f"{'weight':>7} {'mean':>6} {'pairs':>6} {'passed':>6} {'fb+':>4} {'fb-':>4}  modification"]
    for text in sorted(texts, key=lambda t: (-(figures[t]["weight"] if t in figures else default), t)):
        f = figures.get(text)
        if f is None:
            lines.append(f"{default:>7.3f} {'-':>6} {0:>6} {0:>6} {0:>4} {0:>4}  {text}  (no stats yet: prior)")
            continue
        mark = "  RETIRED" if f["retired"] else ""
        lines.append(
            f"{f['weight']:>7.3f} {f['mean']:>6.3f} {f['pairs']:>6} {f['passed']:>6} {f['feedback_good']:>4} {f['feedback_bad']:>4}  {text}{mark}"
        )
    s = stats["settings"]
    lines.append(
        f"prior Beta({s['prior_alpha']:g}, {s['prior_beta']:g}); retired when >= {s['min_count']} observations and mean < "
        f"{s['retire_below']:g}; {len(stats['sources'])} evaluation(s) imported"
    )
    return "\n".join(lines)
