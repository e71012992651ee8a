"""Step: mining's LLM pass: one request per round, showing a seeded sample of the domain's questions; the
reply's lines that read as instructions ("asks ...") are the round's proposals (never rejected, no retry)."""

from __future__ import annotations

from generation.config import MiningConfig, RunConfig
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row
from generation.steps.common import derive_seed, render_messages


class MiningStep(LLMStep):
    name = "mining"
    stage = "mining"
    needs = ("round", "questions")
    outputs = ("proposals",)

    def __init__(self, cfg: RunConfig, mining: MiningConfig, domain: str):
        assert mining.prompt is not None
        self.mining, self.domain = mining, domain
        self.sampling = mining.sampling
        self.run_seed = cfg.seed
        self.preamble_patterns = cfg.questions.filters.preamble_patterns

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        shown = "\n".join(f"- {q}" for q in row["questions"])
        return render_messages(self.mining.prompt, domain=self.domain, questions=shown, count=str(self.mining.proposals_per_round))  # type: ignore[arg-type]

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        return derive_seed(self.run_seed, "mining", row["round"])

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        from generation.mining import parse_proposals

        return {"proposals": parse_proposals(reply.text, self.mining, self.preamble_patterns)}
