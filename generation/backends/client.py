"""The one client layer every LLM step uses.

It owns concurrency limits, per-request timeouts, retries with exponential backoff and jitter, the opt-in
fallback backend, the on-disk request cache and token accounting. Steps build a :class:`ChatRequest` and
get a :class:`ChatResult`; they never see HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from generation.backends.cache import RequestCache, request_key
from generation.backends.transports import (
    InferenceClientTransport,
    OpenAITransport,
    PermanentRequestError,
    Transport,
    is_retryable,
)
from generation.config import BackendConfig, FallbackConfig, RetryConfig, SamplingConfig
from generation.errors import BackendRequestError, BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make; ``purpose`` only labels token accounting."""

    messages: tuple[tuple[str, str], ...]
    sampling: SamplingConfig
    seed: int | None
    purpose: str

    @classmethod
    def build(cls, messages: list[dict[str, str]], sampling: SamplingConfig, seed: int | None, purpose: str) -> "ChatRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), sampling, seed, purpose)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass
class ChatResult:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    backend: str  # "primary" or "fallback"
    model: str
    endpoint: str
    cached: bool = False


@dataclass
class Usage:
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def resolve_api_key(backend: BackendConfig, role: str) -> str | None:
    """Read the backend's API key from the environment; a named but unset variable is a config error."""
    if not backend.api_key_env:
        return None
    value = os.environ.get(backend.api_key_env)
    if not value:
        raise ConfigError(f"{role} backend: environment variable {backend.api_key_env} (backend.api_key_env) is not set")
    return value


def make_transport(backend: BackendConfig, base_url: str | None, api_key: str | None) -> Transport:
    if backend.engine == "openai":
        return OpenAITransport(backend.model, base_url or backend.base_url, api_key, backend.timeout_s)
    if not base_url:
        raise ConfigError(f"backend {backend.model!r}: no base_url to send requests to")
    return InferenceClientTransport(backend.model, base_url, api_key, backend.timeout_s)


@dataclass
class _Endpoint:
    url: str
    transport: Transport
    in_flight: int = 0
    failures: int = 0  # consecutive retryable failures
    resting_until: float = 0.0  # after a failure the endpoint gets no new requests for a while

    def record(self, ok: bool) -> None:
        if ok:
            self.failures, self.resting_until = 0, 0.0
        else:
            self.failures += 1
            self.resting_until = time.monotonic() + min(30.0, 0.5 * 2**self.failures)


@dataclass
class _Backend:
    """One backend: one or more endpoints of the same model (e.g. several llm-swarm instances)."""

    role: str
    config: BackendConfig
    endpoints: list[_Endpoint]
    semaphore: asyncio.Semaphore  # max_concurrency across all endpoints
    down_until: float = 0.0
    usage: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))

    @property
    def endpoint(self) -> str:
        return ", ".join(e.url for e in self.endpoints)

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def least_busy(self) -> _Endpoint:
        """The healthy endpoint with the fewest requests in flight; if all are resting, the first back."""
        now = time.monotonic()
        healthy = [e for e in self.endpoints if e.resting_until <= now]
        if not healthy:
            return min(self.endpoints, key=lambda e: e.resting_until)
        return min(healthy, key=lambda e: e.in_flight)


class LLMClient:
    """Async chat client over a primary backend and an optional fallback backend."""

    def __init__(
        self,
        primary: BackendConfig,
        primary_url: str | list[str] | None,
        retry: RetryConfig,
        fallback: FallbackConfig | None = None,
        cache: RequestCache | None = None,
    ):
        self.retry = retry
        self.cache = cache
        self.primary = self._backend("primary", primary, primary_url)
        self.fallback: _Backend | None = None
        self.fallback_config = fallback if fallback is not None and fallback.enabled else None
        if self.fallback_config is not None:
            assert self.fallback_config.backend is not None  # guaranteed by FallbackConfig validation
            backend = self.fallback_config.backend
            self.fallback = self._backend("fallback", backend, backend.base_url)
        self.fallback_requests = 0
        self.fallback_completion_tokens = 0

    @staticmethod
    def _backend(role: str, config: BackendConfig, urls: str | list[str] | None) -> _Backend:
        api_key = resolve_api_key(config, role)
        url_list = [urls] if isinstance(urls, str) or urls is None else list(urls)
        endpoints = [
            _Endpoint(url or config.base_url or "https://api.openai.com/v1", make_transport(config, url, api_key)) for url in url_list
        ]
        backend = _Backend(role, config, endpoints, asyncio.Semaphore(config.max_concurrency))
        if not endpoints:  # its servers could not be started: never try it
            backend.down_until = float("inf")
        return backend

    async def __aenter__(self) -> "LLMClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for backend in (self.primary, self.fallback):
            if backend is not None:
                for endpoint in backend.endpoints:
                    await endpoint.transport.aclose()

    # ----------------------------------------------------------------------------------- requests

    def cache_key(self, request: ChatRequest) -> str:
        payload = {
            "model": self.primary.config.model,
            "messages": request.messages,
            "temperature": request.sampling.temperature,
            "top_p": request.sampling.top_p,
            "max_tokens": request.sampling.max_tokens,
            "seed": request.seed,
        }
        return request_key(payload)

    async def check_ready(self) -> None:
        """Send one tiny request to the primary; if it fails, switch to the fallback or raise."""
        probe = ChatRequest.build([{"role": "user", "content": "Say OK."}], SamplingConfig(temperature=0, max_tokens=1), 0, "probe")
        if not self.primary.endpoints:
            if self.fallback is None:
                raise BackendUnavailableError(f"primary backend {self.primary.config.model} has no endpoint; no fallback is enabled")
            return
        try:
            await self._call(self.primary, probe)
        except (BackendUnavailableError, BackendRequestError) as exc:
            if self.fallback is None:
                raise BackendUnavailableError(
                    f"primary backend {self.primary.config.model} at {self.primary.endpoint} is not answering ({exc}); "
                    "no fallback is enabled"
                ) from None
            self.primary.down_until = time.monotonic() + self.retry.primary_cooldown_s
            log.warning(
                "FALLBACK: primary backend %s at %s is not answering (%s); sending requests to the fallback %s",
                self.primary.config.model,
                self.primary.endpoint,
                exc,
                self.fallback.config.model,
            )

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Answer one request: from the cache, else the primary, else (if enabled) the fallback."""
        key = self.cache_key(request) if self.cache is not None else None
        if key is not None:
            cached = self.cache.get(key)  # type: ignore[union-attr]
            if cached is not None:
                result = ChatResult(**{**cached, "cached": True})
                (self.fallback if result.backend == "fallback" and self.fallback else self.primary).usage[request.purpose].cache_hits += 1
                return result
        result = await self._chat_uncached(request)
        if key is not None:
            self.cache.put(key, {k: v for k, v in asdict(result).items() if k != "cached"})  # type: ignore[union-attr]
        return result

    async def _chat_uncached(self, request: ChatRequest) -> ChatResult:
        if self.primary.endpoints and (self.primary.available() or self.fallback is None):
            try:
                return await self._call(self.primary, request)
            except BackendUnavailableError as exc:
                if self.fallback is None:
                    raise
                self.primary.down_until = time.monotonic() + self.retry.primary_cooldown_s
                log.warning(
                    "FALLBACK: primary backend failed past its retry budget (%s); using %s for %.0f s",
                    exc,
                    self.fallback.config.model,
                    self.retry.primary_cooldown_s,
                )
        return await self._call_fallback(request)

    async def _call_fallback(self, request: ChatRequest) -> ChatResult:
        assert self.fallback is not None and self.fallback_config is not None
        cap = self.fallback_config
        if cap.max_requests is not None and self.fallback_requests >= cap.max_requests:
            raise BackendUnavailableError(f"fallback request cap reached (fallback.max_requests={cap.max_requests})")
        if cap.max_completion_tokens is not None and self.fallback_completion_tokens >= cap.max_completion_tokens:
            raise BackendUnavailableError(
                f"fallback token cap reached (fallback.max_completion_tokens={cap.max_completion_tokens})"
            )
        self.fallback_requests += 1
        result = await self._call(self.fallback, request)
        self.fallback_completion_tokens += result.completion_tokens
        return result

    async def _call(self, backend: _Backend, request: ChatRequest) -> ChatResult:
        usage = backend.usage[request.purpose]

        def count_retry(state: RetryCallState) -> None:
            usage.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("retrying %s request to %s after %s", backend.role, backend.endpoint, _describe(exc))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.max_retries + 1),
            wait=wait_random_exponential(multiplier=self.retry.backoff_initial_s, max=self.retry.backoff_max_s),
            retry=retry_if_exception(is_retryable),
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with backend.semaphore:
                        endpoint = backend.least_busy()
                        endpoint.in_flight += 1
                        try:
                            completion = await asyncio.wait_for(
                                endpoint.transport.complete(request.message_dicts(), request.sampling, request.seed),
                                timeout=backend.config.timeout_s,
                            )
                        except Exception as exc:
                            endpoint.record(ok=not is_retryable(exc))
                            raise
                        finally:
                            endpoint.in_flight -= 1
                        endpoint.record(ok=True)
        except PermanentRequestError as exc:
            usage.failures += 1
            raise BackendRequestError(f"{backend.role} backend {backend.endpoint} refused a request: {exc}") from None
        except Exception as exc:
            usage.failures += 1
            if is_retryable(exc):
                raise BackendUnavailableError(
                    f"{backend.role} backend {backend.endpoint} failed {self.retry.max_retries + 1} time(s): {_describe(exc)}"
                ) from None
            raise
        usage.requests += 1
        usage.prompt_tokens += completion.prompt_tokens
        usage.completion_tokens += completion.completion_tokens
        return ChatResult(
            text=completion.text,
            finish_reason=completion.finish_reason,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            backend=backend.role,
            model=backend.config.model,
            endpoint=endpoint.url,
        )

    # --------------------------------------------------------------------------------- accounting

    def usage_summary(self) -> dict[str, Any]:
        """Requests, retries, cache hits and tokens per backend and purpose."""
        summary: dict[str, Any] = {}
        for backend in (self.primary, self.fallback):
            if backend is None:
                continue
            per_purpose = {purpose: asdict(usage) for purpose, usage in sorted(backend.usage.items()) if purpose != "probe"}
            totals = Usage()
            for usage in per_purpose.values():
                for name, value in usage.items():
                    setattr(totals, name, getattr(totals, name) + value)
            summary[backend.role] = {
                "model": backend.config.model,
                "endpoint": backend.endpoint,
                "total": asdict(totals),
                "by_purpose": per_purpose,
            }
        return summary


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
