"""DPO training check: does a preference dataset move a model on held-out topics?

Split the pairs by topic into train and held-out parts, measure the model's preference on the held-out
pairs (log p(chosen|prompt) - log p(rejected|prompt)), run a short real DPO training with TRL's
``DPOTrainer`` (reference = frozen copy of the start model), measure again, and bootstrap the change
over held-out pairs. Repeated for several seeds (each with its own split and training order).
"""

from __future__ import annotations

import copy
import logging
import math
import random
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from generation import __version__
from generation.config import BUNDLED_CONFIGS, StrictModel, read_yaml_mapping
from generation.errors import ConfigError, InputDataError
from generation.io import read_csv_rows, read_jsonl_objects, write_json

log = logging.getLogger(__name__)

DPO_MODEL_DIR = BUNDLED_CONFIGS / "models" / "dpo"
DEFAULT_DPO_MODEL = "smollm2-135m"
PROVENANCE_NAME = "questions_and_responses.provenance.jsonl"


# ---------------------------------------------------------------------------------------------- config


class GGUFSource(StrictModel):
    """A GGUF file shipped inside a Python package (found without importing it)."""

    package: str
    file: str


class LoraSettings(StrictModel):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class DPOModelConfig(StrictModel):
    """A model for the DPO check: a packaged GGUF (converted and cached) or any HF causal LM id/folder."""

    name: str = Field(min_length=1)
    gguf: GGUFSource | None = None
    hf: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    max_length: int = Field(256, ge=16)
    lora: LoraSettings | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "DPOModelConfig":
        if (self.gguf is None) == (self.hf is None):
            raise ValueError("set exactly one of gguf (packaged GGUF file) or hf (model id or folder)")
        return self


def load_dpo_model_config(ref: str | Path | None) -> DPOModelConfig:
    """Load a DPO model YAML: a path, or a name in configs/models/dpo/ (default smollm2-135m)."""
    ref = str(ref) if ref is not None else DEFAULT_DPO_MODEL
    path = Path(ref)
    if not path.exists() and path.suffix not in (".yaml", ".yml"):
        path = DPO_MODEL_DIR / f"{ref}.yaml"
    data = read_yaml_mapping(path)
    try:
        return DPOModelConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        msg = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: {key}: {msg}") from None


# ------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Pair:
    """One preference pair with the key it is held out by."""

    row: int
    prompt: list[dict[str, str]]  # chat messages, ending with the user turn
    chosen: str
    rejected: str
    topic: str


def _require_text(path: Path, row: int, column: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputDataError(f"{path}: row {row}: column {column!r} must be non-empty text")
    return value


def _messages(path: Path, row: int, column: str, value: Any, role: str | None) -> list[dict[str, str]]:
    """Accept a plain string or a list of {role, content} messages."""
    if isinstance(value, str):
        return [{"role": role or "user", "content": _require_text(path, row, column, value)}]
    if not isinstance(value, list) or not value:
        raise InputDataError(f"{path}: row {row}: column {column!r} must be text or a non-empty list of messages")
    for msg in value:
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
            raise InputDataError(f"{path}: row {row}: column {column!r} has a message without string role/content")
    if role is not None and (len(value) != 1 or value[0]["role"] != role):
        raise InputDataError(f"{path}: row {row}: column {column!r} must be one {role!r} message")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _provenance_topics(path: Path) -> dict[int, str]:
    """Row -> source question from the pipeline's provenance sidecar, when it sits next to the data."""
    sidecar = path.parent / PROVENANCE_NAME
    if not sidecar.is_file():
        return {}
    topics: dict[int, str] = {}
    for line_number, record in read_jsonl_objects(sidecar):
        try:
            topics[int(record["row"])] = str(record.get("source_question") or record.get("prompt") or "")
        except (KeyError, TypeError, ValueError):
            raise InputDataError(f"{sidecar}: line {line_number}: not a provenance record with a 'row'") from None
    return topics


def load_pairs(path: Path, topic_column: str = "topic") -> list[Pair]:
    """Read prompt/chosen/rejected pairs from a CSV or conversational JSONL; bad rows are one-line errors.

    The hold-out key is the pipeline's ``source_question`` (provenance sidecar beside the data), else a
    ``topic_column`` column, else the prompt itself.
    """
    if not path.is_file():
        raise InputDataError(f"{path}: file not found")
    raw: list[dict[str, Any]] = []
    if path.suffix == ".jsonl":
        raw = [record for _, record in read_jsonl_objects(path)]
        if not raw:
            raise InputDataError(f"{path}: no data rows")
        for index, record in enumerate(raw):
            missing = [key for key in ("prompt", "chosen", "rejected") if key not in record]
            if missing:
                raise InputDataError(f"{path}: row {index}: missing key(s) {missing}")
    else:
        raw = list(read_csv_rows(path, ("prompt", "chosen", "rejected")))

    sidecar_topics = _provenance_topics(path)
    pairs = []
    for index, record in enumerate(raw):
        prompt = _messages(path, index, "prompt", record["prompt"], None)
        if prompt[-1]["role"] != "user":
            raise InputDataError(f"{path}: row {index}: column 'prompt' must end with a user message")
        chosen = _messages(path, index, "chosen", record["chosen"], "assistant")[0]["content"]
        rejected = _messages(path, index, "rejected", record["rejected"], "assistant")[0]["content"]
        _require_text(path, index, "chosen", chosen)
        _require_text(path, index, "rejected", rejected)
        topic = sidecar_topics.get(index) or str(record.get(topic_column) or "").strip() or prompt[-1]["content"]
        pairs.append(Pair(index, prompt, chosen, rejected, topic))
    return pairs


def split_by_topic(pairs: Sequence[Pair], eval_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Deterministic (train, held-out) split that keeps every topic wholly on one side."""
    if not 0 < eval_fraction < 1:
        raise InputDataError(f"--eval-fraction must be between 0 and 1, got {eval_fraction}")
    topics = sorted({pair.topic for pair in pairs})
    if len(topics) < 2:
        raise InputDataError(f"need at least 2 topics to hold one out, the data has {len(topics)}")
    random.Random(seed).shuffle(topics)
    n_eval = min(len(topics) - 1, max(1, round(eval_fraction * len(topics))))
    held = set(topics[:n_eval])
    return [p for p in pairs if p.topic not in held], [p for p in pairs if p.topic in held]


# --------------------------------------------------------------------------------------- measurement


def response_logprobs(logits: Any, input_ids: Any, response_mask: Any) -> tuple[Any, Any]:
    """Per sequence: sum of log p(token) over response tokens, and the number of response tokens.

    ``logits`` [B, T, V] predict token t+1 at position t; ``response_mask`` [B, T] marks response tokens.
    """
    import torch

    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logps = logps.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    mask = response_mask[:, 1:].to(token_logps.dtype)
    return (token_logps * mask).sum(-1), mask.sum(-1)


def score_sequences(
    model: Any, sequences: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """(sum log-prob, token count) of each response given its prompt; sequences are (prompt_ids, response_ids)."""
    import torch

    device = next(model.parameters()).device
    sums, counts = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            width = max(len(p) + len(r) for p, r in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attn = torch.zeros((len(batch), width), dtype=torch.long)
            resp = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (p, r) in enumerate(batch):
                ids[i, : len(p) + len(r)] = torch.tensor(p + r)
                attn[i, : len(p) + len(r)] = 1
                resp[i, len(p) : len(p) + len(r)] = 1
            ids, attn = ids.to(device), attn.to(device)
            logits = model(input_ids=ids, attention_mask=attn).logits
            s, n = response_logprobs(logits, ids, resp.to(device))
            sums.append(s.cpu().numpy())
            counts.append(n.cpu().numpy())
    model.train(was_training)
    return np.concatenate(sums).astype(np.float64), np.concatenate(counts).astype(np.float64)


def tokenize_pair_side(tokenizer: Any, prompt: list[dict[str, str]], response: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of the chat-templated prompt and of the response as the template continues it."""
    prompt_text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": response}], tokenize=False)
    response_text = full_text[len(prompt_text) :] if full_text.startswith(prompt_text) else response
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response_text, add_special_tokens=False)["input_ids"]
    prompt_ids = prompt_ids[-max(1, max_length // 2) :] if len(prompt_ids) + len(response_ids) > max_length else prompt_ids
    return prompt_ids, response_ids[: max(1, max_length - len(prompt_ids))]


@dataclass
class Preference:
    """Per held-out pair: log-prob sums and token counts of chosen and rejected."""

    chosen: np.ndarray
    chosen_n: np.ndarray
    rejected: np.ndarray
    rejected_n: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        return self.chosen - self.rejected

    @property
    def margin_norm(self) -> np.ndarray:
        return self.chosen / np.maximum(self.chosen_n, 1) - self.rejected / np.maximum(self.rejected_n, 1)


def measure_preference(model: Any, tokenizer: Any, pairs: Sequence[Pair], max_length: int, batch_size: int = 8) -> Preference:
    """Log-probs of chosen and rejected for each pair under ``model``."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    seqs = [tokenize_pair_side(tokenizer, p.prompt, p.chosen, max_length) for p in pairs]
    seqs += [tokenize_pair_side(tokenizer, p.prompt, p.rejected, max_length) for p in pairs]
    sums, counts = score_sequences(model, seqs, pad_id, batch_size)
    n = len(pairs)
    return Preference(sums[:n], counts[:n], sums[n:], counts[n:])


# ------------------------------------------------------------------------------------------ statistics


def bootstrap_mean_over_groups(
    groups: Sequence[np.ndarray], resamples: int = 1000, seed: int | Sequence[int] = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean over groups of each group's mean, with a percentile interval from resampling within groups
    (``seed``: an int or a sequence of ints for numpy's ``default_rng``).

    Each group is one seed's held-out pairs; resampling pairs within each keeps the seeds' weights equal.
    """
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("bootstrap needs at least one non-empty group")
    rng = np.random.default_rng(seed)
    estimate = float(np.mean([g.mean() for g in groups]))
    stats = np.zeros(resamples)
    for g in groups:
        idx = rng.integers(0, g.size, size=(resamples, g.size))
        stats += g[idx].mean(axis=1)
    stats /= len(groups)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return {"estimate": estimate, "ci_low": float(low), "ci_high": float(high)}


# ------------------------------------------------------------------------------------------------ model


def load_model(cfg: DPOModelConfig, device: str) -> tuple[Any, Any]:
    """(model, tokenizer) for training; a packaged GGUF goes through the safetensors cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.gguf is not None:
        from generation.embedded_hf import cached_gguf_model_dir

        source = str(cached_gguf_model_dir(cfg.gguf.package, cfg.gguf.file))
    else:
        source = cfg.hf  # an HF id needs the model in the local HF cache when offline
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, cfg.dtype), trust_remote_code=cfg.trust_remote_code
        )
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"model {cfg.name}: cannot load {source!r}: {first}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"model {cfg.name}: tokenizer of {source!r} has no chat template")
    return model.to(device), tokenizer


def lora_config(cfg: DPOModelConfig) -> Any:
    """peft's LoraConfig for ``cfg.lora``; a clear error when peft is not installed."""
    if cfg.lora is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise ConfigError(f"model {cfg.name}: lora needs the 'peft' package (`pip install peft`)") from None
    return LoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM",
    )  # fmt: skip


# -------------------------------------------------------------------------------------------- the check


@dataclass
class CheckSettings:
    """Training and evaluation settings of one check."""

    steps: int = 15
    eval_fraction: float = 0.3
    seeds: int = 2
    seed: int = 0
    batch_size: int = 4
    learning_rate: float = 5e-5
    beta: float = 0.1
    bootstrap: int = 1000
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass
class SeedResult:
    seed: int
    n_train: int
    n_eval: int
    eval_topics: list[str]
    before: Preference
    after: Preference
    log_history: list[dict[str, Any]] = field(default_factory=list)
    train_s: float = 0.0


def _resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _conversational(pairs: Sequence[Pair]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": list(p.prompt),
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
            }
            for p in pairs
        ]
    )


def run_seed(pairs: Sequence[Pair], model_cfg: DPOModelConfig, settings: CheckSettings, seed: int, device: str) -> SeedResult:
    """One split + training + before/after measurement."""
    train, held = split_by_topic(pairs, settings.eval_fraction, seed)
    (before,), (after,), history, train_s = train_and_measure(train, [held], model_cfg, settings, seed, device)
    return SeedResult(seed, len(train), len(held), sorted({p.topic for p in held}), before, after, history, train_s)


def train_and_measure(
    train: Sequence[Pair], eval_sets: Sequence[Sequence[Pair]], model_cfg: DPOModelConfig, settings: CheckSettings, seed: int, device: str
) -> tuple[list[Preference], list[Preference], list[dict[str, Any]], float]:  # fmt: skip
    """A short DPO training on ``train`` from the start model (seed ``seed``); the preference on each evaluation set
    before and after it, the training log and the training time."""
    import torch
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    set_seed(seed)
    peft_config = lora_config(model_cfg)
    model, tokenizer = load_model(model_cfg, device)
    before = [measure_preference(model, tokenizer, held, model_cfg.max_length) for held in eval_sets]
    ref_model = None
    if peft_config is None:
        # ref_model=None would make TRL reload the model from its config path (the GGUF): pass a frozen copy
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    on_cuda = device == "cuda"
    with tempfile.TemporaryDirectory(prefix="synthgen-dpo-") as tmp:
        args = DPOConfig(
            output_dir=tmp,
            max_steps=settings.steps,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            beta=settings.beta,
            max_length=model_cfg.max_length,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            seed=seed,
            data_seed=seed,
            use_cpu=not on_cuda,
            # TRL defaults bf16=True and gradient checkpointing on; both are much slower on a CPU
            bf16=on_cuda and torch.cuda.is_bf16_supported() and model_cfg.dtype != "float16",
            fp16=False,
            gradient_checkpointing=model_cfg.gradient_checkpointing,
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = DPOTrainer(
            model=model, ref_model=ref_model, args=args, train_dataset=_conversational(train),
            processing_class=tokenizer, peft_config=peft_config,
        )  # fmt: skip
        start = time.monotonic()
        trainer.train()
        train_s = time.monotonic() - start
    trained = trainer.model
    after = [measure_preference(trained, tokenizer, held, model_cfg.max_length) for held in eval_sets]
    history = [
        {k: entry[k] for k in ("step", "loss", "rewards/accuracies", "rewards/margins") if k in entry}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    del trainer, trained, model, ref_model
    return before, after, history, train_s


def _summary(before: list[np.ndarray], after: list[np.ndarray], settings: CheckSettings, salt: int) -> dict[str, Any]:
    boot = settings.bootstrap
    seed = settings.seed * 1000 + salt
    return {
        "before": bootstrap_mean_over_groups(before, boot, seed),
        "after": bootstrap_mean_over_groups(after, boot, seed + 1),
        "delta": bootstrap_mean_over_groups([a - b for a, b in zip(after, before)], boot, seed + 2),
    }


def summarise(results: Sequence[SeedResult], settings: CheckSettings) -> dict[str, Any]:
    """Before/after figures, deltas with bootstrap intervals, and a verdict that claims no more than they show."""
    acc_b = [(r.before.margin > 0).astype(float) for r in results]
    acc_a = [(r.after.margin > 0).astype(float) for r in results]
    figures = {
        "preference_accuracy": _summary(acc_b, acc_a, settings, 1),
        "margin": _summary([r.before.margin for r in results], [r.after.margin for r in results], settings, 2),
        "margin_length_normalised": _summary(
            [r.before.margin_norm for r in results], [r.after.margin_norm for r in results], settings, 3
        ),
    }
    # DPO's implicit reward against the reference (= the start model): beta * (change of the log-prob margin)
    rewards = [settings.beta * (r.after.margin - r.before.margin) for r in results]
    figures["implicit_reward_accuracy"] = bootstrap_mean_over_groups([(x > 0).astype(float) for x in rewards], settings.bootstrap, settings.seed * 1000 + 4)
    figures["implicit_reward_margin"] = bootstrap_mean_over_groups(rewards, settings.bootstrap, settings.seed * 1000 + 5)
    acc_up = figures["preference_accuracy"]["delta"]["ci_low"] > 0
    margin_up = figures["margin_length_normalised"]["delta"]["ci_low"] > 0
    if acc_up and margin_up:
        verdict = "signal detected: held-out preference accuracy and length-normalised margin both rose (95% lower bounds > 0)"
    elif margin_up:
        verdict = "weak signal: the held-out length-normalised margin rose (95% lower bound > 0), the accuracy change did not"
    elif acc_up:
        verdict = "weak signal: held-out accuracy rose (95% lower bound > 0), the length-normalised margin change did not"
    else:
        verdict = "no signal detected: no held-out improvement beyond noise (this does not prove there is none)"
    return {"figures": figures, "accuracy_improved": acc_up, "margin_improved": margin_up, "signal_detected": acc_up and margin_up, "verdict": verdict}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_check(data: Path, out_dir: Path, model_cfg: DPOModelConfig, settings: CheckSettings) -> dict[str, Any]:
    """The whole check; writes ``dpo_check.json`` and ``dpo_check.png`` into ``out_dir`` and returns the report."""
    import torch

    if settings.steps < 1 or settings.seeds < 1 or settings.batch_size < 1:
        raise ConfigError("--steps, --seeds and --batch-size must be at least 1")
    started = time.monotonic()
    pairs = load_pairs(data)
    split_by_topic(pairs, settings.eval_fraction, settings.seed)  # fail on bad data before loading a model
    lora_config(model_cfg)
    device = _resolve_device(settings.device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    results = []
    for k in range(settings.seeds):
        seed = settings.seed + k
        log.info("seed %d: splitting by topic, measuring, training %d steps on %s", seed, settings.steps, device)
        result = run_seed(pairs, model_cfg, settings, seed, device)
        log.info("seed %d: %d train / %d held-out pairs, trained in %.0f s", seed, result.n_train, result.n_eval, result.train_s)
        results.append(result)
    report: dict[str, Any] = {
        "synthgen_version": __version__,
        "data": str(data),
        "pairs": len(pairs),
        "topics": len({p.topic for p in pairs}),
        "model": model_cfg.model_dump(mode="json"),
        "device": device,
        "settings": {k: v for k, v in settings.__dict__.items()},
        **summarise(results, settings),
        "seeds": [
            {
                "seed": r.seed,
                "train_pairs": r.n_train,
                "held_out_pairs": r.n_eval,
                "held_out_topics": len(r.eval_topics),
                "preference_accuracy_before": float((r.before.margin > 0).mean()),
                "preference_accuracy_after": float((r.after.margin > 0).mean()),
                "margin_length_normalised_before": float(r.before.margin_norm.mean()),
                "margin_length_normalised_after": float(r.after.margin_norm.mean()),
                "train_s": round(r.train_s, 1),
                "log_history": r.log_history,
            }
            for r in results
        ],
        "elapsed_s": round(time.monotonic() - started, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if device == "cuda":
        report["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plot(report, results, out_dir / "dpo_check.png")
    report["plot"] = "dpo_check.png"
    write_json(out_dir / "dpo_check.json", report)
    return report


def write_plot(report: dict[str, Any], results: Sequence[SeedResult], path: Path) -> None:
    """Held-out length-normalised margin before/after, training loss and reward accuracy per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    norm = report["figures"]["margin_length_normalised"]
    labels, values = ["before", "after"], [norm["before"], norm["after"]]
    yerr = [[v["estimate"] - v["ci_low"] for v in values], [v["ci_high"] - v["estimate"] for v in values]]
    axes[0].bar(labels, [v["estimate"] for v in values], yerr=yerr, capsize=6, color=["#999999", "#3070b0"])
    axes[0].axhline(0, color="black", linewidth=0.8)
    axes[0].set_title("held-out margin / token (95% CI)")
    for r in results:
        steps = [h["step"] for h in r.log_history]
        axes[1].plot(steps, [h.get("loss", math.nan) for h in r.log_history], label=f"seed {r.seed}")
        axes[2].plot(steps, [h.get("rewards/accuracies", math.nan) for h in r.log_history], label=f"seed {r.seed}")
    axes[1].set_title("training DPO loss")
    axes[2].set_title("training reward accuracy")
    axes[2].set_ylim(-0.05, 1.05)
    for ax in axes[1:]:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    acc = report["figures"]["preference_accuracy"]["delta"]
    fig.suptitle(f"{report['verdict']}  |  held-out accuracy change {acc['estimate']:+.2f} [{acc['ci_low']:+.2f}, {acc['ci_high']:+.2f}]", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> None:
    """Write a matplotlib figure as PNG atomically (readable by others) and close it."""
    import os

    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the report is meant to be read by others
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
