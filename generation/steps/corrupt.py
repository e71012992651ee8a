"""Step: the rejected answer as a minimal corruption of the chosen one (``responses.strategy: corrupt``).

After the chosen answer, ``prompts.corrupt`` asks the model to rewrite it so that one or two key facts become
wrong while length, structure and tone stay (CLAIR, arXiv 2408.06266: minimally different pairs). A rewrite is
rejected, and asked again at once, when it

- fails the rejected answer's own checks (empty, too short, ``responses.self_correction_patterns``);
- corrects itself (the evaluator's ``rejected_self_corrects`` detector) or contradicts itself;
- restates the chosen answer: the evaluator's claim comparison finds no differing claim (``restates_chosen``
  when it finds agreement, ``no_claim_change`` when it finds neither). A token-set ratio would reject every good
  minimal edit; the claim comparison looks for what changed: a negation, an antonym, a number, a flipped yes/no
  or advice;
- is no minimal edit but another answer (``not_minimal``: less than half of its content words beyond the
  question's are the chosen answer's);
- with ``responses.length_control``: leaves the band of word-count ratios.

The differing claims the comparison found are kept in the row's provenance (``pair.claim_changes``).
"""

from __future__ import annotations

import re
from typing import Any

from generation.config import RunConfig
from generation.steps.base import Fields, Reject, Reply, Row, result_meta
from generation.steps.common import derive_seed, render_messages
from generation.steps.responses import AnswerStep, check_rejected_alone, parse_answer
from generation.steps.strategies import length_reject

# A minimal edit keeps most of the chosen answer: at least this share of the rewrite's content words (beyond the
# question's) must occur in the chosen answer; below it the rewrite is another answer, not a corruption of this one.
MIN_KEPT = 0.5
_ANSWER_TAG = re.compile(r"<\s*(/?)\s*answer\s*>", re.IGNORECASE)


def build_corrupt_messages(question: str, answer: str, template: Any) -> list[dict[str, str]]:
    """The rewrite prompt; an ``<answer>`` tag inside the answer becomes ``[answer]`` so it stays data."""
    return render_messages(template, question=question, answer=_ANSWER_TAG.sub(r"[\1answer]", answer))


class CorruptStep(AnswerStep):
    """The rejected side of a ``corrupt`` pair (named ``rejected``: same stats, dropped-row reasons and fields)."""

    name = "rejected"
    prompt = "corrupt"
    needs = ("question", "chosen")
    outputs = ("rejected", "rejected_meta", "pair_meta")

    def __init__(self, cfg: RunConfig, checks: Any):
        super().__init__(cfg)
        self.checks = checks
        control = cfg.responses.length_control
        self.band = control.band if control.enabled else None
        if control.enabled:
            self.max_attempts = max(self.max_attempts, control.max_attempts)

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        return build_corrupt_messages(row["question"], row["chosen"], self.template)

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        return derive_seed(self.run_seed, "corrupt", row["question"], attempt)

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        answer = parse_answer(reply.text, reply.result.finish_reason, self.config)
        reason = check_rejected_alone(answer, self.config)
        if reason:
            return Reject(reason)
        changes = self.check_rewrite(row["question"], row["chosen"], answer)
        if isinstance(changes, Reject):
            return changes
        return {"rejected": answer, "rejected_meta": result_meta(reply), "pair_meta": {"claim_changes": changes}}

    def check_rewrite(self, question: str, chosen: str, rewrite: str) -> Reject | list[str]:
        """Why a rewrite of ``chosen`` is not a usable corruption, or the claim changes the comparison found in it."""
        if " ".join(rewrite.lower().split()) == " ".join(chosen.lower().split()):
            return Reject("restates_chosen", "the rewrite is the chosen answer")
        found = self.checks.self_corrects(rewrite, chosen)
        if found:
            return Reject("self_correction", found)
        found = self.checks.contradicts_itself(rewrite, question)
        if found:
            return Reject("self_contradiction", found)
        comparison = self.checks.compare(question, chosen, rewrite)
        if comparison.agrees:
            return Reject("restates_chosen", comparison.evidence())
        if not comparison.differs:
            return Reject("no_claim_change", "the claim comparison finds no negation, antonym, number, yes/no or advice change")
        if comparison.coverage < MIN_KEPT:
            return Reject("not_minimal", f"only {comparison.coverage:.0%} of its content words beyond the question are in the chosen answer")
        if self.band is not None and (outside := length_reject(chosen, rewrite, self.band)):
            return outside
        return [cue.text for cue in comparison.differs]
