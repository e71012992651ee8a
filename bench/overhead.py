"""Client-layer overhead: requests/s and CPU per request against a local endpoint that answers instantly.

The endpoint is a minimal HTTP/1.1 keep-alive server on raw asyncio (the simulated endpoint's framing,
``bench/sim_endpoint.py``), in its own process, that answers every POST with the same chat completion.
The client is synthgen's LLMClient (retries, adaptive concurrency, health checks, accounting; no request
cache unless noted), measured with each transport;
``http+cache+pii`` is the default transport as a run uses it: the SQLite request cache with the PII
scrubber, the step's scrubbing reusing what the cache scrubbed (``generation.pii.scrub_reply``). Each
load runs with the garbage-collector settings of a run (``generation.run.runner.few_collections``) unless
``--default-gc``.

    .venv/bin/python bench/overhead.py [--requests N] [--concurrency C]

Last line: ``overhead: <requests/s of the default transport>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim_endpoint import HTTPConnection, Slot  # noqa: E402 - the same HTTP/1.1 framing as the simulated endpoint

BODY = json.dumps(
    {
        "id": "x", "object": "chat.completion", "created": 0, "model": "instant",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "An instant answer."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
).encode()  # fmt: skip


class InstantHTTP(HTTPConnection):
    """Answers every POST with the same chat completion at once, anything else with ``{}``."""

    def route(self, method: str, path: str, body: bytes, slot: Slot) -> None:
        self.finish(slot, 200, BODY if method == "POST" else b"{}")


async def serve() -> None:
    server = await asyncio.get_running_loop().create_server(InstantHTTP, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def start_server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/v1"


def load(base_url: str, transport: str, count: int, concurrency: int, cache_dir: Path | None, pii: bool = False, default_gc: bool = False) -> dict:
    """One load in its own event loop, with the collector settings a run uses (unless ``default_gc``)."""
    from contextlib import nullcontext

    from generation.run.runner import few_collections

    with nullcontext() if default_gc else few_collections():
        return asyncio.run(_load(base_url, transport, count, concurrency, cache_dir, pii))


async def _load(base_url: str, transport: str, count: int, concurrency: int, cache_dir: Path | None, pii: bool = False) -> dict:
    from generation.backends.cache import RequestCache
    from generation.backends.client import ChatRequest, LLMClient
    from generation.config import BackendConfig, RetryConfig, SamplingConfig
    from generation.pii import Scrubber, scrub_reply

    config = BackendConfig(engine="endpoint", model="instant", base_url=base_url, max_concurrency=concurrency, transport=transport)
    sampling = SamplingConfig(max_tokens=16)
    scrubber = Scrubber() if pii else None
    cache = RequestCache(cache_dir / f"{transport}-{time.monotonic_ns()}.sqlite", scrubber) if cache_dir else None
    async with LLMClient(config, base_url, RetryConfig(), cache=cache) as client:

        async def ask(request: ChatRequest) -> str:
            result = await client.chat(request)
            return scrub_reply(scrubber, client, request, result)[0] if scrubber else result.text

        warm = [ChatRequest.build([{"role": "user", "content": f"warm {i}"}], sampling, i, "warmup") for i in range(200)]
        await asyncio.gather(*(ask(r) for r in warm))
        batch = [ChatRequest.build([{"role": "user", "content": f"question {i}?"}], sampling, i, "bench") for i in range(count)]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(ask(r) for r in batch))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        usage = client.usage_summary()["primary"]["by_purpose"]["bench"]
    if cache is not None:
        cache.close()
    assert len(results) == count and usage["requests"] == count and usage["failures"] == 0, usage
    return {"requests_per_s": count / wall, "cpu_ms_per_request": 1000 * cpu / count, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--default-gc", action="store_true", help="Python's default collector thresholds, as before runs set them")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    server, base_url = start_server()
    runs: dict[str, list[dict]] = {"http": [], "http+cache": [], "http+cache+pii": [], "inference_client": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):  # interleaved, so both see the same background load
                gc_default = args.default_gc
                runs["http"].append(load(base_url, "http", args.requests, args.concurrency, None, default_gc=gc_default))
                runs["http+cache"].append(load(base_url, "http", args.requests, args.concurrency, Path(tmp), default_gc=gc_default))
                runs["http+cache+pii"].append(load(base_url, "http", args.requests, args.concurrency, Path(tmp), pii=True, default_gc=gc_default))
                count = max(1000, args.requests // 4)
                runs["inference_client"].append(load(base_url, "inference_client", count, args.concurrency, None, default_gc=gc_default))
    finally:
        server.terminate()
        server.wait()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, in flight: {args.concurrency}, rounds: {args.rounds}, "
          f"collector: {'default' if args.default_gc else 'as in a run'}")  # fmt: skip
    print(f"{'transport':<18}{'requests/s (best)':>20}{'CPU ms/request':>16}")
    best = {}
    for name, items in runs.items():
        top = max(items, key=lambda r: r["requests_per_s"])
        best[name] = top
        print(f"{name:<18}{top['requests_per_s']:>20.0f}{top['cpu_ms_per_request']:>16.3f}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"overhead: {best['http']['requests_per_s']:.0f}")


if __name__ == "__main__":
    main()
