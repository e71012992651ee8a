"""Step: rewrite seed questions into new ones (prompt builder, output parser, filters, near-duplicates).

Synthetic slot ``i`` rewrites seed ``i mod n`` with a modification drawn from the domain's list by an RNG
seeded from (run seed, i), so choices do not depend on completion order or on how work is sharded. A
candidate is parsed and filtered as soon as its reply arrives; the near-duplicate check runs in slot order
(the step is ``ordered``), against every seed and every question accepted before it, so decisions do not
depend on timing. A rejected candidate is retried at once with the slot's next modification until its
attempts are used up (a give-up).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from generation.config import ModificationWeights, PromptsConfig, QuestionFilters, RunConfig
from generation.dedup import NearDuplicateIndex
from generation.errors import ConfigError
from generation.preprocess import normalise_question
from generation.question_intent import not_informational
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row
from generation.steps.common import DroppedRow, derive_seed, first_match, render_messages, strip_preamble, word_count

log = logging.getLogger(__name__)

SENTENCE_BREAK = re.compile(r"(?<=[.!:;])\s+")
QUESTION_WORDS = re.compile(
    r"^(what|whats|how|why|when|where|which|who|whom|whose|is|are|was|were|can|could|do|does|did|should|"
    r"would|will|may|might|must|has|have|had|am)\b",
    re.IGNORECASE,
)


@dataclass
class QuestionRow:
    """A row of ``questions.csv``."""

    question: str
    source_question: str
    modification: str
    origin: str  # "seed" or "synthetic"
    qid: str = ""  # stable id across shards: seed-<seed index> or syn-<synthetic slot index>

    FIELDS = ("question", "source_question", "modification", "origin")

    def as_row(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass
class SyntheticSlot:
    index: int
    source_question: str
    modifications: list[str]  # one per allowed attempt
    attempts: int = 0


def build_modification_messages(question: str, modification: str, prompts: PromptsConfig) -> list[dict[str, str]]:
    """Prompt builder: the seed question plus one modification instruction."""
    return render_messages(prompts.modify_question, question=question, modification=modification)


def parse_question(raw: str, filters: QuestionFilters) -> tuple[str | None, str | None]:
    """Output parser: pull one question out of a model reply; returns (question, None) or (None, reason)."""
    text = strip_preamble(raw, filters.preamble_patterns)
    lines = [strip_preamble(line, filters.preamble_patterns) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None, "empty"
    asking = [line for line in lines if "?" in line]
    if len(asking) > 1:
        return None, "multiple_questions"
    candidate = asking[0] if asking else lines[0]
    if candidate.count("?") > 1:
        return None, "multiple_questions"
    if "?" in candidate:
        candidate = candidate[: candidate.index("?") + 1]
        # "What a great question! How long does flu last?" -> the interrogative sentence only
        candidate = SENTENCE_BREAK.split(candidate)[-1]
    candidate = strip_preamble(candidate, filters.preamble_patterns)
    if not candidate:
        return None, "empty"
    return candidate, None


def check_question(question: str, filters: QuestionFilters) -> str | None:
    """Filters on one parsed question; returns the reason it fails, or None."""
    words = word_count(question)
    if words < filters.min_words:
        return "too_short"
    if words > filters.max_words:
        return "too_long"
    if first_match(question, filters.meta_patterns):
        return "meta_text"
    if "?" not in question and (filters.require_question_mark or not QUESTION_WORDS.match(question)):
        return "not_a_question"
    if first_match(question, filters.addressed_to_reader_patterns) or not_informational(question):
        return "addressed_to_reader"
    return None


def modification_weights(modifications: list[str], weights: ModificationWeights | None) -> list[float] | None:
    """Sampling weight per modification (None = uniform); unknown texts get ``default_weight``."""
    if weights is None:
        return None
    values = [weights.weights.get(text, weights.default_weight) for text in modifications]
    if not any(values):
        raise ConfigError("questions.modification_weights: every modification has weight 0 (retired)")
    return values


def slot_modifications(index: int, modifications: list[str], run_seed: int, max_attempts: int, weights: list[float] | None = None) -> list[str]:
    """The modification each attempt of synthetic slot ``index`` uses (seeded by the run seed and the slot).

    With ``weights`` the draw is weighted (weight 0 = never drawn), still from the slot's seeded RNG.
    """
    rng = random.Random(derive_seed(run_seed, "modification", index))
    if weights is None:
        return [rng.choice(modifications) for _ in range(max_attempts)]
    return rng.choices(modifications, weights=weights, k=max_attempts)


def plan_slots(
    seeds: list[str], n_synthetic: int, modifications: list[str], run_seed: int, max_attempts: int, weights: list[float] | None = None
) -> list[SyntheticSlot]:  # fmt: skip
    """Which seed each synthetic slot rewrites and which modification each attempt uses (deterministic)."""
    return [
        SyntheticSlot(index, seeds[index % len(seeds)], slot_modifications(index, modifications, run_seed, max_attempts, weights))
        for index in range(n_synthetic)
    ]


def resolved_weights(cfg: RunConfig) -> list[float] | None:
    """The run's modification sampling weights (None = uniform)."""
    weights = cfg.questions.modification_weights
    if isinstance(weights, str):
        raise ConfigError(f"questions.modification_weights: {weights}: stats file not resolved; load the config with load_config")
    return modification_weights(cfg.modifications, weights)


def seed_qid(index: int) -> str:
    return f"seed-{index:07d}"


def synthetic_qid(index: int) -> str:
    return f"syn-{index:07d}"


def question_rows(seeds: Sequence[str], cfg: RunConfig, rank: int = 0, world_size: int = 1) -> tuple[int, int, Any]:
    """This shard's rows, lazily: its seed questions, then its synthetic slots; returns (seeds, slots, rows).

    Seed ``i`` and synthetic slot ``j`` belong to shard ``i % world_size`` / ``j % world_size``.
    """
    n_seeds = len(range(rank, len(seeds), world_size))
    n_synthetic = max(0, cfg.questions.target - len(seeds))
    n_slots = len(range(rank, n_synthetic, world_size))
    weights = resolved_weights(cfg)
    attempts = cfg.questions.max_attempts

    def rows() -> Any:
        for i in range(rank, len(seeds), world_size):
            yield {"qid": seed_qid(i), "origin": "seed", "question": seeds[i], "source_question": seeds[i], "modification": ""}
        for j in range(rank, n_synthetic, world_size):
            yield {
                "qid": synthetic_qid(j), "origin": "synthetic", "slot": j, "source_question": seeds[j % len(seeds)],
                "modifications": slot_modifications(j, cfg.modifications, cfg.seed, attempts, weights),
            }  # fmt: skip

    return n_seeds, n_slots, rows()


class QuestionStep(LLMStep):
    """Rewrite a seed question following one modification; parse, filter, then (in slot order) near-duplicates."""

    name = "questions"
    stage = "questions"
    needs = ("source_question", "modifications", "slot")
    outputs = ("question", "modification")
    ordered = True

    def __init__(self, cfg: RunConfig, index: NearDuplicateIndex):
        self.prompts = cfg.prompts
        self.filters = cfg.questions.filters
        self.sampling = cfg.questions.sampling
        self.max_attempts = cfg.questions.max_attempts
        self.run_seed = cfg.seed
        self.normalise = cfg.preprocess.steps if cfg.questions.normalise_generated else None
        self.index = index

    def applies(self, row: Row) -> bool:
        return row.get("origin") == "synthetic"

    def messages(self, row: Row, attempt: int, sample: int) -> list[dict[str, str]]:
        return build_modification_messages(row["source_question"], row["modifications"][attempt], self.prompts)

    def seed(self, row: Row, attempt: int, sample: int) -> int:
        return derive_seed(self.run_seed, "question", row["slot"], attempt)

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        question, reason = parse_question(reply.text, self.filters)
        if question is not None:
            reason = check_question(question, self.filters)
        if question is None or reason is not None:
            return Reject(reason or "empty")
        final = normalise_question(question, self.normalise) if self.normalise is not None else question
        return {"question": final, "modification": row["modifications"][reply.attempt]}

    def commit(self, fields: Fields, row: Row) -> Reject | None:
        twin = self.index.check_and_add(fields["question"])
        return None if twin is None else Reject("near_duplicate", f"similar to: {twin}")

    def dropped(self, row: Row, reply: Reply, reject: Reject) -> DroppedRow:
        return DroppedRow(
            self.stage, reject.reason, reply.text.strip(), row["source_question"], row["modifications"][reply.attempt],
            reply.attempt + 1, reject.detail,
        )  # fmt: skip

    def extra_stats(self) -> dict[str, Any]:
        return {"near_duplicate_s": round(self.index.seconds, 3), "near_duplicate_checks": self.index.checks}
