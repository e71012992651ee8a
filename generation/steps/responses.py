"""Step: a correct (chosen) and a plausible but incorrect (rejected) answer per question.

Prompt builders come from config templates; the parser strips labels and bounds the length; the checks
reject empty or too-short answers, rejected answers that joke or correct themselves, and rejected answers
that merely restate the chosen one. Each answer retries up to ``responses.max_attempts`` times; a question
whose answers never pass is dropped with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from tqdm import tqdm

from generation.backends.client import ChatRequest, ChatResult, LLMClient
from generation.config import ChatTemplate, ResponsesConfig, RunConfig
from generation.pii import Scrubber, scrub_reply, scrubber_for
from generation.steps.common import DroppedRow, derive_seed, first_match, render_messages, strip_preamble, trim_to_sentences, word_count
from generation.steps.questions import QuestionRow

log = logging.getLogger(__name__)


@dataclass
class PairRow:
    """One preference pair and its provenance."""

    prompt: str
    chosen: str
    rejected: str
    provenance: dict[str, object]


@dataclass
class ResponsesOutcome:
    pairs: list[PairRow]
    dropped: list[DroppedRow]
    stats: dict[str, object] = field(default_factory=dict)


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


def check_rejected(answer: str, chosen: str, cfg: ResponsesConfig) -> str | None:
    reason = check_chosen(answer, cfg)
    if reason:
        return reason
    if first_match(answer, cfg.self_correction_patterns):
        return "self_correction"
    if fuzz.token_set_ratio(answer.lower(), chosen.lower()) >= cfg.restatement_ratio:
        return "restates_chosen"
    return None


async def _answer(
    client: LLMClient, cfg: RunConfig, kind: str, question: QuestionRow, chosen: str | None, dropped: list[DroppedRow],
    scrubber: Scrubber | None = None, masked: Counter[str] | None = None,
) -> tuple[str, ChatResult, int] | None:
    """Ask for one answer kind until it passes its checks or attempts run out."""
    rcfg = cfg.responses
    template = cfg.prompts.chosen if kind == "chosen" else cfg.prompts.rejected
    messages = build_answer_messages(question.question, template)
    for attempt in range(rcfg.max_attempts):
        seed = derive_seed(cfg.seed, kind, question.question, attempt)
        request = ChatRequest.build(messages, rcfg.sampling, seed, kind)
        result = await client.chat(request)
        text, counts = scrub_reply(scrubber, client, request, result)  # before anything keeps or writes it
        if masked is not None:
            masked.update(counts)
        answer = parse_answer(text, result.finish_reason, rcfg)
        reason = check_chosen(answer, rcfg) if chosen is None else check_rejected(answer, chosen, rcfg)
        if reason is None:
            return answer, result, seed
        dropped.append(DroppedRow("responses", f"{kind}_{reason}", text.strip(), question.question, question.modification, attempt + 1))
    return None


async def generate_responses(questions: list[QuestionRow], cfg: RunConfig, client: LLMClient, show_progress: bool = True) -> ResponsesOutcome:
    """Answer every question twice (chosen, rejected); keeps question order."""
    dropped: list[DroppedRow] = []
    scrubber = scrubber_for(cfg.privacy.pii)
    # Questions from a user's file (`synthgen responses --questions`) were never scrubbed: scrub the rows in
    # place, so the prompts sent and every file written from them hold placeholders. Seeds and generated
    # questions are already scrubbed; scrubbing again changes nothing.
    masked_input: Counter[str] = Counter()
    for question in questions if scrubber is not None else ():
        text, counts = scrubber.scrub(question.question)  # type: ignore[union-attr]
        source, source_counts = scrubber.scrub(question.source_question)  # type: ignore[union-attr]
        masked_input.update(counts if question.source_question == question.question else counts + source_counts)
        question.question, question.source_question = text, source
    masked: Counter[str] = Counter()
    log.info("answering %d questions (chosen and rejected)", len(questions))
    bar = tqdm(total=len(questions), desc="responses", unit="pair", disable=not show_progress or not questions)

    async def one(question: QuestionRow) -> PairRow | None:
        try:
            chosen = await _answer(client, cfg, "chosen", question, None, dropped, scrubber, masked)
            if chosen is None:
                return None
            rejected = await _answer(client, cfg, "rejected", question, chosen[0], dropped, scrubber, masked)
            if rejected is None:
                return None
            (chosen_text, chosen_result, chosen_seed), (rejected_text, rejected_result, rejected_seed) = chosen, rejected
            provenance = {
                "qid": question.qid,
                "origin": question.origin,
                "source_question": question.source_question,
                "modification": question.modification,
                "chosen_model": chosen_result.model,
                "rejected_model": rejected_result.model,
                "chosen_backend": chosen_result.backend,
                "rejected_backend": rejected_result.backend,
                "endpoint": chosen_result.endpoint,
                "fallback_used": "fallback" in (chosen_result.backend, rejected_result.backend),
                "chosen_seed": chosen_seed,
                "rejected_seed": rejected_seed,
                "run_seed": cfg.seed,
            }
            return PairRow(question.question, chosen_text, rejected_text, provenance)
        finally:
            bar.update(1)

    try:
        results = await asyncio.gather(*(one(q) for q in questions))
    finally:
        bar.close()
    pairs = [pair for pair in results if pair is not None]
    final_reasons = Counter(row.reason for row in dropped)
    stats = {
        "rows_in": len(questions),
        "rows_out": len(pairs),
        "questions_dropped": len(questions) - len(pairs),
        "rejected_candidates": dict(sorted(final_reasons.items())),
        "fallback_pairs": sum(1 for p in pairs if p.provenance["fallback_used"]),
        "pii_masked": dict(sorted(masked.items())),
        "pii_masked_input": dict(sorted(masked_input.items())),
    }
    return ResponsesOutcome(pairs, dropped, stats)
