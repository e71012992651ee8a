"""``synthgen dpo-check --compare RUN_A RUN_B ...``: which run's pairs move a model more on the same held-out topics?

Every run is trained the way a single DPO check trains (:func:`generation.dpo_check.train_and_measure`): the same
base model, the same settings and, per seed, the same held-out topics: the topics all runs share (the pipeline's
``source_question``) are split once per seed, and no run trains on a held-out topic. Every trained model is then
measured on one common held-out set, the union of all runs' pairs on the held-out topics, so the figures of
different runs are paired pair by pair (and each run's own held-out pairs are reported as well). The difference
between two runs is the mean, over held-out pairs, of the difference of their changes, with a bootstrap interval
(resampling pairs within each seed, like the single check).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generation import __version__
from generation.dpo_check import (
    CheckSettings, DPOModelConfig, Pair, SeedResult, _resolve_device, bootstrap_mean_over_groups, load_pairs, lora_config, peak_rss_mb,
    summarise, train_and_measure,
)  # fmt: skip
from generation.errors import ConfigError, InputDataError
from generation.io import write_json
from generation.run.layout import PAIRS_CSV

log = logging.getLogger(__name__)

COMPARE_JSON = "dpo_compare.json"
COMPARE_PNG = "dpo_compare.png"


@dataclass
class RunPairs:
    """One compared run: a label, where its pairs came from, and the pairs."""

    name: str
    source: Path
    pairs: list[Pair]


def load_runs(paths: Sequence[Path]) -> list[RunPairs]:
    """Each path is a run folder (its ``questions_and_responses.csv``, topics from the provenance beside it) or a
    pairs file; labels are the folder names (made unique)."""
    if len(paths) < 2:
        raise InputDataError(f"--compare needs at least two runs, got {len(paths)}")
    runs, seen = [], set()
    for path in paths:
        data = path / PAIRS_CSV if path.is_dir() else path
        name = path.name if path.is_dir() else path.stem
        while name in seen:
            name = f"{name}'"
        seen.add(name)
        runs.append(RunPairs(name, data, load_pairs(data)))
    return runs


def shared_topics(runs: Sequence[RunPairs]) -> list[str]:
    topics = set.intersection(*({pair.topic for pair in run.pairs} for run in runs))
    if len(topics) < 2:
        raise InputDataError(
            f"the runs share {len(topics)} topic(s) (source questions); --compare needs at least 2 to hold one out: "
            "compare runs made from the same seed questions"
        )
    return sorted(topics)


def held_out_topics(topics: Sequence[str], eval_fraction: float, seed: int) -> set[str]:
    """The seed's held-out topics among the shared ones (the single check's rule: a seeded shuffle)."""
    if not 0 < eval_fraction < 1:
        raise InputDataError(f"--eval-fraction must be between 0 and 1, got {eval_fraction}")
    order = list(topics)
    random.Random(seed).shuffle(order)
    return set(order[: min(len(order) - 1, max(1, round(eval_fraction * len(order))))])


def _difference(
    values: dict[str, list[np.ndarray]], first: str, second: str, names: Sequence[str], settings: CheckSettings, salt: int
) -> dict[str, float]:  # fmt: skip
    """first minus second, pooled over seeds, with a bootstrap interval. The resampling seed depends on the pair of
    runs, not on their order, so first-minus-second and second-minus-first are mirror images (one figure per pair)."""
    i, j = sorted((names.index(first), names.index(second)))
    pairs = zip(values[first], values[second])
    # a seed sequence, so no two pairs of runs (and no two figures) share a resampling stream, however many runs
    return bootstrap_mean_over_groups([x - y for x, y in pairs], settings.bootstrap, [settings.seed, salt, i, j])


def compare_runs(paths: Sequence[Path], out_dir: Path, model_cfg: DPOModelConfig, settings: CheckSettings) -> dict[str, Any]:
    """The whole comparison; writes ``dpo_compare.json`` and ``dpo_compare.png`` into ``out_dir`` and returns the report."""
    if settings.steps < 1 or settings.seeds < 1 or settings.batch_size < 1:
        raise ConfigError("--steps, --seeds and --batch-size must be at least 1")
    started = time.monotonic()
    runs = load_runs(paths)
    topics = shared_topics(runs)
    held_out_topics(topics, settings.eval_fraction, settings.seed)  # bad settings fail before a model loads
    lora_config(model_cfg)
    import torch

    device = _resolve_device(settings.device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    common: dict[str, list[SeedResult]] = {run.name: [] for run in runs}
    own: dict[str, list[SeedResult]] = {run.name: [] for run in runs}
    splits = []
    for k in range(settings.seeds):
        seed = settings.seed + k
        held = held_out_topics(topics, settings.eval_fraction, seed)
        common_set = [pair for run in runs for pair in run.pairs if pair.topic in held]
        splits.append({"seed": seed, "held_out_topics": len(held), "common_held_out_pairs": len(common_set)})
        for run in runs:
            train = [pair for pair in run.pairs if pair.topic not in held]
            mine = [pair for pair in run.pairs if pair.topic in held]
            if not train:
                raise InputDataError(f"{run.source}: every pair is on a held-out topic; nothing to train on")
            log.info("seed %d, run %s: training %d steps on %d pairs, measuring %d common held-out pairs", seed, run.name, settings.steps, len(train), len(common_set))
            before, after, history, train_s = train_and_measure(train, [common_set, mine], model_cfg, settings, seed, device)
            topic_list = sorted(held)
            common[run.name].append(SeedResult(seed, len(train), len(common_set), topic_list, before[0], after[0], history, train_s))
            own[run.name].append(SeedResult(seed, len(train), len(mine), topic_list, before[1], after[1], history, train_s))
    report = build_report(runs, topics, splits, common, own, model_cfg, settings, device)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_compare_plot(report, out_dir / COMPARE_PNG)
    report["plot"] = COMPARE_PNG
    write_json(out_dir / COMPARE_JSON, report)
    return report


def build_report(
    runs: Sequence[RunPairs], topics: Sequence[str], splits: list[dict[str, Any]], common: dict[str, list[SeedResult]],
    own: dict[str, list[SeedResult]], model_cfg: DPOModelConfig, settings: CheckSettings, device: str,
) -> dict[str, Any]:  # fmt: skip
    """Figures per run (common and own held-out pairs), the differences between runs, and which run moved most."""
    entries = []
    for run in runs:
        results = common[run.name]
        own_results = [r for r in own[run.name] if r.n_eval]
        entries.append({
            "name": run.name, "data": str(run.source), "pairs": len(run.pairs), "topics": len({p.topic for p in run.pairs}),
            "train_pairs": [r.n_train for r in results], "train_s": [round(r.train_s, 1) for r in results],
            **summarise(results, settings),
            "own_held_out": {**summarise(own_results, settings), "pairs": [r.n_eval for r in own[run.name]]} if own_results else None,
            "log_history": [r.log_history for r in results],
        })  # fmt: skip
    change = {run.name: [r.after.margin_norm - r.before.margin_norm for r in common[run.name]] for run in runs}
    accuracy = {run.name: [(r.after.margin > 0).astype(float) for r in common[run.name]] for run in runs}
    ranking = sorted(entries, key=lambda e: -e["figures"]["margin_length_normalised"]["delta"]["estimate"])
    names = [run.name for run in runs]
    differences = []
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            differences.append({
                "runs": [first, second],
                "margin_per_token_change": _difference(change, first, second, names, settings, 100),
                "accuracy_after": _difference(accuracy, first, second, names, settings, 300),
            })  # fmt: skip
    best, runner_up = ranking[0], ranking[1]
    lead = _difference(change, best["name"], runner_up["name"], names, settings, 100)  # the pair's difference, best first
    moved = best["figures"]["margin_length_normalised"]["delta"]
    clear = lead["ci_low"] > 0
    statement = (
        f"{best['name']} moved the held-out margin/token most: {moved['estimate']:+.3f} (95% CI {moved['ci_low']:+.3f} .. "
        f"{moved['ci_high']:+.3f}); ahead of {runner_up['name']} by {lead['estimate']:+.3f} (95% CI {lead['ci_low']:+.3f} .. "
        f"{lead['ci_high']:+.3f}), " + ("a difference beyond noise" if clear else "within noise: the interval includes 0")
    )
    return {
        "synthgen_version": __version__,
        "model": model_cfg.model_dump(mode="json"),
        "device": device,
        "settings": dict(settings.__dict__),
        "shared_topics": len(topics),
        "splits": splits,
        "runs": entries,
        "differences": differences,
        "most_moved": {"run": best["name"], "margin_per_token_change": moved, "lead_over": runner_up["name"], "lead": lead, "beyond_noise": clear},
        "statement": statement,
    }


def write_compare_plot(report: dict[str, Any], path: Path) -> None:
    """One figure: per run, the held-out margin/token change and accuracy change with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from generation.dpo_check import save_figure

    names = [run["name"] for run in report["runs"]]
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * len(names), 3.8))
    for ax, key, title in ((axes[0], "margin_length_normalised", "held-out margin/token change"), (axes[1], "preference_accuracy", "held-out accuracy change")):
        deltas = [run["figures"][key]["delta"] for run in report["runs"]]
        yerr = [[d["estimate"] - d["ci_low"] for d in deltas], [d["ci_high"] - d["estimate"] for d in deltas]]
        ax.bar(names, [d["estimate"] for d in deltas], yerr=yerr, capsize=6, color="#3070b0")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{title} (95% CI)", fontsize=10)
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle(report["statement"][:160], fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
