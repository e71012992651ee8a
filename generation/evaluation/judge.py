"""The LLM judge: rubric prompts through the same client layer as generation (retries, cache, accounting).

Scores come from the Yes/No (or digit) log-probabilities of the first reply token when the server returns
them (OpenAI, vLLM, TGI and llama-cpp-python's server do for chat completions), else from the parsed reply.
To carry log-probabilities through :class:`LLMClient` unchanged (its retries, accounting and request cache),
the judge's transport returns a JSON envelope ``{"reply": ..., "top_logprobs": {...}}`` as completion text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.backends.cache import RequestCache
from generation.backends.client import LLMClient, _Backend, resolve_api_key
from generation.backends.transports import Completion, OpenAITransport, PermanentRequestError, _completion_from
from generation.config import BUNDLED_CONFIGS, BackendConfig, JudgeRubric, RetryConfig, SamplingConfig, read_yaml_mapping
from generation.errors import ConfigError

log = logging.getLogger(__name__)

ENVELOPE_KEY = "synthgen_judge_envelope"
TOP_LOGPROBS = 10
JUDGE_SAMPLING = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=3)
# One request per column for each pair (JudgeStep), in this order
SINGLE_ANSWER_COLUMNS = (
    "judge_chosen_correct", "judge_rejected_incorrect", "judge_truthfulness_chosen",
    "judge_truthfulness_rejected", "judge_helpfulness_chosen", "judge_rejected_plausible",
)  # fmt: skip
# ... and two for the pairwise question (PairJudgeStep: both orders)
JUDGE_COLUMNS = (*SINGLE_ANSWER_COLUMNS, "judge_same_claims")
REQUESTS_PER_PAIR = len(SINGLE_ANSWER_COLUMNS) + 2


def default_rubric() -> JudgeRubric:
    """The rubric in configs/eval/defaults.yaml."""
    data = read_yaml_mapping(BUNDLED_CONFIGS / "eval" / "defaults.yaml")
    return JudgeRubric.model_validate(data["judge"]["rubric"])


def complete_rubric(rubric: JudgeRubric | None) -> JudgeRubric:
    """``rubric`` with its unset optional templates (``same_claims``, ``plausible``) taken from the default rubric."""
    default = default_rubric()
    if rubric is None:
        return default
    missing = {name: getattr(default, name) for name in ("same_claims", "plausible") if getattr(rubric, name) is None}
    return rubric.model_copy(update=missing)


def _top_logprobs(choice: Any) -> dict[str, float]:
    """Token -> log-prob of the first generated token's alternatives (empty when the server sent none)."""
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return {}
    first = content[0]
    result = {str(alt.token): float(alt.logprob) for alt in (getattr(first, "top_logprobs", None) or [])}
    result.setdefault(str(first.token), float(first.logprob))
    return result


def _envelope(completion: Completion, choice: Any) -> Completion:
    body = {ENVELOPE_KEY: 1, "reply": completion.text, "top_logprobs": _top_logprobs(choice)}
    return Completion(json.dumps(body), completion.finish_reason, completion.prompt_tokens, completion.completion_tokens)


class LogprobTransport(OpenAITransport):
    """Chat completions through the ``openai`` SDK (any OpenAI-compatible server: vLLM, TGI, llama.cpp, OpenAI),
    asking for the top log-probabilities of each token; if the server refuses them (HTTP 400), asks without."""

    logprobs = True

    async def complete(self, messages: list[dict[str, str]], sampling: SamplingConfig, seed: int | None) -> Completion:
        extra: dict[str, Any] = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self.logprobs else {}
        try:
            output = await self.create(messages, sampling, seed, **extra)
        except PermanentRequestError as exc:
            if not self.logprobs or exc.status != 400:
                raise
            log.warning("judge endpoint refused log-probs (%s); parsing replies instead", str(exc)[:100])
            self.logprobs = False
            return await self.complete(messages, sampling, seed)
        choices = output.choices
        return _envelope(_completion_from(choices, output.usage), choices[0] if choices else None)


class JudgeClient(LLMClient):
    """:class:`LLMClient` (retries, concurrency, cache, accounting) whose endpoints ask for log-probabilities."""

    @staticmethod
    def _backend(role: str, config: BackendConfig, urls: str | list[str] | None) -> _Backend:
        backend = LLMClient._backend(role, config, urls)
        api_key = resolve_api_key(config, role)
        for endpoint in backend.endpoints:
            endpoint.transport = LogprobTransport(config.model, endpoint.url, api_key, config.timeout_s)
        return backend


# ------------------------------------------------------------------------------------------ scoring


def read_envelope(text: str) -> tuple[str, dict[str, float]]:
    """(reply, top log-probs) from a judge completion; plain text (no envelope) gives no log-probs."""
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text, {}
    if isinstance(body, dict) and body.get(ENVELOPE_KEY):
        return str(body.get("reply") or ""), {str(k): float(v) for k, v in (body.get("top_logprobs") or {}).items()}
    return text, {}


def yes_probability(reply: str, top: dict[str, float]) -> tuple[float | None, str]:
    """P(yes) normalised over yes/no from log-probs (method "logprobs"), else 1/0 parsed from the reply ("parsed")."""
    yes = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() in {"yes", "y"})
    no = sum(math.exp(lp) for tok, lp in top.items() if tok.strip().lower() in {"no", "n"})
    if yes + no > 0:
        return yes / (yes + no), "logprobs"
    word = re.match(r"\W*(yes|no)\b", reply, re.IGNORECASE)
    if word:
        return (1.0 if word.group(1).lower() == "yes" else 0.0), "parsed"
    return None, "unparsed"


def scale_score(reply: str, top: dict[str, float]) -> tuple[float | None, str]:
    """Expected 1-5 score from the digit log-probs, else the first digit 1-5 in the reply."""
    mass = {int(tok.strip()): math.exp(lp) for tok, lp in top.items() if tok.strip() in {"1", "2", "3", "4", "5"}}
    total = sum(mass.values())
    if total > 0:
        return sum(k * v for k, v in mass.items()) / total, "logprobs"
    digit = re.search(r"[1-5]", reply)
    if digit:
        return float(digit.group(0)), "parsed"
    return None, "unparsed"


@dataclass(frozen=True)
class JudgeInfo:
    """Which judge produced the judge figures, and whether it is trusted."""

    model: str
    capable: bool

    @property
    def label(self) -> str:
        return f"judge {self.model}" + ("" if self.capable else " (unverified proxy: model not marked judge_capable)")


@contextmanager
def judge_endpoint(backend: BackendConfig, log_path: Path) -> Iterator[str | None]:
    """The judge's base URL, starting the embedded server when the judge's model file asks for it."""
    if backend.engine == "embedded":
        from generation.endpoints.embedded import EmbeddedServer

        assert backend.embedded is not None
        with EmbeddedServer(backend.embedded, backend.model, log_path) as server:
            yield server.base_url
    elif backend.engine == "swarm":
        raise ConfigError("evaluation.judge.model: a swarm model file cannot be a judge; use an endpoint/openai model file")
    else:
        yield backend.base_url


async def _judge_rows(client: LLMClient, rubric: JudgeRubric, rows: list[dict[str, str]], progress: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Judge every row with :class:`generation.steps.judge.JudgeStep` and :class:`~generation.steps.judge.PairJudgeStep`
    through the streaming runner."""
    from generation.run.runner import run_rows
    from generation.steps.judge import JudgeStep, PairJudgeStep

    rubric = complete_rubric(rubric)
    pairs = ({"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]} for row in rows)
    finished, _ = await run_rows(
        [JudgeStep(rubric), PairJudgeStep(rubric)], client, pairs, input_fields=("prompt", "chosen", "rejected"),
        progress="judge" if progress else None, total=len(rows),
    )  # fmt: skip
    methods: dict[str, int] = {}
    for row in finished:
        for method in [*row.fields["judge_methods"], *row.fields["judge_pair_methods"]]:
            methods[method] = methods.get(method, 0) + 1
    return [{column: row.fields[column] for column in JUDGE_COLUMNS} for row in finished], methods


def run_judge(
    backend: BackendConfig, rubric: JudgeRubric | None, rows: list[dict[str, str]], retry: RetryConfig,
    cache_path: Path | None, log_path: Path, progress: bool = True, max_concurrency: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Judge every row; returns per-row judge columns and a summary (model, methods, usage).

    The cache stores the judge's replies unscrubbed: they are at most a few tokens plus log-probabilities
    (whose digits the PII scrubber could take for phone numbers), never text from the pairs."""
    rubric = complete_rubric(rubric)
    if max_concurrency:
        backend = backend.model_copy(update={"max_concurrency": max_concurrency})
    cache = RequestCache(cache_path) if cache_path is not None else None
    try:
        with judge_endpoint(backend, log_path) as url:

            async def go() -> tuple[list[dict[str, Any]], dict[str, int], dict[str, Any]]:
                async with JudgeClient(backend, url, retry, None, cache) as client:
                    scores, methods = await _judge_rows(client, rubric, rows, progress)
                    return scores, methods, client.usage_summary()

            scores, methods, usage = asyncio.run(go())
    finally:
        if cache is not None:
            cache.close()
    info = {"model": backend.model, "engine": backend.engine, "judge_capable": backend.judge_capable, "methods": methods, "usage": usage}
    return scores, info
