"""Step: the correct (chosen) answer to a question, from ``prompts.chosen``."""

from __future__ import annotations

from generation.steps.base import Fields, Reject, Reply, Row, result_meta
from generation.steps.responses import AnswerStep, check_chosen, parse_answer


class ChosenStep(AnswerStep):
    name = "chosen"
    outputs = ("chosen", "chosen_meta")

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        answer = parse_answer(reply.text, reply.result.finish_reason, self.config)
        reason = check_chosen(answer, self.config)
        return Reject(reason) if reason else {"chosen": answer, "chosen_meta": result_meta(reply)}
