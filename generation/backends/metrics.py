"""A server's request queue, read from its Prometheus ``/metrics`` page (vLLM's gauge names).

vLLM never answers 429: requests beyond what it runs at once (``--max-num-seqs``, or the KV cache) wait in its
queue. ``vllm:num_requests_waiting`` and ``vllm:num_requests_running`` are server-wide, so every client (every
shard) that shares a server sees the same queue; the client layer adapts its in-flight limits from them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    import aiohttp

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
_WANTED = (WAITING + " ", WAITING + "{", RUNNING + " ", RUNNING + "{")


@dataclass(frozen=True)
class QueueSample:
    """Requests waiting and running on one server (summed over its engines and models) at ``at`` (monotonic)."""

    waiting: float
    running: float
    at: float


def metrics_url(base_url: str) -> str:
    """``http://host:port/metrics`` for an OpenAI-style base URL (``.../v1``)."""
    root = base_url.rstrip("/")
    return (root[: -len("/v1")] if root.endswith("/v1") else root) + "/metrics"


def parse_queue(text: str, at: float | None = None) -> QueueSample | None:
    """The queue gauges of a Prometheus text page; None when the page has neither."""
    # Only the two gauges' lines go through the parser: a vLLM page holds hundreds of histogram lines.
    lines = "\n".join(line for line in text.splitlines() if line.startswith(_WANTED))
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(lines + "\n"):
        for sample in family.samples:
            if sample.name in (WAITING, RUNNING):
                totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    if WAITING not in totals:
        return None
    return QueueSample(totals[WAITING], totals.get(RUNNING, 0.0), time.monotonic() if at is None else at)


async def read_queue(session: aiohttp.ClientSession, base_url: str, timeout_s: float) -> QueueSample | None:
    """One read of a server's queue; None when the page cannot be read or has no queue gauges."""
    import aiohttp

    try:
        async with session.get(metrics_url(base_url), timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 200:
                return None
            text = await response.text()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return None
    return parse_queue(text)
