"""Adaptive concurrency (AIMD) and health checks, against a real local HTTP endpoint with injected faults."""

from __future__ import annotations

import asyncio
import time

from faulty_endpoint import FaultyEndpoint
from generation.backends.client import ChatRequest, LLMClient
from generation.config import BackendConfig, RetryConfig, SamplingConfig

RETRY = RetryConfig(max_retries=6, backoff_initial_s=0.01, backoff_max_s=0.05, primary_cooldown_s=60)


def requests(count: int, tag: str = "q") -> list[ChatRequest]:
    return [ChatRequest.build([{"role": "user", "content": f"{tag}{i}"}], SamplingConfig(max_tokens=8), i, "chosen") for i in range(count)]


def backend(url: str, **extra) -> BackendConfig:
    return BackendConfig(engine="endpoint", model="faulty", base_url=url, **extra)


def test_in_flight_falls_after_429s_and_recovers():
    with FaultyEndpoint(["429"] * 8, default="slow:0.15") as server:

        async def go():
            async with LLMClient(backend(server.base_url, max_concurrency=8), server.base_url, RETRY) as client:
                results = await asyncio.gather(*(client.chat(r) for r in requests(120)))
                return results, client.primary.endpoints[0]

        results, endpoint = asyncio.run(go())
    assert len(results) == 120 and all(r.text == "A fine answer." for r in results)
    # Halved once per window of requests that met 429s (twice if the retries reach the scripted 429s too).
    assert 1 <= endpoint.decreases <= 3
    assert max(server.arrivals[8:16]) <= 5  # then at most 4 in flight (+1 for a request finishing on the server)
    # Additive increase back to the configured maximum (the server's count can be off by one: a request
    # leaves its count just after its answer is sent).
    assert endpoint.capacity == 8 and endpoint.peak_in_flight == 8
    assert max(server.arrivals[-40:]) >= 7


def test_adaptive_limit_settles_near_a_servers_capacity():
    def load(adaptive: bool) -> tuple[int, int, int]:
        with FaultyEndpoint(default="slow:0.03") as server:
            server.capacity = 3
            config = backend(server.base_url, max_concurrency=12, concurrency={"adaptive": adaptive})

            async def go():
                async with LLMClient(config, server.base_url, RETRY) as client:
                    results = await asyncio.gather(*(client.chat(r) for r in requests(60)), return_exceptions=True)
                    return sum(not isinstance(r, BaseException) for r in results)

            ok = asyncio.run(go())
        return ok, server.overloaded, len(server.arrivals)

    ok, overloaded, sent = load(adaptive=True)
    fixed_ok, fixed_overloaded, _ = load(adaptive=False)
    assert ok == 60
    assert overloaded < 25 and sent < 85  # a few probes above capacity, not a storm of refused requests
    assert fixed_overloaded > 2 * overloaded  # a fixed limit of 12 keeps hitting the server's 3 slots


def test_failing_endpoint_is_taken_out_until_its_health_check_passes():
    with FaultyEndpoint(default="500") as sick, FaultyEndpoint(default="slow:0.05") as well:
        sick.health_status = 503
        urls = [sick.base_url, well.base_url]
        config = backend(sick.base_url, max_concurrency=4, health_check={"interval_s": 0.1, "timeout_s": 1})

        async def go():
            async with LLMClient(config, urls, RETRY) as client:
                first = [await client.chat(r) for r in requests(1, "a")]
                deadline = time.monotonic() + 1.5  # longer than the 1 s rest after one failure
                sick_phase = list(first)
                index = 0
                while time.monotonic() < deadline:
                    sick_phase.append(await client.chat(requests(index + 1, "b")[index]))
                    index += 1
                sent_while_sick = len(sick.requests)
                sick.default, sick.health_status = "ok", 200
                await asyncio.sleep(0.4)
                healed = await asyncio.gather(*(client.chat(r) for r in requests(12, "c")))
                return sick_phase, sent_while_sick, healed

        sick_phase, sent_while_sick, healed = asyncio.run(go())
    assert sent_while_sick == 1  # only the first request; then out, even after its rest, while /health fails
    assert all(r.endpoint == well.base_url for r in sick_phase)
    assert sick.health_checks >= 3
    assert any(r.endpoint == sick.base_url for r in healed)  # back in once the probe answers 200
