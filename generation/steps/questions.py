"""Step: modify seed questions into synthetic ones (prompt builder, output parser, filters).

Synthetic slot ``i`` rewrites seed ``i mod n`` with a modification drawn from the domain's list by an RNG
seeded from (run seed, i), so choices do not depend on completion order or on how work is sharded.
Generation runs in rounds: every pending slot is asked concurrently, then results are accepted in slot
order (so the near-duplicate check is deterministic); rejected slots retry in the next round until their
attempts are used up, and then count as give-ups.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process
from tqdm import tqdm

from generation.backends.client import ChatRequest, LLMClient
from generation.config import ModificationWeights, PromptsConfig, QuestionFilters, RunConfig
from generation.errors import ConfigError
from generation.pii import scrub_reply, scrubber_for
from generation.preprocess import normalise_question
from generation.question_intent import not_informational
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


@dataclass
class QuestionsOutcome:
    rows: list[QuestionRow]
    dropped: list[DroppedRow]
    stats: dict[str, object] = field(default_factory=dict)


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


def plan_slots(
    seeds: list[str], n_synthetic: int, modifications: list[str], run_seed: int, max_attempts: int, weights: list[float] | None = None
) -> list[SyntheticSlot]:  # fmt: skip
    """Which seed each synthetic slot rewrites and which modification each attempt uses (deterministic).

    With ``weights`` the draw is weighted (weight 0 = never drawn), still from the slot's seeded RNG.
    """
    slots = []
    for index in range(n_synthetic):
        rng = random.Random(derive_seed(run_seed, "modification", index))
        if weights is None:
            choices = [rng.choice(modifications) for _ in range(max_attempts)]
        else:
            choices = rng.choices(modifications, weights=weights, k=max_attempts)
        slots.append(SyntheticSlot(index, seeds[index % len(seeds)], choices))
    return slots


def _near_duplicate(question: str, existing: list[str], threshold: float) -> str | None:
    if not existing:
        return None
    match = process.extractOne(question, existing, scorer=fuzz.ratio, score_cutoff=threshold)
    return match[0] if match else None


def seed_qid(index: int) -> str:
    return f"seed-{index:07d}"


def synthetic_qid(index: int) -> str:
    return f"syn-{index:07d}"


async def generate_questions(
    seeds: list[str], cfg: RunConfig, client: LLMClient, show_progress: bool = True, rank: int = 0, world_size: int = 1
) -> QuestionsOutcome:
    """This shard's part of ``cfg.questions.target`` questions: its seeds plus filtered synthetic rewrites.

    Seed ``i`` and synthetic slot ``j`` belong to shard ``i % world_size`` / ``j % world_size``; every shard
    checks near-duplicates against all seeds.
    """
    qcfg = cfg.questions
    rows = [QuestionRow(q, q, "", "seed", seed_qid(i)) for i, q in enumerate(seeds) if i % world_size == rank]
    n_synthetic = max(0, qcfg.target - len(seeds))
    weights = qcfg.modification_weights
    if isinstance(weights, str):
        raise ConfigError(f"questions.modification_weights: {weights}: stats file not resolved; load the config with load_config")
    planned = plan_slots(seeds, n_synthetic, cfg.modifications, cfg.seed, qcfg.max_attempts, modification_weights(cfg.modifications, weights))
    slots = [slot for slot in planned if slot.index % world_size == rank]
    target = len(rows) + len(slots)
    accepted: dict[int, QuestionRow] = {}
    dropped: list[DroppedRow] = []
    reasons: Counter[str] = Counter()
    masked: Counter[str] = Counter()  # PII masked in the replies (before parsing, so dropped.csv is clean too)
    scrubber = scrubber_for(cfg.privacy.pii)
    give_ups = 0
    existing = list(seeds)
    pending = list(slots)
    log.info("generating %d synthetic questions from %d seeds", len(slots), len(seeds))
    bar = tqdm(total=len(slots), desc="questions", unit="q", disable=not show_progress or not slots)

    async def ask(slot: SyntheticSlot) -> str:
        modification = slot.modifications[slot.attempts]
        messages = build_modification_messages(slot.source_question, modification, cfg.prompts)
        seed = derive_seed(cfg.seed, "question", slot.index, slot.attempts)
        request = ChatRequest.build(messages, qcfg.sampling, seed, "question")
        result = await client.chat(request)
        text, counts = scrub_reply(scrubber, client, request, result)
        masked.update(counts)
        return text

    try:
        while pending:
            replies = await asyncio.gather(*(ask(slot) for slot in pending))
            still_pending = []
            for slot, raw in zip(pending, replies):
                modification = slot.modifications[slot.attempts]
                slot.attempts += 1
                question, reason = parse_question(raw, qcfg.filters)
                detail = ""
                if question is not None:
                    reason = check_question(question, qcfg.filters)
                if question is not None and reason is None:
                    final = normalise_question(question, cfg.preprocess.steps) if qcfg.normalise_generated else question
                    twin = _near_duplicate(final, existing, qcfg.filters.near_duplicate_ratio)
                    if twin is not None:
                        reason, detail = "near_duplicate", f"similar to: {twin}"
                    else:
                        accepted[slot.index] = QuestionRow(final, slot.source_question, modification, "synthetic", synthetic_qid(slot.index))
                        existing.append(final)
                        bar.update(1)
                        continue
                assert reason is not None
                reasons[reason] += 1
                dropped.append(DroppedRow("questions", reason, raw.strip(), slot.source_question, modification, slot.attempts, detail))
                if slot.attempts < qcfg.max_attempts:
                    still_pending.append(slot)
                else:
                    give_ups += 1
                    bar.update(1)
            pending = still_pending
    finally:
        bar.close()

    rows.extend(accepted[i] for i in sorted(accepted))
    shortfall = target - len(rows)
    stats = {
        "seed_questions": len(rows) - len(accepted),
        "target": target,
        "synthetic_requested": len(slots),
        "synthetic_accepted": len(accepted),
        "rejected_candidates": dict(sorted(reasons.items())),
        "give_ups": give_ups,
        "rows_out": len(rows),
        "shortfall": max(0, shortfall),
        "pii_masked": dict(sorted(masked.items())),
    }
    return QuestionsOutcome(rows, dropped, stats)
