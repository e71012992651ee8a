"""Step: a plausible but incorrect (rejected) answer, from ``prompts.rejected``.

Its request does not depend on the chosen answer, so both are asked at once; the comparison with the
chosen answer (``check``: not a restatement) runs when the chosen answer is there, and a failing candidate
is retried at once.
"""

from __future__ import annotations

from generation.steps.base import Fields, Reject, Reply, Row, result_meta
from generation.steps.responses import AnswerStep, check_rejected_alone, parse_answer, restates


class RejectedStep(AnswerStep):
    name = "rejected"
    check_needs = ("chosen",)
    outputs = ("rejected", "rejected_meta")

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        answer = parse_answer(reply.text, reply.result.finish_reason, self.config)
        reason = check_rejected_alone(answer, self.config)
        return Reject(reason) if reason else {"rejected": answer, "rejected_meta": result_meta(reply)}

    def check(self, fields: Fields, row: Row) -> Reject | None:
        return Reject("restates_chosen") if restates(fields["rejected"], row["chosen"], self.config) else None
