"""Step: the correct (chosen) answer to a question, from ``prompts.chosen``.

With ``responses.self_consistency.k`` > 1 it samples k answers and keeps the one that the most others do not
contradict (the evaluator's claim comparison, :mod:`generation.steps.claims`), provided at least half of the
others agree with it; otherwise the question is dropped (reason ``chosen_no_majority``).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from generation.config import RunConfig
from generation.steps.base import Fields, Reject, Reply, Row, result_meta
from generation.steps.responses import AnswerStep, check_chosen, parse_answer

# Cues of the claim comparison that say two answers contradict each other. "action" cues also fire when one
# answer merely recommends something the other does not mention ("recommends ..."): not a contradiction.
_CONTRADICTION_KINDS = ("yes_no", "negation", "antonym", "number", "action")


def contradicts(comparison: Any) -> bool:
    return any(cue.kind in _CONTRADICTION_KINDS and not cue.text.startswith("recommends") for cue in comparison.differs)


def consistent(question: str, first: str, second: str, checks: Any) -> bool:
    """Two answers are consistent when neither contradicts the other and they share claims (2+ content words
    beyond the question's)."""
    from generation.evaluation.stance import content_stems

    asked = set(content_stems(question))
    if len((set(content_stems(first)) - asked) & set(content_stems(second))) < 2:
        return False
    return not contradicts(checks.compare(question, first, second)) and not contradicts(checks.compare(question, second, first))


def majority_choice(question: str, answers: list[str | None], checks: Any) -> tuple[int, list[int]] | None:
    """(index of the kept answer, per answer how many others are consistent with it), or None when no answer is
    consistent with at least half of the other samples. Ties go to the lower sample index."""
    present = [i for i, answer in enumerate(answers) if answer is not None]
    agreeing = [0] * len(answers)
    for i, j in combinations(present, 2):
        if consistent(question, answers[i], answers[j], checks):  # type: ignore[arg-type]
            agreeing[i] += 1
            agreeing[j] += 1
    if not present:
        return None
    best = max(present, key=lambda i: (agreeing[i], -i))
    return (best, agreeing) if agreeing[best] >= len(answers) // 2 else None  # at least half of the k - 1 others


class ChosenStep(AnswerStep):
    name = "chosen"

    def __init__(self, cfg: RunConfig, checks: Any = None):
        super().__init__(cfg)
        self.samples = cfg.responses.self_consistency.k
        self.checks = checks
        self.outputs = ("chosen", "chosen_meta", "chosen_consistency") if self.samples > 1 else ("chosen", "chosen_meta")

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        answer = parse_answer(reply.text, reply.result.finish_reason, self.config)
        reason = check_chosen(answer, self.config)
        return Reject(reason) if reason else {"chosen": answer, "chosen_meta": result_meta(reply)}

    def combine(self, row: Row, samples: list[Fields | None]) -> Fields | Reject:
        answers = [fields["chosen"] if fields else None for fields in samples]
        choice = majority_choice(row["question"], answers, self.checks)
        if choice is None:
            return Reject("no_majority", f"no answer of {len(samples)} is consistent with half of the others")
        kept, agreeing = choice
        fields = dict(samples[kept])  # type: ignore[arg-type]
        fields["chosen_consistency"] = {
            "chosen_samples": len(samples), "chosen_kept": f"chosen-{kept}",
            "chosen_alternatives": [
                {"id": f"chosen-{i}", "seed": sample["chosen_meta"]["seed"], "consistent_with": agreeing[i]}
                for i, sample in enumerate(samples) if sample is not None
            ],
        }  # fmt: skip
        return fields
