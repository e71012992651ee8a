"""The one client layer every LLM step uses.

It owns concurrency limits, per-request timeouts, retries with exponential backoff and jitter, the opt-in
fallback backend, the on-disk request cache and token accounting. Steps build a :class:`ChatRequest` and
get a :class:`ChatResult`; they never see HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from generation.backends.cache import RequestCache, request_key
from generation.backends.metrics import QueueSample, read_queue
from generation.backends.transports import (
    Completion,
    HTTPTransport,
    InferenceClientTransport,
    OpenAITransport,
    PermanentRequestError,
    Transport,
    is_overload,
    is_retryable,
    probe_health,
)
from generation.config import BackendConfig, FallbackConfig, RetryConfig, SamplingConfig
from generation.errors import BackendRequestError, BackendUnavailableError, ConfigError, register_secret

log = logging.getLogger(__name__)


if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout  # a deadline on the current task; no extra task per request
else:  # pragma: no cover - Python 3.10

    @asynccontextmanager
    async def _timeout(seconds: float) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        handle = asyncio.get_running_loop().call_later(seconds, task.cancel)
        try:
            yield
        except asyncio.CancelledError:
            if handle.cancelled() or handle.when() > asyncio.get_running_loop().time():
                raise
            raise asyncio.TimeoutError() from None
        finally:
            handle.cancel()


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
    # The text as the request cache's PII scrubber stored it and what it masked (None without a scrubbing
    # cache): a step's scrubbing (generation.pii.scrub_reply) reuses it instead of scrubbing the reply again.
    scrubbed: tuple[str, dict[str, int]] | None = field(default=None, repr=False, compare=False)


# What the request cache stores of a result: every field but the per-call ones (served from the cache, scrubbed copy).
CACHED_RESULT_FIELDS = tuple(f.name for f in fields(ChatResult) if f.name not in ("cached", "scrubbed"))


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
    register_secret(value)  # masked in every later error message and log line
    return value


def make_transport(backend: BackendConfig, base_url: str | None, api_key: str | None) -> Transport:
    if backend.engine == "openai":
        return OpenAITransport(backend.model, base_url or backend.base_url, api_key, backend.timeout_s)
    if not base_url:
        raise ConfigError(f"backend {backend.model!r}: no base_url to send requests to")
    if backend.transport == "inference_client":
        return InferenceClientTransport(backend.model, base_url, api_key, backend.timeout_s)
    return HTTPTransport(backend.model, base_url, api_key, backend.timeout_s)


@dataclass
class _Endpoint:
    """One server of a backend: its adaptive in-flight limit (AIMD) and its health.

    Queue-aware endpoints (``concurrency.queue_signal``) also read the server's queue: a queue above
    ``max_waiting`` cuts the limit by this client's share of the excess (every client sharing the server sees
    the same queue, so together they remove about the excess), once per request latency; a success slower
    than ``slow_latency_s`` or a timeout cuts it by ``decrease_factor``. The limit grows only while the queue
    is short and the limit is in use: +1 per success until the first cut (slow start), then +1 per window.
    """

    url: str
    transport: Transport
    limit: float  # adaptive requests-in-flight limit
    min_limit: int
    max_limit: int
    adaptive: bool = True
    decrease_factor: float = 0.5
    in_flight: int = 0
    peak_in_flight: int = 0
    decreases: int = 0
    last_decrease: float = -1.0  # monotonic time of the last decrease: one decrease per window of requests
    failures: int = 0  # consecutive retryable failures (not overload)
    resting_until: float = 0.0  # after a failure the endpoint gets no new requests for a while
    healthy: bool = True  # False after a failure until a health probe answers
    queue_aware: bool = False
    max_waiting: int = 2
    slow_latency_s: float = float("inf")
    queue_stale_s: float = 3.0
    queue: QueueSample | None = None  # the server's last queue reading
    latency_ema: float = 0.0  # seconds per successful request, smoothed
    slow_start: bool = True
    increases: int = 0
    lowest: float = float("inf")  # range of the limit, for reports
    highest: float = 0.0

    def __post_init__(self) -> None:
        self.lowest = self.highest = self.limit

    @property
    def capacity(self) -> int:
        return max(self.min_limit, int(self.limit))

    def usable(self, now: float) -> bool:
        return self.healthy and self.resting_until <= now

    def record(self, ok: bool) -> None:
        if ok:
            self.failures, self.resting_until = 0, 0.0
        else:
            self.failures += 1
            self.resting_until = time.monotonic() + min(30.0, 0.5 * 2**self.failures)

    def on_success(self, latency_s: float = 0.0, sent_at: float = 0.0) -> bool:
        """Additive increase (about +1 per window of requests); True when the capacity grew."""
        if not self.adaptive:
            return False
        if self.queue_aware:
            self.latency_ema = latency_s if self.latency_ema == 0 else 0.8 * self.latency_ema + 0.2 * latency_s
            if latency_s > self.slow_latency_s:
                self.on_overload(sent_at, f"a request took {latency_s:.0f} s")
                return False
            # No reading yet (no /metrics there, or not read yet): grow like any endpoint, +1 per window.
            if self.queue is not None and (not self._queue_short() or self.in_flight < self.capacity):  # in_flight counts this request
                return False
        if self.limit >= self.max_limit:
            return False
        before = self.capacity
        step = 1.0 if self.queue is not None and self.slow_start else 1.0 / self.limit
        self._set_limit(min(float(self.max_limit), self.limit + step))
        grew = self.capacity > before
        self.increases += grew
        return grew

    def on_overload(self, sent_at: float, reason: str = "overloaded") -> None:
        """Multiplicative decrease, once per window: only for requests sent after the last decrease."""
        if not self.adaptive or sent_at < self.last_decrease:
            return
        self._decrease(self.limit * self.decrease_factor, reason)

    def on_queue(self, sample: QueueSample) -> None:
        """A reading of the server's queue: cut the limit by this client's share of the queue's excess."""
        self.queue = sample
        excess = sample.waiting - self.max_waiting
        if not self.adaptive or excess <= 0 or self.in_flight == 0:
            return
        window = self.latency_ema if self.latency_ema > 0 else float("inf")  # the last cut needs a latency to act
        if self.last_decrease >= 0 and sample.at - self.last_decrease < window:
            return
        share = min(1.0, self.in_flight / max(1.0, sample.waiting + sample.running))
        target = min(self.limit, float(self.in_flight)) - share * excess
        if target < self.limit:
            self._decrease(target, f"{sample.waiting:.0f} request(s) waiting, {sample.running:.0f} running")

    def _queue_short(self) -> bool:
        """Whether a fresh reading says the server's queue is at most ``max_waiting``."""
        sample = self.queue
        return sample is not None and time.monotonic() - sample.at <= self.queue_stale_s and sample.waiting <= self.max_waiting

    def _decrease(self, limit: float, reason: str) -> None:
        self._set_limit(max(float(self.min_limit), limit))
        self.last_decrease = time.monotonic()
        self.decreases += 1
        self.slow_start = False
        log.info("endpoint %s: %s; requests in flight limited to %d", self.url, reason, self.capacity)

    def _set_limit(self, limit: float) -> None:
        self.limit = limit
        self.lowest, self.highest = min(self.lowest, limit), max(self.highest, limit)

    def report(self) -> dict[str, Any]:
        """The limit's state, for run summaries and benchmarks."""
        data: dict[str, Any] = {
            "url": self.url,
            "limit": self.capacity,
            "lowest": max(self.min_limit, int(self.lowest)),
            "highest": max(self.min_limit, int(self.highest)),
            "peak_in_flight": self.peak_in_flight,
            "decreases": self.decreases,
            "increases": self.increases,
        }
        if self.queue_aware:
            data["queue"] = None if self.queue is None else {"waiting": self.queue.waiting, "running": self.queue.running}
            data["latency_s"] = round(self.latency_ema, 3)
        return data


@dataclass
class _Backend:
    """One backend: one or more endpoints of the same model (e.g. several llm-swarm instances)."""

    role: str
    config: BackendConfig
    endpoints: list[_Endpoint]
    down_until: float = 0.0
    in_flight: int = 0
    usage: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    _monitor: asyncio.Task[None] | None = None
    _queue_reader: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        return ", ".join(e.url for e in self.endpoints)

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def least_busy(self) -> _Endpoint | None:
        """The usable endpoint with the fewest requests in flight (relative to its limit) and a free slot.

        If no endpoint is usable (all resting or failing health checks), the first one back is used, so
        requests keep failing fast into the retry budget and the fallback. None when every slot is taken.
        """
        if self.in_flight >= self.config.max_concurrency:
            return None
        now = time.monotonic()
        pool = [e for e in self.endpoints if e.usable(now)]
        if not pool:
            pool = [min(self.endpoints, key=lambda e: (e.healthy is False, e.resting_until))]
        free = [e for e in pool if e.in_flight < e.capacity]
        if not free:
            return None
        return min(free, key=lambda e: (e.in_flight / e.capacity, e.in_flight))

    async def acquire(self) -> _Endpoint:
        """Take a request slot on the least busy endpoint, waiting (woken by a release) while every slot is taken."""
        self._start_monitor()
        while (endpoint := self.least_busy()) is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.wake(1)  # this task was woken but is going away: pass the free slot on
                raise
        endpoint.in_flight += 1
        if endpoint.in_flight > endpoint.peak_in_flight:
            endpoint.peak_in_flight = endpoint.in_flight
        self.in_flight += 1
        return endpoint

    def release(self, endpoint: _Endpoint, slots_freed: int = 1) -> None:
        endpoint.in_flight -= 1
        self.in_flight -= 1
        if self._waiters:
            self.wake(slots_freed)

    def wake(self, count: int = 1) -> None:
        while count > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    @property
    def health_checked(self) -> bool:
        return self.config.health_check.enabled and self.config.engine != "openai"

    def _start_monitor(self) -> None:
        if self._monitor is None and self.health_checked and self.endpoints:
            self._monitor = asyncio.get_running_loop().create_task(self._health_loop())
        if self._queue_reader is None and self.config.queue_aware and self.config.concurrency.adaptive and self.endpoints:
            self._queue_reader = asyncio.get_running_loop().create_task(self._queue_loop())

    async def _queue_loop(self) -> None:
        """Read every endpoint's queue from its /metrics page every ``concurrency.metrics_interval_s``."""
        import aiohttp

        interval = self.config.concurrency.metrics_interval_s
        async with aiohttp.ClientSession() as session:
            while True:
                samples = await asyncio.gather(*(read_queue(session, e.url, max(1.0, 2 * interval)) for e in self.endpoints))
                for endpoint, sample in zip(self.endpoints, samples):
                    if sample is not None:
                        endpoint.on_queue(sample)
                await asyncio.sleep(interval)

    async def _health_loop(self) -> None:
        """Probe endpoints that failed; one that answers its health check gets requests again."""
        import aiohttp

        check = self.config.health_check
        async with aiohttp.ClientSession() as session:
            while True:
                await asyncio.sleep(check.interval_s)
                for endpoint in self.endpoints:
                    if endpoint.healthy:
                        continue
                    if await probe_health(session, endpoint.url, check.timeout_s):
                        log.info("endpoint %s passed its health check; it gets requests again", endpoint.url)
                        endpoint.healthy = True
                        self.wake(endpoint.capacity)

    async def aclose(self) -> None:
        for task in (self._monitor, self._queue_reader):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - only stopping it
                    pass
        self._monitor = self._queue_reader = None
        for endpoint in self.endpoints:
            await endpoint.transport.aclose()


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
        limits = config.concurrency
        max_limit = max(limits.min_per_endpoint, limits.max_per_endpoint or config.max_concurrency)
        start = min(max_limit, max(limits.min_per_endpoint, limits.initial_per_endpoint or max_limit))
        endpoints = [
            _Endpoint(
                url or config.base_url or "https://api.openai.com/v1",
                make_transport(config, url, api_key),
                limit=float(start),
                min_limit=limits.min_per_endpoint,
                max_limit=max_limit,
                adaptive=limits.adaptive,
                decrease_factor=limits.decrease_factor,
                queue_aware=config.queue_aware,
                max_waiting=limits.max_waiting,
                slow_latency_s=limits.latency_guard * config.timeout_s,
                queue_stale_s=3 * limits.metrics_interval_s,
            )
            for url in url_list
        ]
        backend = _Backend(role, config, endpoints)
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
                await backend.aclose()

    @property
    def capacity(self) -> int:
        """Requests the client can have in flight now (read-only): the backend in use's endpoint limits, summed
        and capped by its ``max_concurrency``. Callers size their windows with it; the client keeps the limits."""
        use_primary = bool(self.primary.endpoints) and (self.primary.available() or self.fallback is None)
        backend = self.primary if use_primary or self.fallback is None else self.fallback
        return max(1, min(backend.config.max_concurrency, sum(e.capacity for e in backend.endpoints)))

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
            entry = self.cache.lookup(key)  # type: ignore[union-attr]
            if entry is not None:
                value, masked = entry
                result = ChatResult(**{**value, "cached": True}, scrubbed=(value.get("text", ""), masked))
                (self.fallback if result.backend == "fallback" and self.fallback else self.primary).usage[request.purpose].cache_hits += 1
                return result
        result = await self._chat_uncached(request)
        if key is not None:
            # returns once committed: a crash after this request finished never sends it again
            value = {name: getattr(result, name) for name in CACHED_RESULT_FIELDS}
            result.scrubbed = await self.cache.store(key, value)  # type: ignore[union-attr]
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

    async def _attempt(self, backend: _Backend, request: ChatRequest) -> tuple[Completion, _Endpoint]:
        """One try on the least busy endpoint, updating its adaptive limit and health."""
        endpoint = await backend.acquire()
        sent_at = time.monotonic()
        grew = False
        try:
            async with _timeout(backend.config.timeout_s):
                completion = await endpoint.transport.complete(request.message_dicts(), request.sampling, request.seed)
        except Exception as exc:
            if is_overload(exc):
                endpoint.on_overload(sent_at)
            elif endpoint.queue_aware and isinstance(exc, asyncio.TimeoutError):
                endpoint.on_overload(sent_at, f"a request timed out after {backend.config.timeout_s:.0f} s")
                endpoint.record(ok=False)
            elif is_retryable(exc):
                endpoint.record(ok=False)
                if backend.health_checked and len(backend.endpoints) > 1:
                    endpoint.healthy = False  # out until a health probe answers
            raise
        else:
            endpoint.record(ok=True)
            grew = endpoint.on_success(time.monotonic() - sent_at, sent_at)
        finally:
            backend.release(endpoint, 2 if grew else 1)
        return completion, endpoint

    async def _call(self, backend: _Backend, request: ChatRequest) -> ChatResult:
        usage = backend.usage[request.purpose]

        def count_retry(exc: BaseException | None) -> None:
            usage.retries += 1
            log.info("retrying %s request to %s after %s", backend.role, backend.endpoint, _describe(exc))

        try:
            try:  # the first try outside tenacity: most requests need no retry, and this path is the hot one
                completion, endpoint = await self._attempt(backend, request)
            except Exception as exc:
                if self.retry.max_retries == 0 or not is_retryable(exc):
                    raise
                count_retry(exc)
                # Same schedule as one tenacity loop over all tries: before try k+1, up to initial * 2^(k-1) s.
                await asyncio.sleep(random.uniform(0, min(self.retry.backoff_max_s, self.retry.backoff_initial_s)))
                retrying = AsyncRetrying(
                    stop=stop_after_attempt(self.retry.max_retries),
                    wait=wait_random_exponential(multiplier=2 * self.retry.backoff_initial_s, max=self.retry.backoff_max_s),
                    retry=retry_if_exception(is_retryable),
                    before_sleep=lambda state: count_retry(state.outcome.exception() if state.outcome else None),
                    reraise=True,
                )
                async for attempt in retrying:
                    with attempt:
                        completion, endpoint = await self._attempt(backend, request)
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
                "limits": [e.report() for e in backend.endpoints],
            }
        return summary


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
