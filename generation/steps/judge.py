"""Steps: the LLM judge's questions about one pair.

:class:`JudgeStep` asks about each answer on its own (is the chosen answer correct, is the rejected one wrong,
truthfulness and helpfulness on a 1-5 scale, would a lay reader believe the rejected answer); :class:`PairJudgeStep`
asks whether the two answers make the same claims, once in each order (the mean cancels a judge's preference
for the first or second position).

Replies are log-prob envelopes (see :mod:`generation.evaluation.judge`), so they are not PII-scrubbed (the
scrubber could take log-prob digits for phone numbers) and never retried: an unreadable reply scores None.
"""

from __future__ import annotations

from typing import Any

from generation.config import JudgeRubric
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row


class _JudgeAsks(LLMStep):
    """One greedy request per entry of ``asks``: (output column, user message for a row, reading of the reply)."""

    stage = "evaluation"
    needs = ("prompt", "chosen", "rejected")
    scrub_replies = False
    asks: tuple[tuple[str, Any, str], ...] = ()

    def __init__(self, rubric: JudgeRubric):
        from generation.evaluation.judge import JUDGE_SAMPLING

        self.sampling = JUDGE_SAMPLING
        self.system = rubric.system

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        _, user, _ = self.asks[sample]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user(row)}]

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        return 0  # the judge is greedy; the seed only keys the request cache

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        from generation.evaluation.judge import read_envelope, scale_score, yes_probability

        _, _, kind = self.asks[reply.sample]
        text, top = read_envelope(reply.text)
        if kind == "scale":
            value, method = scale_score(text, top)
        else:
            value, method = yes_probability(text, top)
            if value is not None and kind == "no":
                value = 1.0 - value
        return {"value": value, "method": method}


class JudgeStep(_JudgeAsks):
    name = "judge"

    def __init__(self, rubric: JudgeRubric):
        from generation.evaluation.judge import SINGLE_ANSWER_COLUMNS as C

        super().__init__(rubric)
        ask = lambda template, field: lambda row: template.format(question=row["prompt"], answer=row[field])  # noqa: E731
        self.asks = (
            (C[0], ask(rubric.is_correct, "chosen"), "yes"),
            (C[1], ask(rubric.is_correct, "rejected"), "no"),
            (C[2], ask(rubric.truthfulness, "chosen"), "scale"),
            (C[3], ask(rubric.truthfulness, "rejected"), "scale"),
            (C[4], ask(rubric.helpfulness, "chosen"), "scale"),
            (C[5], ask(rubric.plausible, "rejected"), "yes"),
        )
        self.samples = len(self.asks)
        self.outputs = (*C, "judge_methods")

    def combine(self, row: Row, samples: list[Fields | None]) -> Fields | Reject:
        fields: dict[str, Any] = {column: (sample or {}).get("value") for (column, *_), sample in zip(self.asks, samples)}
        fields["judge_methods"] = [sample["method"] for sample in samples if sample is not None]
        return fields


class PairJudgeStep(_JudgeAsks):
    """"Do these two answers make the same claims?", asked with (chosen, rejected) and (rejected, chosen)."""

    name = "judge_pair"
    outputs = ("judge_same_claims", "judge_pair_methods")

    def __init__(self, rubric: JudgeRubric):
        super().__init__(rubric)
        template = rubric.same_claims

        def ask(first: str, second: str):
            return lambda row: template.format(question=row["prompt"], answer_a=row[first], answer_b=row[second])

        self.asks = (("judge_same_claims", ask("chosen", "rejected"), "yes"), ("judge_same_claims", ask("rejected", "chosen"), "yes"))
        self.samples = 2

    def combine(self, row: Row, samples: list[Fields | None]) -> Fields | Reject:
        values = [s["value"] for s in samples if s is not None and s["value"] is not None]
        return {
            "judge_same_claims": sum(values) / len(values) if values else None,
            "judge_pair_methods": [s["method"] for s in samples if s is not None],
        }
