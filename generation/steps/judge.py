"""Step: the LLM judge's questions about one pair (is the chosen answer correct, is the rejected one wrong,
truthfulness and helpfulness on a 1-5 scale), one sample per question.

Replies are log-prob envelopes (see :mod:`generation.evaluation.judge`), so they are not PII-scrubbed (the
scrubber could take log-prob digits for phone numbers) and never retried: an unreadable reply scores None.
"""

from __future__ import annotations

from typing import Any

from generation.config import JudgeRubric
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row


class JudgeStep(LLMStep):
    name = "judge"
    stage = "evaluation"
    needs = ("prompt", "chosen", "rejected")
    scrub_replies = False

    def __init__(self, rubric: JudgeRubric):
        from generation.evaluation.judge import JUDGE_COLUMNS, JUDGE_SAMPLING

        self.sampling = JUDGE_SAMPLING
        self.system = rubric.system
        # (output column, prompt template, answer field, reading of the reply)
        self.asks = (
            (JUDGE_COLUMNS[0], rubric.is_correct, "chosen", "yes"),
            (JUDGE_COLUMNS[1], rubric.is_correct, "rejected", "no"),
            (JUDGE_COLUMNS[2], rubric.truthfulness, "chosen", "scale"),
            (JUDGE_COLUMNS[3], rubric.truthfulness, "rejected", "scale"),
            (JUDGE_COLUMNS[4], rubric.helpfulness, "chosen", "scale"),
        )
        self.samples = len(self.asks)
        self.outputs = (*JUDGE_COLUMNS, "judge_methods")

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        _, template, field, _ = self.asks[sample]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": template.format(question=row["prompt"], answer=row[field])}]

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        return 0  # the judge is greedy; the seed only keys the request cache

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        from generation.evaluation.judge import read_envelope, scale_score, yes_probability

        _, _, _, kind = self.asks[reply.sample]
        text, top = read_envelope(reply.text)
        if kind == "scale":
            value, method = scale_score(text, top)
        else:
            value, method = yes_probability(text, top)
            if value is not None and kind == "no":
                value = 1.0 - value
        return {"value": value, "method": method}

    def combine(self, row: Row, samples: list[Fields | None]) -> Fields | Reject:
        fields: dict[str, Any] = {column: (sample or {}).get("value") for (column, *_), sample in zip(self.asks, samples)}
        fields["judge_methods"] = [sample["method"] for sample in samples if sample is not None]
        return fields
