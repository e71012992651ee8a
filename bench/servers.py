"""llama-cpp-python's server vs llama.cpp's llama-server on the same GGUF, side by side, interleaved.

Both servers run at once on loopback ports (an idle server costs nothing); the load tests alternate between
them (1 and 4 requests in flight, answer-like prompts with the answer stage's max_tokens) for ``--rounds``
rounds, so background load on a shared machine hits both alike. llama-server must be built first
(``make llama-server``).

    .venv/bin/python bench/servers.py [--seconds 20] [--rounds 2] [--threads 2]

Last line: ``servers: <llama-server tokens/s / llama-cpp-python tokens/s at 4 in flight>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from common import REPO, load_test, stop_on_sigterm


def main() -> None:
    from generation.config import load_config
    from generation.endpoints.embedded import EmbeddedServer, llama_server_binary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    stop_on_sigterm()
    if llama_server_binary() is None:
        raise SystemExit("llama-server is not built: run `make llama-server` first")
    cfg = load_config(REPO / "configs/default.yaml")
    assert cfg.backend.embedded is not None
    model, max_tokens = cfg.backend.model, cfg.responses.sampling.max_tokens
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        kinds = ("llama-cpp-python", "llama-server")
        servers = {
            kind: EmbeddedServer(cfg.backend.embedded.model_copy(update={"server": kind, "n_threads": args.threads}), model, Path(tmp) / f"{kind}.log")
            for kind in kinds
        }  # fmt: skip
        with servers["llama-cpp-python"], servers["llama-server"]:
            for kind in kinds:  # warm-up
                asyncio.run(load_test(servers[kind].base_url, model, 1, 3, max_tokens))
            for round_ in range(args.rounds):
                for in_flight in (1, 4):
                    for kind in kinds if round_ % 2 == 0 else kinds[::-1]:
                        seconds, tokens = asyncio.run(load_test(servers[kind].base_url, model, in_flight, args.seconds, max_tokens))
                        results.setdefault((kind, in_flight), []).append(tokens / seconds)
                        print(f"round {round_ + 1}: {kind:<17} {in_flight} in flight: {tokens / seconds:6.1f} tokens/s", flush=True)
    print(f"threads {args.threads}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; mean tokens/s over {args.rounds} rounds:")
    mean = {key: sum(values) / len(values) for key, values in results.items()}
    for in_flight in (1, 4):
        a, b = mean[("llama-cpp-python", in_flight)], mean[("llama-server", in_flight)]
        print(f"  {in_flight} in flight: llama-cpp-python {a:6.1f}, llama-server {b:6.1f}, ratio {b / a:.2f}")
    print(f"servers: {mean[('llama-server', 4)] / mean[('llama-cpp-python', 4)]:.2f}")


if __name__ == "__main__":
    main()
