"""The client layer against a deliberately faulty local endpoint: retries, fallback, cache, accounting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from faulty_endpoint import FaultyEndpoint
from generation.backends.cache import RequestCache
from generation.backends.client import ChatRequest, LLMClient
from generation.config import BackendConfig, FallbackConfig, RetryConfig, SamplingConfig
from generation.errors import BackendRequestError, BackendUnavailableError, ConfigError

RETRY = RetryConfig(max_retries=3, backoff_initial_s=0.01, backoff_max_s=0.05, primary_cooldown_s=60)
REQUEST = ChatRequest.build([{"role": "user", "content": "hi"}], SamplingConfig(max_tokens=8), seed=1, purpose="chosen")


def backend(url: str, **extra) -> BackendConfig:
    return BackendConfig(engine="endpoint", model="faulty", base_url=url, **extra)


def run(coro):
    return asyncio.run(coro)


def test_retries_5xx_429_resets_and_malformed_bodies_then_succeeds():
    with FaultyEndpoint(["500", "429", "malformed"]) as endpoint:
        async def go():
            async with LLMClient(backend(endpoint.base_url), endpoint.base_url, RETRY) as client:
                return await client.chat(REQUEST), client.usage_summary()

        result, usage = run(go())
    assert result.text == "A fine answer." and result.backend == "primary"
    assert len(endpoint.requests) == 4
    assert usage["primary"]["by_purpose"]["chosen"]["retries"] == 3
    assert usage["primary"]["total"]["completion_tokens"] == 3
    assert endpoint.requests[-1]["seed"] == 1 and endpoint.requests[-1]["max_tokens"] == 8


def test_connection_reset_is_retried():
    with FaultyEndpoint(["reset"]) as endpoint:
        async def go():
            async with LLMClient(backend(endpoint.base_url), endpoint.base_url, RETRY) as client:
                return await client.chat(REQUEST)

        assert run(go()).text == "A fine answer."
    assert len(endpoint.requests) == 2


def test_timeout_is_retried():
    with FaultyEndpoint(["slow:2"]) as endpoint:
        async def go():
            async with LLMClient(backend(endpoint.base_url, timeout_s=0.5), endpoint.base_url, RETRY) as client:
                return await client.chat(REQUEST)

        assert run(go()).text == "A fine answer."
    assert len(endpoint.requests) == 2


def test_gives_up_after_the_retry_budget():
    with FaultyEndpoint(default="500") as endpoint:
        async def go():
            async with LLMClient(backend(endpoint.base_url), endpoint.base_url, RETRY) as client:
                await client.chat(REQUEST)

        with pytest.raises(BackendUnavailableError, match=r"primary backend .* failed 4 time\(s\): RetryableHTTPError: HTTP 500"):
            run(go())
    assert len(endpoint.requests) == 4


def test_permanent_errors_are_not_retried():
    with FaultyEndpoint(["400"]) as endpoint:
        async def go():
            async with LLMClient(backend(endpoint.base_url), endpoint.base_url, RETRY) as client:
                await client.chat(REQUEST)

        with pytest.raises(BackendRequestError, match="HTTP 400"):
            run(go())
    assert len(endpoint.requests) == 1


def test_fallback_takes_over_and_respects_its_cap():
    with FaultyEndpoint(default="500") as broken, FaultyEndpoint(reply="from fallback") as spare:
        fallback = FallbackConfig(enabled=True, model="spare", max_requests=2, backend=backend(spare.base_url))

        async def go():
            async with LLMClient(backend(broken.base_url), broken.base_url, RETRY, fallback) as client:
                first = await client.chat(REQUEST)
                second = await client.chat(REQUEST)  # primary is cooling down: straight to the fallback
                with pytest.raises(BackendUnavailableError, match=r"fallback.max_requests=2"):
                    await client.chat(REQUEST)
                return first, second, client.usage_summary()

        first, second, usage = run(go())
    assert first.text == second.text == "from fallback" and first.backend == "fallback"
    assert len(broken.requests) == 4  # one retry budget, then the cool-down kept it out
    assert usage["fallback"]["total"]["requests"] == 2


def test_check_ready_switches_to_fallback_or_fails(dead_url: str):
    with FaultyEndpoint(reply="ok") as spare:
        fallback = FallbackConfig(enabled=True, model="spare", backend=backend(spare.base_url))
        quick = RetryConfig(max_retries=0)

        async def with_fallback():
            async with LLMClient(backend(dead_url), dead_url, quick, fallback) as client:
                await client.check_ready()
                return await client.chat(REQUEST)

        assert run(with_fallback()).backend == "fallback"

    async def without_fallback():
        async with LLMClient(backend(dead_url), dead_url, quick) as client:
            await client.check_ready()

    with pytest.raises(BackendUnavailableError, match="is not answering .* no fallback is enabled"):
        run(without_fallback())


def test_cache_answers_repeated_requests(tmp_path: Path):
    with FaultyEndpoint() as endpoint:
        async def go():
            cache = RequestCache(tmp_path / "cache.sqlite")
            async with LLMClient(backend(endpoint.base_url), endpoint.base_url, RETRY, cache=cache) as client:
                first = await client.chat(REQUEST)
                second = await client.chat(REQUEST)
                other = await client.chat(ChatRequest.build([{"role": "user", "content": "hi"}], SamplingConfig(max_tokens=8), 2, "chosen"))
            cache.close()
            return first, second, other

        first, second, other = run(go())
    assert not first.cached and second.cached and not other.cached
    assert second.text == first.text
    assert len(endpoint.requests) == 2  # the repeated request never reached the endpoint


def test_corrupt_cache_is_set_aside_and_rebuilt(tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = RequestCache(path)
    cache.put("k", {"text": "v"})
    assert cache.get("k") == {"text": "v"}
    cache.close()
    assert list(tmp_path.glob("cache.sqlite.corrupt-*"))


def test_missing_api_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SYNTHGEN_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="SYNTHGEN_TEST_KEY"):
        LLMClient(backend("http://127.0.0.1:9/v1", api_key_env="SYNTHGEN_TEST_KEY"), "http://127.0.0.1:9/v1", RETRY)


def test_requests_spread_across_endpoints_and_avoid_a_failing_one():
    with FaultyEndpoint(default="slow:0.3") as first, FaultyEndpoint(default="slow:0.3") as second:
        urls = [first.base_url, second.base_url]

        async def go():
            async with LLMClient(backend(first.base_url, max_concurrency=4), urls, RETRY) as client:
                requests = [ChatRequest.build([{"role": "user", "content": f"q{i}"}], SamplingConfig(max_tokens=8), i, "chosen") for i in range(8)]
                return await asyncio.gather(*(client.chat(r) for r in requests))

        results = run(go())
    assert len(first.requests) == len(second.requests) == 4  # least outstanding requests
    assert {r.endpoint for r in results} == set(urls)

    with FaultyEndpoint(default="500") as broken, FaultyEndpoint() as healthy:
        async def go_broken():
            async with LLMClient(backend(broken.base_url), [broken.base_url, healthy.base_url], RETRY) as client:
                return [await client.chat(ChatRequest.build([{"role": "user", "content": f"q{i}"}], SamplingConfig(max_tokens=8), i, "chosen")) for i in range(5)]

        results = run(go_broken())
    assert all(r.endpoint == healthy.base_url for r in results)
    assert len(broken.requests) == 1  # after one failure it rests while the healthy one answers
