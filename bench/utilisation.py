"""Endpoint utilisation: the pipeline's generated tokens/s over the same endpoint's saturated throughput.

Starts the embedded model server once, behind a counting proxy that records every chat request. The real
pipeline (``synthgen run``, request cache off) runs against it; its rate is its completion tokens over
the time from its first request to its last answer. Then a plain load test replays exactly the requests
the pipeline sent (same prompts, sampling and seeds, so the same tokens) with the in-flight limit always
full: the server's saturated rate for the same work. A second load test of answer-like requests
(``--load-seconds``) is printed for reference.

    .venv/bin/python bench/utilisation.py [--target 16] [--concurrency N] [--load-seconds 20]

Last line: ``utilisation: <pipeline tokens/s / saturated tokens/s>``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import CountingProxy, embedded_server, load_test, replay, stop_on_sigterm, synthgen, tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=16, help="questions.target of the pipeline run")
    parser.add_argument("--concurrency", type=int, help="requests in flight (default: the model file's max_concurrency)")
    parser.add_argument("--load-seconds", type=float, default=20)
    args = parser.parse_args()
    stop_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        server, cfg = embedded_server(Path(tmp) / "server.log")
        concurrency = args.concurrency or cfg.backend.max_concurrency
        max_tokens = cfg.responses.sampling.max_tokens
        with server:
            proxy = CountingProxy(server.base_url).start()
            print(f"server: {server.kind}; in flight: {concurrency}; answer max_tokens: {max_tokens}")
            asyncio.run(load_test(proxy.base_url, cfg.backend.model, concurrency, 5, max_tokens))  # warm-up
            since = time.monotonic()
            run = synthgen(
                "run", "-c", "configs/default.yaml", "-o", str(Path(tmp) / "run"),
                "--set", "backend.engine=endpoint", "--set", f"backend.base_url={proxy.base_url}",
                "--set", f"backend.max_concurrency={concurrency}", "--set", "cache.enabled=false",
                "--set", f"questions.target={args.target}", "--set", f"questions.seed_questions={args.target // 2}",
                log=Path(tmp) / "synthgen.log",
            )  # fmt: skip
            if run.wait() != 0:
                raise SystemExit(f"pipeline failed ({run.returncode}):\n{tail(Path(tmp) / 'synthgen.log')}")
            window, pipeline_tokens, answers = proxy.window(since)
            bodies = [e.body for e in proxy.exchanges if e.started >= since and not e.probe]
            pipeline = pipeline_tokens / window
            print(f"pipeline: {answers} requests, {pipeline_tokens} tokens in {window:.1f} s = {pipeline:.1f} tokens/s")
            seconds, tokens = asyncio.run(replay(proxy.base_url, bodies, concurrency))
            saturated = tokens / seconds
            print(f"replay of the same {len(bodies)} requests, {concurrency} always in flight: {tokens} tokens in {seconds:.1f} s = {saturated:.1f} tokens/s")
            seconds, tokens = asyncio.run(load_test(server.base_url, cfg.backend.model, concurrency, args.load_seconds, max_tokens))
            print(f"reference load test (answer-like prompts): {tokens / seconds:.1f} tokens/s")
    print(f"pipeline/saturated = {pipeline / saturated:.3f}")
    print(f"utilisation: {pipeline / saturated:.2f}")


if __name__ == "__main__":
    main()
