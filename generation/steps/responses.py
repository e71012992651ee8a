"""What the answer steps share: prompt builder, output parser and checks (steps in chosen.py, rejected.py).

The parser strips labels and bounds the length; the checks reject empty or too-short answers, rejected
answers that joke or correct themselves, and rejected answers that merely restate the chosen one. Each
answer retries up to ``responses.max_attempts`` times; a question whose answers never pass is dropped with
its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz

from generation.config import ChatTemplate, ResponsesConfig, RunConfig
from generation.steps.base import LLMStep, Row
from generation.steps.common import derive_seed, first_match, render_messages, strip_preamble, trim_to_sentences, word_count


@dataclass
class PairRow:
    """One preference pair and its provenance."""

    prompt: str
    chosen: str
    rejected: str
    provenance: dict[str, object]


def build_answer_messages(question: str, template: ChatTemplate) -> list[dict[str, str]]:
    """Prompt builder for either answer kind."""
    return render_messages(template, question=question)


def parse_answer(raw: str, finish_reason: str | None, cfg: ResponsesConfig) -> str:
    """Output parser: strip labels, bound the length, and end a cut-off answer at a full sentence."""
    text = strip_preamble(raw, cfg.preamble_patterns)
    return trim_to_sentences(text, cfg.max_words, truncated=finish_reason == "length")


def check_chosen(answer: str, cfg: ResponsesConfig) -> str | None:
    if not answer:
        return "empty"
    if word_count(answer) < cfg.min_words:
        return "too_short"
    return None


def check_rejected_alone(answer: str, cfg: ResponsesConfig) -> str | None:
    """The rejected answer's own checks (no chosen answer needed)."""
    reason = check_chosen(answer, cfg)
    if reason:
        return reason
    if first_match(answer, cfg.self_correction_patterns):
        return "self_correction"
    return None


def restates(answer: str, chosen: str, cfg: ResponsesConfig) -> bool:
    """True when a rejected answer merely restates the chosen one (RapidFuzz token-set ratio)."""
    return fuzz.token_set_ratio(answer.lower(), chosen.lower()) >= cfg.restatement_ratio


def check_rejected(answer: str, chosen: str, cfg: ResponsesConfig) -> str | None:
    reason = check_rejected_alone(answer, cfg)
    if reason:
        return reason
    return "restates_chosen" if restates(answer, chosen, cfg) else None


class AnswerStep(LLMStep):
    """What the chosen and rejected steps share: the prompt ``prompts.<name>``, the answer parser, and the
    request seed ``derive_seed(run seed, name, question, attempt)``."""

    stage = "responses"
    needs = ("question",)
    prompt = ""  # the template under prompts (default: the step's name)

    def __init__(self, cfg: RunConfig):
        self.config = cfg.responses
        self.template: ChatTemplate = getattr(cfg.prompts, self.prompt or self.name)
        self.sampling = cfg.responses.sampling
        self.max_attempts = cfg.responses.max_attempts
        self.run_seed = cfg.seed
        self.reason_prefix = f"{self.name}_"

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        return build_answer_messages(row["question"], self.template)

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        # sample 0 keeps the seed (and the cache key) of a one-sample step; more samples get their own
        if sample:
            return derive_seed(self.run_seed, self.name, row["question"], attempt, sample)
        return derive_seed(self.run_seed, self.name, row["question"], attempt)
