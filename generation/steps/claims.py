"""The evaluator's checks, as the pair-strategy steps use them while generating (one shared instance per config).

- :meth:`ClaimChecks.compare`: the evaluator's claim comparison (:func:`generation.evaluation.stance.compare_claims`)
  with its sentence embeddings and its thresholds, plus its token-set restatement cue, so an answer a strategy
  step accepts is judged the way ``synthgen evaluate`` will judge it (``rejected_agrees``);
- :meth:`ClaimChecks.self_corrects` and :meth:`ClaimChecks.contradicts_itself`: the ``rejected_self_corrects`` and
  ``*_self_contradictory`` detectors;
- :meth:`ClaimChecks.answer_flags`: the flags of one answer on its own (not an answer, absurd, self-contradictory,
  off topic) that the ranked strategy's offline score subtracts.

Models load on first use (the embedder in a few seconds); nothing here calls the generation model.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from generation.config import RunConfig


class ClaimChecks:
    """What the strategy steps ask of the evaluator, with the run's evaluation settings."""

    def __init__(self, cfg: RunConfig):
        from generation.evaluation import detectors as det
        from generation.evaluation.stance import load_lexicon

        self.ev = cfg.evaluation
        self.patterns = det.load_patterns(self.ev, cfg.questions.filters.addressed_to_reader_patterns)
        self.lexicon = load_lexicon(extra=tuple(tuple(p) for p in self.ev.antonyms))

    @functools.cached_property
    def embedder(self) -> Any:
        from generation.evaluation.metrics import shared_embedder

        return shared_embedder()

    def _sentence_similarity(self, first: str, second: str) -> np.ndarray:
        """Cosine similarity of the sentences of ``first`` (rows) and ``second`` (columns), as the evaluator splits them."""
        from generation.evaluation.stance import sentences

        a, b = sentences(first) or [first], sentences(second) or [second]
        vectors = self.embedder.encode(a + b)
        return vectors[: len(a)] @ vectors[len(a) :].T

    def compare(self, question: str, reference: str, answer: str) -> Any:
        """The claims of ``answer`` against those of ``reference`` (a ``ClaimComparison``; ``.agrees``, ``.differs``)."""
        from rapidfuzz import fuzz

        from generation.evaluation.stance import Cue, compare_claims

        th = self.ev.thresholds
        ratio = float(fuzz.token_set_ratio(reference, answer))
        extra = [Cue("restatement", "agree", f"token-set ratio {ratio:.0f}")] if ratio >= th.restatement_ratio else []
        return compare_claims(
            question, reference, answer, self.lexicon, self._sentence_similarity(answer, reference), th.claim_similarity_min,
            th.claim_coverage_min, extra,
        )  # fmt: skip

    def self_corrects(self, answer: str, reference: str) -> str | None:
        from generation.evaluation import detectors as det

        return det.self_correction(answer, reference, self.patterns)

    def contradicts_itself(self, answer: str, question: str) -> str | None:
        from generation.evaluation import detectors as det

        return det.self_contradiction(answer, self.patterns, question)

    def answer_flags(self, question: str, answers: list[str]) -> list[list[str]]:
        """Per answer, the evaluator's single-answer flags: ``not_an_answer``, ``absurd``, ``self_contradictory``,
        ``off_topic`` (question-answer similarity below ``relevance_min``) or ``unrelated`` (below
        ``easy_relevance_max``), the last two for answers with 4+ content words."""
        from generation.evaluation.evaluate import not_an_answer
        from generation.evaluation.stance import content_stems

        vectors = self.embedder.encode([question, *answers])
        relevance = vectors[1:] @ vectors[0]
        out = []
        for answer, rel in zip(answers, relevance):
            flags = []
            if not_an_answer(question, answer):
                flags.append("not_an_answer")
            if self.patterns.find("absurd", answer):
                flags.append("absurd")
            if self.contradicts_itself(answer, question):
                flags.append("self_contradictory")
            if len(set(content_stems(answer))) >= 4:  # a bare "12 months" has no topic to compare (as in the evaluator)
                if rel < self.ev.thresholds.relevance_min:
                    flags.append("off_topic")
                elif rel < self.ev.thresholds.easy_relevance_max:
                    flags.append("unrelated")  # as a rejected answer: rejected_easy
            out.append(flags)
        return out
