"""Step: the correct (chosen) answer to a question, from ``prompts.chosen``."""

from __future__ import annotations

from generation.config import RunConfig
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row, result_meta
from generation.steps.common import derive_seed
from generation.steps.responses import build_answer_messages, check_chosen, parse_answer


class ChosenStep(LLMStep):
    name = "chosen"
    stage = "responses"
    needs = ("question",)
    outputs = ("chosen", "chosen_meta")
    reason_prefix = "chosen_"

    def __init__(self, cfg: RunConfig):
        self.config = cfg.responses
        self.template = cfg.prompts.chosen
        self.sampling = cfg.responses.sampling
        self.max_attempts = cfg.responses.max_attempts
        self.run_seed = cfg.seed

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        return build_answer_messages(row["question"], self.template)

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        return derive_seed(self.run_seed, "chosen", row["question"], attempt)

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        answer = parse_answer(reply.text, reply.result.finish_reason, self.config)
        reason = check_chosen(answer, self.config)
        return Reject(reason) if reason else {"chosen": answer, "chosen_meta": result_meta(reply)}
