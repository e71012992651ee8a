"""Step: a plausible but incorrect (rejected) answer, from ``prompts.rejected`` (the ``prompted`` strategy).

Its request does not depend on the chosen answer, so both are asked at once; the comparison with the
chosen answer (``check``: not a restatement, and with ``responses.length_control`` a word-count ratio inside
the band) runs when the chosen answer is there, and a failing candidate is retried at once.
"""

from __future__ import annotations

from generation.config import RunConfig
from generation.steps.base import Fields, Reject, Reply, Row, result_meta
from generation.steps.responses import AnswerStep, check_rejected_alone, parse_answer, restates
from generation.steps.strategies import length_reject


class RejectedStep(AnswerStep):
    name = "rejected"
    check_needs = ("chosen",)
    outputs = ("rejected", "rejected_meta")

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        control = cfg.responses.length_control
        self.band = control.band if control.enabled else None
        if control.enabled:
            self.max_attempts = max(self.max_attempts, control.max_attempts)

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        answer = parse_answer(reply.text, reply.result.finish_reason, self.config)
        reason = check_rejected_alone(answer, self.config)
        return Reject(reason) if reason else {"rejected": answer, "rejected_meta": result_meta(reply)}

    def check(self, fields: Fields, row: Row) -> Reject | None:
        if restates(fields["rejected"], row["chosen"], self.config):
            return Reject("restates_chosen")
        return length_reject(row["chosen"], fields["rejected"], self.band) if self.band else None
