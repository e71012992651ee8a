"""Step: a plausible but incorrect (rejected) answer, from ``prompts.rejected``.

Its request does not depend on the chosen answer, so both are asked at once; the comparison with the
chosen answer (``check``: not a restatement) runs when the chosen answer is there, and a failing candidate
is retried at once.
"""

from __future__ import annotations

from generation.config import RunConfig
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row, result_meta
from generation.steps.common import derive_seed
from generation.steps.responses import build_answer_messages, check_rejected_alone, parse_answer, restates


class RejectedStep(LLMStep):
    name = "rejected"
    stage = "responses"
    needs = ("question",)
    check_needs = ("chosen",)
    outputs = ("rejected", "rejected_meta")
    reason_prefix = "rejected_"

    def __init__(self, cfg: RunConfig):
        self.config = cfg.responses
        self.template = cfg.prompts.rejected
        self.sampling = cfg.responses.sampling
        self.max_attempts = cfg.responses.max_attempts
        self.run_seed = cfg.seed

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        return build_answer_messages(row["question"], self.template)

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        return derive_seed(self.run_seed, "rejected", row["question"], attempt)

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        answer = parse_answer(reply.text, reply.result.finish_reason, self.config)
        reason = check_rejected_alone(answer, self.config)
        return Reject(reason) if reason else {"rejected": answer, "rejected_meta": result_meta(reply)}

    def check(self, fields: Fields, row: Row) -> Reject | None:
        return Reject("restates_chosen") if restates(fields["rejected"], row["chosen"], self.config) else None
