"""How plausible an answer is to a language model: mean per-token log-likelihood given the question.

An absurd or unrelated rejected answer ("rub the burn with sand") is much less likely, token for token,
than the chosen answer to the same question; a hard negative reads about as naturally. The model is a
DPO-check model file (``configs/models/dpo/<name>.yaml``; default the embedded SmolLM2-135M-Instruct,
converted from its packaged GGUF by ``generation/embedded_hf.py``), loaded with the DPO check's own
loader and scored with its :func:`generation.dpo_check.response_logprobs`. Only the first
``max_answer_tokens`` tokens of an answer count, the LM head runs on answer positions only, and the
model runs on the idle CPUs by default (:func:`generation.evaluation.metrics.torch_threads`), in bfloat16
where the CPU computes it natively and in float32 otherwise (:func:`resolve_dtype`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np

from generation.config import PlausibilityConfig

log = logging.getLogger(__name__)

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"


class PlausibilityScorer:
    """Mean log-probability per token of an answer given its question, under a small causal LM."""

    def __init__(self, cfg: PlausibilityConfig):
        import torch

        from generation.dpo_check import load_dpo_model_config, load_model

        from generation.errors import ConfigError

        assert cfg.model is not None
        self.cfg = cfg
        try:
            model_cfg = load_dpo_model_config(cfg.model)
            self.model, self.tokenizer = load_model(model_cfg, "cpu")
        except ConfigError as exc:
            raise ConfigError(f"evaluation.plausibility.model: {exc} (set it to null to evaluate without the language model)") from None
        self.model = self.model.to(getattr(torch, resolve_dtype(cfg.dtype))).eval()
        self.name = model_cfg.name

    def score(self, questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """Mean log p(token) over the first ``max_answer_tokens`` tokens of each answer (NaN for an empty one)."""
        import torch

        from generation.evaluation.metrics import using_torch_threads

        tok = self.tokenizer
        seqs = []
        for question, answer in zip(questions, answers):
            prompt = tok(PROMPT_TEMPLATE.format(question=question.strip()), add_special_tokens=False)["input_ids"]
            reply = tok(" " + answer.strip(), add_special_tokens=False)["input_ids"][: self.cfg.max_answer_tokens]
            seqs.append((prompt[-64:], reply))
        out = np.full(len(seqs), np.nan)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))  # little padding
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        with using_torch_threads(self.cfg.threads), torch.inference_mode():
            for start in range(0, len(order), self.cfg.batch_size):
                batch = [i for i in order[start : start + self.cfg.batch_size] if seqs[i][1]]
                if batch:
                    out[batch] = self._batch([seqs[i] for i in batch], pad)
        return out

    def _batch(self, batch: list[tuple[list[int], list[int]]], pad: int) -> np.ndarray:
        import torch

        from generation.dpo_check import response_logprobs

        width = max(len(p) + len(r) for p, r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (p, r) in enumerate(batch):
            ids[i, : len(p) + len(r)] = torch.tensor(p + r)
            attention[i, : len(p) + len(r)] = 1
        hidden = self.model.model(input_ids=ids, attention_mask=attention).last_hidden_state
        values = []
        for i, (p, r) in enumerate(batch):
            # positions len(p)-1 .. len(p)+len(r)-2 predict the answer tokens; the LM head runs on those only
            span = slice(len(p) - 1, len(p) + len(r))
            logits = self.model.lm_head(hidden[i : i + 1, span])
            target = ids[i : i + 1, span]
            total, count = response_logprobs(logits, target, torch.ones_like(target))
            values.append(float(total) / max(1.0, float(count)))
        return np.array(values)


def resolve_dtype(dtype: str) -> str:
    """The torch dtype name for ``evaluation.plausibility.dtype``: "auto" is bfloat16 when oneDNN has native
    bfloat16 kernels on this CPU, else float32."""
    if dtype != "auto":
        return dtype
    import torch

    return "bfloat16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"


@functools.lru_cache(maxsize=2)
def shared_scorer(cfg: PlausibilityConfig) -> PlausibilityScorer:
    """One scorer per process and config (loading takes seconds)."""
    return PlausibilityScorer(cfg)


def hardness(loglik_rejected: float, loglik_chosen: float, absurd: bool) -> float:
    """Plausibility of the rejected answer relative to the chosen one, 0-1.

    The square root of the per-token likelihood ratio rejected/chosen (``exp`` of half the difference of the
    mean log-probs), capped at 1, halved when the rejected answer carries an absurdity marker. 1 = reads as
    naturally as the chosen answer; 0.35 (the default ``hardness_min``) = each token about 8 times less likely.
    """
    if math.isnan(loglik_rejected) or math.isnan(loglik_chosen):
        return float("nan")
    value = min(1.0, math.exp((loglik_rejected - loglik_chosen) / 2))
    return value / 2 if absurd else value

