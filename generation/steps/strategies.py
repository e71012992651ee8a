"""Pair strategies: which steps make a row's chosen and rejected answers (``responses.strategy``), the length band,
and the per-row provenance of how the pair was made.

- ``prompted`` (default): :class:`~generation.steps.chosen.ChosenStep` and an independent
  :class:`~generation.steps.rejected.RejectedStep` ("write a plausible but incorrect answer"), asked at once;
- ``corrupt``: the chosen answer first, then :class:`~generation.steps.corrupt.CorruptStep` rewrites it with one or
  two facts wrong (CLAIR-style minimal pairs);
- ``ranked``: :class:`~generation.steps.ranked.RankedStep` samples k answers with the chosen prompt, a scorer
  rates them (the judge, or an offline proxy) and :class:`~generation.steps.ranked.RankedPickStep` pairs the best
  with a lower one (UltraFeedback/Zephyr-style).

Options that work with the first two: ``responses.self_consistency`` (k chosen answers, keep one the majority
does not contradict) and ``responses.length_control`` (the rejected side is asked again while the pair's
chosen/rejected word-count ratio is outside the band); ranked picks its pair inside the band.
"""

from __future__ import annotations

from typing import Any

from generation.config import RunConfig
from generation.steps.base import Reject, Step
from generation.steps.common import word_count

LENGTH_REASON = "length_ratio"


def length_ratio(chosen: str, rejected: str) -> float:
    """The chosen/rejected word-count ratio (DPO amplifies length differences: arXiv 2403.19159)."""
    return word_count(chosen) / max(1, word_count(rejected))


def in_band(ratio: float, band: tuple[float, float]) -> bool:
    return band[0] <= ratio <= band[1]


def length_reject(chosen: str, rejected: str, band: tuple[float, float]) -> Reject | None:
    """A Reject (reason ``length_ratio``) when the pair's word-count ratio is outside ``band``."""
    ratio = length_ratio(chosen, rejected)
    if in_band(ratio, band):
        return None
    return Reject(LENGTH_REASON, f"chosen {word_count(chosen)} / rejected {word_count(rejected)} words = {ratio:.2f}, outside [{band[0]}, {band[1]}]")


def is_plain_prompted(cfg: RunConfig) -> bool:
    """Today's pipeline exactly: prompted pairs without length control or self-consistency (no pair provenance)."""
    r = cfg.responses
    return r.strategy == "prompted" and not r.length_control.enabled and r.self_consistency.k == 1


def response_steps(cfg: RunConfig) -> list[Step]:
    """The steps that turn a question into a chosen and a rejected answer, for ``responses.strategy``."""
    from generation.steps.chosen import ChosenStep

    strategy = cfg.responses.strategy
    if strategy == "ranked":
        from generation.steps.ranked import ranked_steps

        return ranked_steps(cfg)
    checks = None
    if cfg.responses.self_consistency.k > 1 or strategy == "corrupt":
        from generation.steps.claims import ClaimChecks

        checks = ClaimChecks(cfg)
    chosen = ChosenStep(cfg, checks)
    if strategy == "corrupt":
        from generation.steps.corrupt import CorruptStep

        return [chosen, CorruptStep(cfg, checks)]
    from generation.steps.rejected import RejectedStep

    return [chosen, RejectedStep(cfg)]


def answers_per_question(cfg: RunConfig) -> int:
    """Model requests per question without retries (the dry-run estimate)."""
    r = cfg.responses
    if r.strategy == "ranked":
        return r.ranked.k * (2 if ranked_uses_judge(cfg) else 1)
    return r.self_consistency.k + 1


def ranked_uses_judge(cfg: RunConfig) -> bool:
    scorer = cfg.responses.ranked.scorer
    return scorer == "judge" or (scorer == "auto" and bool(cfg.evaluation.judge.model))


def pair_provenance(cfg: RunConfig, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The ``pair`` record of a row's provenance: strategy, scores, margin, the sampled alternatives, the length
    ratio; None for plain prompted runs (their provenance is what it always was)."""
    if is_plain_prompted(cfg):
        return None
    record: dict[str, Any] = {"strategy": cfg.responses.strategy, "length_ratio": round(length_ratio(fields["chosen"], fields["rejected"]), 3)}
    for name in ("pair_meta", "chosen_consistency"):
        if fields.get(name):
            record.update(fields[name])
    return record


def strategy_stats(cfg: RunConfig, answer_steps: list[Any], counters: Any) -> dict[str, Any]:
    """A shard's pair-strategy figures for ``stages.responses`` (sums, so gather can add shards up): the strategy,
    requests and tokens of every answer step (kept and dropped rows), and the length-control accounting."""
    fields = ("requests", "cache_hits", "prompt_tokens", "completion_tokens")
    out: dict[str, Any] = {"strategy": cfg.responses.strategy, "cost": {name: sum(getattr(s, name) for s in answer_steps) for name in fields}}
    control = cfg.responses.length_control
    if control.enabled:
        resampled = sum(count for s in answer_steps for reason, count in s.rejected_candidates.items() if reason.endswith(LENGTH_REASON))
        out["length_control"] = {
            "band": list(control.band), "resampled": resampled,
            "pairs_fixed": counters["length_fixed"], "questions_dropped": counters["length_dropped"],
        }  # fmt: skip
    return out


# Coarse buckets of the chosen/rejected word-count ratio shown in the card and the summary; the middle one is
# the default band, both ends included.
RATIO_BUCKETS = ("<0.5", "0.5-0.8", "0.8-1.25", "1.25-2", ">2")


def ratio_bucket(ratio: float) -> str:
    if ratio < 0.8:
        return RATIO_BUCKETS[0] if ratio < 0.5 else RATIO_BUCKETS[1]
    if ratio <= 1.25:
        return RATIO_BUCKETS[2]
    return RATIO_BUCKETS[3] if ratio <= 2 else RATIO_BUCKETS[4]


def length_distribution(pairs: Any, band: tuple[float, float]) -> dict[str, Any]:
    """The distribution of the chosen/rejected word-count ratio over ``pairs`` ((chosen, rejected) texts, streamed).

    Quantiles come from a histogram of ln(ratio) in steps of 0.01 (about 1 % of the ratio), so memory stays flat.
    """
    import math
    from collections import Counter

    bins: Counter[int] = Counter()
    buckets: Counter[str] = Counter()
    n = inside = 0
    log_sum = 0.0
    for chosen, rejected in pairs:
        ratio = length_ratio(chosen, rejected)
        n += 1
        inside += in_band(ratio, band)
        log_ratio = math.log(max(ratio, 1e-6))
        log_sum += log_ratio
        bins[round(log_ratio * 100)] += 1
        buckets[ratio_bucket(ratio)] += 1
    if not n:
        return {"pairs": 0}

    def quantile(q: float) -> float:
        rank, seen = q * (n - 1), 0
        for key in sorted(bins):
            seen += bins[key]
            if seen > rank:
                return round(math.exp(key / 100), 3)
        return round(math.exp(max(bins) / 100), 3)

    return {
        "pairs": n, "median": quantile(0.5), "p10": quantile(0.1), "p90": quantile(0.9), "geometric_mean": round(math.exp(log_sum / n), 3),
        "band": list(band), "inside_band": inside, "inside_band_share": round(inside / n, 4),
        "buckets": {label: buckets.get(label, 0) for label in RATIO_BUCKETS},
    }  # fmt: skip


def finish_pair_figures(responses: dict[str, Any], pairs: Any, cfg: RunConfig) -> None:
    """Add to the merged ``stages.responses`` figures what shards cannot sum: requests and tokens per kept pair, and
    the length-ratio distribution of the published ``pairs`` ((chosen, rejected) texts, streamed)."""
    kept = responses.get("rows_out") or 0
    cost = responses.get("cost")
    if cost:
        responses["per_kept_pair"] = {name: round(value / kept, 2) if kept else None for name, value in cost.items()}
    control = cfg.responses.length_control
    responses["length"] = length_distribution(pairs, control.band)
