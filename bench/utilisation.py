"""Endpoint utilisation: the pipeline's generated tokens/s over the same endpoint's saturated throughput.

Starts the embedded model server once, behind a counting proxy that records every chat request. The real
pipeline (``synthgen run``, request cache off) runs against it; its rate is its completion tokens over
the time from its first request to its last answer. Then a plain load test replays exactly the requests
the pipeline sent (same prompts, sampling and seeds, so the same tokens) with the in-flight limit always
full: the server's saturated rate for the same work. A second load test of answer-like requests
(``--load-seconds``) is printed for reference.

    .venv/bin/python bench/utilisation.py [--target 16] [--concurrency N] [--load-seconds 20]
    .venv/bin/python bench/utilisation.py --engine vllm [--target 16] [--curve 1,4,8,16,32]

``--engine vllm`` serves the same model with vLLM (configs/models/smollm2-vllm-cpu.yaml, .venv-vllm): the
pipeline runs with the queue-aware adaptive limit, which starts at the model file's max_concurrency; the
bench prints where the limit settled (read from the run summary), the server's throughput curve (a load
test at each in-flight count of ``--curve``), and the replay of the pipeline's requests at the settled limit.

Last line: ``utilisation: <pipeline tokens/s / saturated tokens/s>``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import json

from common import REPO, CountingProxy, embedded_server, load_test, replay, stop_on_sigterm, synthgen, tail


def vllm_server(log_path: Path):
    """The vllm engine's server for the CPU model file, as the pipeline starts it."""
    from generation.config import load_config
    from generation.endpoints.vllm_server import VllmServer

    cfg = load_config(REPO / "configs/default.yaml", ["model=smollm2-vllm-cpu"])
    assert cfg.backend.vllm is not None
    return VllmServer(cfg.backend.vllm, cfg.backend.model, log_path), cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=16, help="questions.target of the pipeline run")
    parser.add_argument("--concurrency", type=int, help="requests in flight (default: the model file's max_concurrency)")
    parser.add_argument("--load-seconds", type=float, default=20)
    parser.add_argument("--engine", choices=["embedded", "vllm"], default="embedded")
    parser.add_argument("--curve", default="1,4,8,16,32", help="vllm: in-flight counts of the throughput curve")
    parser.add_argument("--curve-seconds", type=float, default=20, help="vllm: seconds of load per point of the curve")
    args = parser.parse_args()
    stop_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        vllm = args.engine == "vllm"
        server, cfg = (vllm_server if vllm else embedded_server)(Path(tmp) / "server.log")
        concurrency = args.concurrency or cfg.backend.max_concurrency
        max_tokens = cfg.responses.sampling.max_tokens
        started = time.monotonic()
        with server:
            proxy = CountingProxy(server.base_url).start()
            kind = f"vLLM (ready in {time.monotonic() - started:.0f} s)" if vllm else server.kind
            print(f"server: {kind}; in flight: {concurrency}{' at most (adaptive)' if vllm else ''}; answer max_tokens: {max_tokens}")
            asyncio.run(load_test(proxy.base_url, cfg.backend.model, min(concurrency, 8), 5, max_tokens))  # warm-up
            since = time.monotonic()
            model = ["--set", "model=smollm2-vllm-cpu", "--set", "backend.concurrency.queue_signal=metrics"] if vllm else []
            run = synthgen(
                "run", "-c", "configs/default.yaml", "-o", str(Path(tmp) / "run"), *model,
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
            if vllm:
                limits = json.loads((Path(tmp) / "run" / "run_summary.json").read_text())["usage"]["primary"]["limits"][0]
                print(
                    f"adaptive limit: started at {concurrency}, ranged {limits['lowest']}..{limits['highest']}, settled at "
                    f"{limits['limit']} ({limits['decreases']} cut(s), {limits['increases']} increase(s); peak in flight "
                    f"{limits['peak_in_flight']}; last queue reading {limits['queue']})"
                )
                concurrency = limits["limit"]
                for point in sorted({int(c) for c in args.curve.split(",")} | {concurrency}):
                    seconds, tokens = asyncio.run(load_test(server.base_url, cfg.backend.model, point, args.curve_seconds, max_tokens))
                    mark = "   <- the settled limit" if point == concurrency else ""
                    print(f"throughput curve: {point:>3} in flight: {tokens / seconds:6.1f} tokens/s{mark}")
            seconds, tokens = asyncio.run(replay(proxy.base_url, bodies, concurrency))
            saturated = tokens / seconds
            print(f"replay of the same {len(bodies)} requests, {concurrency} always in flight (the pipeline's {'settled ' if vllm else ''}limit): {tokens} tokens in {seconds:.1f} s = {saturated:.1f} tokens/s")
            if not vllm:  # vllm: the curve above
                seconds, tokens = asyncio.run(load_test(server.base_url, cfg.backend.model, concurrency, args.load_seconds, max_tokens))
                print(f"reference load test (answer-like prompts): {tokens / seconds:.1f} tokens/s")
    print(f"pipeline/saturated = {pipeline / saturated:.3f}")
    print(f"utilisation: {pipeline / saturated:.2f}")


if __name__ == "__main__":
    main()
