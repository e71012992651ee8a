"""Shared parts of the benches: the embedded server, a counting proxy in front of it, and a plain load test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@dataclass
class Exchange:
    started: float
    finished: float
    completion_tokens: int
    probe: bool
    body: bytes = b""


@dataclass
class CountingProxy:
    """An HTTP proxy (aiohttp, in a thread) that forwards chat requests to ``upstream`` and records each one."""

    upstream: str
    exchanges: list[Exchange] = field(default_factory=list)
    received: int = 0
    port: int = 0

    def start(self) -> "CountingProxy":
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(ready)), daemon=True)
        self._thread.start()
        ready.wait(30)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _serve(self, ready: threading.Event) -> None:
        import aiohttp
        from aiohttp import web

        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600), connector=aiohttp.TCPConnector(limit=0))

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            started = time.monotonic()
            probe = False
            if request.method == "POST":
                payload = json.loads(body or b"{}")
                probe = payload.get("max_tokens") == 1  # the client's readiness probe
                self.received += not probe
            base = self.upstream.rstrip("/")
            if request.path.startswith("/v1/"):
                target = base + request.path_qs.removeprefix("/v1")
            else:  # the server's own routes (/metrics, /health) live beside /v1
                target = base.removesuffix("/v1") + request.path_qs
            async with session.request(request.method, target, data=body, headers={"Content-Type": "application/json"}) as upstream:
                data = await upstream.read()
                status = upstream.status
            if request.method == "POST" and status == 200:
                tokens = int((json.loads(data).get("usage") or {}).get("completion_tokens") or 0)
                self.exchanges.append(Exchange(started, time.monotonic(), tokens, probe, body))
            return web.Response(body=data, status=status, content_type="application/json")

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        await asyncio.Event().wait()

    def window(self, since: float = 0.0) -> tuple[float, int, int]:
        """(seconds from the first request's start to the last answer, completion tokens, answers) after ``since``."""
        items = [e for e in self.exchanges if e.started >= since and not e.probe]
        if not items:
            return 0.0, 0, 0
        return max(e.finished for e in items) - min(e.started for e in items), sum(e.completion_tokens for e in items), len(items)


def embedded_server(log_path: Path):
    """The embedded engine's server (llama-server when built, else llama-cpp-python), as the pipeline starts it."""
    from generation.config import load_config
    from generation.endpoints.embedded import EmbeddedServer

    cfg = load_config(REPO / "configs/default.yaml")
    assert cfg.backend.embedded is not None
    return EmbeddedServer(cfg.backend.embedded, cfg.backend.model, log_path), cfg


async def load_test(base_url: str, model: str, concurrency: int, seconds: float, max_tokens: int) -> tuple[float, int]:
    """Keep ``concurrency`` answer-like requests in flight for ``seconds``; returns (wall seconds, completion tokens)."""
    import aiohttp

    topics = ["asthma", "gout", "eczema", "migraine", "anaemia", "shingles", "psoriasis", "angina"]
    tokens = 0
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal tokens
        while time.monotonic() < deadline:
            i = next(counter)
            payload = {
                "model": model, "max_tokens": max_tokens, "temperature": 0.7, "seed": i,
                "messages": [{"role": "user", "content": f"Answer in a short paragraph: what are common treatments for {topics[i % 8]}? ({i})"}],
            }  # fmt: skip
            async with session.post(f"{base_url}/chat/completions", json=payload) as response:
                body = await response.json(content_type=None)
                tokens += int(body["usage"]["completion_tokens"])

    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return time.monotonic() - started, tokens


async def replay(base_url: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    """Send recorded chat requests again with ``concurrency`` always in flight; returns (wall seconds, tokens)."""
    import aiohttp

    queue = list(reversed(bodies))
    tokens = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal tokens
        while queue:
            body = queue.pop()
            async with session.post(f"{base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}) as response:
                tokens += int((await response.json(content_type=None))["usage"]["completion_tokens"])

    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return time.monotonic() - started, tokens


def synthgen(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the real CLI in a subprocess, its output going to ``log`` (``env``: extra environment variables)."""
    handle = open(log, "ab")  # noqa: SIM115 - the child holds it; closed when the bench exits
    environment = {**os.environ, **env} if env else None
    return subprocess.Popen([sys.executable, "-m", "generation", *args], cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, env=environment)


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.is_file() else ""


def stop_on_sigterm() -> None:
    """SIGTERM ends the bench through SystemExit, so the model server it started is stopped too."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
