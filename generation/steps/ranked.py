"""Steps of the ``ranked`` pair strategy: best-of-k with a scored pick (UltraFeedback, Zephyr, Tulu 3 style).

1. :class:`RankedStep` samples ``responses.ranked.k`` answers with the chosen prompt (sample 0 with the chosen
   step's own seed, so it is the answer the ``prompted`` strategy would have kept as chosen);
2. a score per answer: :class:`RankedJudgeStep` asks the judge (``evaluation.judge``) the rubric's 1-5
   truthfulness question; offline, :class:`RankedScoreStep` uses a documented proxy: the answer's mean
   per-token log-likelihood under the reference model (``evaluation.plausibility``, default SmolLM2-135M)
   minus ``flag_penalty`` for each of the evaluator's single-answer flags (not an answer, absurd,
   self-contradictory, off topic or unrelated). The proxy rewards fluent, on-topic, typical text; it cannot tell a correct
   answer from a fluent wrong one;
3. :class:`RankedPickStep`: chosen = the best; rejected = one at least ``margin`` below it that the evaluator's
   gate would not drop as a rejected answer (not an answer, absurd, self-contradictory, or with the proxy
   less than ``hardness_min`` as likely per token: ``rejected_easy``) and, with ``length_control``, inside the
   band, picked by ``pick``: ``sweet_spot`` (the one closest to mean - 2 sd of the
   k scores, arXiv 2502.16825: best-against-worst degrades as k grows), ``random_lower`` (seeded) or ``worst``.

Everything is a function of the replies and the run seed, so the pick is deterministic under the seed.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from generation.config import RunConfig
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row, RowStep, Step, result_meta
from generation.steps.common import DroppedRow, derive_seed, word_count
from generation.steps.responses import AnswerStep, check_chosen, parse_answer
from generation.steps.strategies import LENGTH_REASON, in_band, length_ratio, ranked_uses_judge


class RankedStep(AnswerStep):
    """k answers to the question from ``prompts.chosen``; gives ``ranked_candidates`` (at least two)."""

    name = "ranked"
    prompt = "chosen"
    outputs = ("ranked_candidates",)

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        self.samples = cfg.responses.ranked.k

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        parts: tuple[object, ...] = (attempt, sample) if sample else (attempt,)
        return derive_seed(self.run_seed, "chosen", row["question"], *parts)

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        answer = parse_answer(reply.text, reply.result.finish_reason, self.config)
        reason = check_chosen(answer, self.config)
        return Reject(reason) if reason else {"id": f"ranked-{reply.sample}", "text": answer, "meta": dict(result_meta(reply))}

    def combine(self, row: Row, samples: list[Fields | None]) -> Fields | Reject:
        candidates = [fields for fields in samples if fields is not None]
        if len(candidates) < 2:
            return Reject("too_few_samples", f"{len(candidates)} of {len(samples)} samples passed the answer checks")
        return {"ranked_candidates": candidates}


class RankedScoreStep(RowStep):
    """The offline score of each candidate (see the module docstring); gives ``ranked_scores``."""

    name = "ranked_score"
    stage = "responses"
    needs = ("question", "ranked_candidates")
    outputs = ("ranked_scores",)

    def __init__(self, cfg: RunConfig, checks: Any):
        self.plausibility = cfg.evaluation.plausibility
        self.penalty = cfg.responses.ranked.flag_penalty
        self.checks = checks

    def process(self, row: Row) -> Fields | Reject:
        from generation.evaluation.plausibility import shared_scorer

        candidates = row["ranked_candidates"]
        texts = [c["text"] for c in candidates]
        loglik = shared_scorer(self.plausibility).score([row["question"]] * len(texts), texts)
        flags = self.checks.answer_flags(row["question"], texts)
        return {"ranked_scores": [
            {"score": round(float(ll) - self.penalty * len(f), 4), "loglik": round(float(ll), 4), "flags": f} for ll, f in zip(loglik, flags)
        ]}  # fmt: skip


class RankedJudgeStep(LLMStep):
    """The judge's 1-5 truthfulness of each candidate (the rubric's ``truthfulness`` question, log-prob expected
    value when the server gives log-probs); requests go to the judge's endpoint (purpose ``ranked_judge``)."""

    name = "ranked_judge"
    stage = "responses"
    needs = ("question", "ranked_candidates")
    outputs = ("ranked_scores",)
    scrub_replies = False  # log-prob envelopes, as in the evaluation judge

    def __init__(self, cfg: RunConfig):
        from generation.evaluation.judge import JUDGE_SAMPLING, default_rubric

        self.rubric = cfg.evaluation.judge.rubric or default_rubric()
        self.sampling = JUDGE_SAMPLING
        self.samples = cfg.responses.ranked.k

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        candidates = row["ranked_candidates"]
        text = candidates[sample % len(candidates)]["text"]  # fewer candidates than samples: asked again (cached)
        return [{"role": "system", "content": self.rubric.system}, {"role": "user", "content": self.rubric.truthfulness.format(question=row["question"], answer=text)}]

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        return 0  # greedy; the seed only keys the request cache

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        from generation.evaluation.judge import read_envelope, scale_score

        value, method = scale_score(*read_envelope(reply.text))
        return {"score": None if value is None else round(value, 4), "method": method}

    def combine(self, row: Row, samples: list[Fields | None]) -> Fields | Reject:
        n = len(row["ranked_candidates"])
        return {"ranked_scores": [samples[i] or {"score": None, "method": "no_reply"} for i in range(n)]}


def pick_pair(
    scores: list[float | None], margin: float, rule: str, seed: int, filters: Sequence[tuple[str, Callable[[int, int], bool]]] = ()
) -> tuple[int, int, dict[str, Any]] | Reject:  # fmt: skip
    """(chosen index, rejected index, how) from the candidates' scores, or a Reject.

    Chosen is the best score (ties: the lower index). Eligible rejected candidates score at least ``margin``
    below it and pass every ``(reason, keep(chosen, other))`` filter (a filter that leaves none is the Reject's
    reason). ``rule`` picks among them: ``sweet_spot`` the one closest to mean - 2 sd of all scores,
    ``random_lower`` a random one (``seed``), ``worst`` the lowest.
    """
    scored = [i for i, s in enumerate(scores) if s is not None]
    if len(scored) < 2:
        return Reject("too_few_scores", f"{len(scored)} of {len(scores)} candidates have a score")
    values = [scores[i] for i in scored]
    best = max(scored, key=lambda i: (scores[i], -i))
    eligible = [i for i in scored if i != best and scores[i] <= scores[best] - margin]  # type: ignore[operator]
    if not eligible:
        return Reject("no_margin", f"no candidate scores {margin} below the best ({scores[best]})")
    for reason, keep in filters:
        kept = [i for i in eligible if keep(best, i)]
        if not kept:
            return Reject(reason, f"{len(eligible)} candidate(s) far enough below the best, none passes the {reason} filter")
        eligible = kept
    mean, sd = statistics.fmean(values), statistics.pstdev(values)  # type: ignore[arg-type]
    how: dict[str, Any] = {"pick": rule, "score_mean": round(mean, 4), "score_sd": round(sd, 4)}
    if rule == "worst":
        other = min(eligible, key=lambda i: (scores[i], i))
    elif rule == "random_lower":
        other = random.Random(seed).choice(sorted(eligible))
    else:
        target = mean - 2 * sd
        how["target"] = round(target, 4)
        other = min(eligible, key=lambda i: (abs(scores[i] - target), i))  # type: ignore[operator]
    return best, other, how


# Flags of a candidate that make it a rejected answer the evaluator's gate drops (rejected_easy,
# rejected_self_contradictory): never picked as the rejected side.
UNUSABLE_REJECTED = frozenset({"not_an_answer", "absurd", "self_contradictory", "off_topic", "unrelated"})


class RankedPickStep(RowStep):
    """Pairs the best candidate with a lower one (:func:`pick_pair`); gives the pair and its ``pair_meta``."""

    name = "ranked_pick"
    stage = "responses"
    reason_prefix = "ranked_"
    needs = ("question", "ranked_candidates", "ranked_scores")
    outputs = ("chosen", "chosen_meta", "rejected", "rejected_meta", "pair_meta")

    def __init__(self, cfg: RunConfig, scorer: str):
        self.cfg = cfg.responses.ranked
        self.run_seed = cfg.seed
        self.scorer = scorer
        self.hardness_min = cfg.evaluation.thresholds.hardness_min
        control = cfg.responses.length_control
        self.band = control.band if control.enabled else None

    def filters(self, texts: list[str], scored: list[dict[str, Any]]) -> list[tuple[str, Callable[[int, int], bool]]]:
        """What a rejected candidate must pass besides the margin: not an answer the evaluator's gate drops (flags;
        with the likelihood proxy also ``rejected_easy``'s hardness), and inside the length band when it is on."""
        from generation.evaluation.plausibility import hardness

        def usable(best: int, other: int) -> bool:
            flags = set(scored[other].get("flags") or ())
            if flags & UNUSABLE_REJECTED:
                return False
            loglik = scored[other].get("loglik"), scored[best].get("loglik")
            return None in loglik or hardness(loglik[0], loglik[1], False) >= self.hardness_min  # type: ignore[arg-type]

        filters: list[tuple[str, Callable[[int, int], bool]]] = [("no_usable_rejected", usable)]
        if self.band is not None:
            band = self.band
            filters.append((LENGTH_REASON, lambda best, other: in_band(length_ratio(texts[best], texts[other]), band)))
        return filters

    def process(self, row: Row) -> Fields | Reject:
        candidates, scored = row["ranked_candidates"], row["ranked_scores"]
        texts = [c["text"] for c in candidates]
        seed = derive_seed(self.run_seed, "ranked-pick", row["question"])
        outcome = pick_pair([s["score"] for s in scored], self.cfg.margin, self.cfg.pick, seed, self.filters(texts, scored))
        if isinstance(outcome, Reject):
            return outcome
        best, other, how = outcome
        margin = scored[best]["score"] - scored[other]["score"]
        return {
            "chosen": texts[best], "chosen_meta": candidates[best]["meta"], "rejected": texts[other], "rejected_meta": candidates[other]["meta"],
            "pair_meta": {
                "scorer": self.scorer, "chosen_id": candidates[best]["id"], "rejected_id": candidates[other]["id"],
                "score_chosen": scored[best]["score"], "score_rejected": scored[other]["score"], "margin": round(margin, 4),
                "margin_min": self.cfg.margin, **how,
                "candidates": [{"id": c["id"], "seed": c["meta"]["seed"], "words": word_count(c["text"]), **s} for c, s in zip(candidates, scored)],
            },
        }  # fmt: skip

    def dropped(self, row: Row, reject: Reject) -> DroppedRow:
        texts = " || ".join(c["text"] for c in row["ranked_candidates"])
        return DroppedRow(self.stage, self.reason_prefix + reject.reason, texts, str(row.get("question", "")), str(row.get("modification", "")), 0, reject.detail)


def ranked_steps(cfg: RunConfig) -> list[Step]:
    """The ranked strategy's steps: sample, score (judge or offline proxy), pick."""
    judged = ranked_uses_judge(cfg)
    if judged:
        scorer: Step = RankedJudgeStep(cfg)
        label = f"judge {cfg.evaluation.judge.model}: rubric truthfulness 1-5"
    else:
        from generation.steps.claims import ClaimChecks

        if not cfg.evaluation.plausibility.model:
            from generation.errors import ConfigError

            raise ConfigError("responses.strategy ranked scores offline with evaluation.plausibility.model, which is null; set one or configure evaluation.judge.model")
        scorer = RankedScoreStep(cfg, ClaimChecks(cfg))
        label = f"proxy: mean log-prob per token under {cfg.evaluation.plausibility.model} - {cfg.responses.ranked.flag_penalty} x evaluator flags"
    return [RankedStep(cfg), scorer, RankedPickStep(cfg, label)]
