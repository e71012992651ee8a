"""A chat client that sends some steps' requests to another client (by ``ChatRequest.purpose``).

The runner takes one client; the ranked pair strategy scores answers with the judge, whose endpoint, client
(log-prob envelopes) and unscrubbed request cache are not the generation model's. :func:`judge_route` opens them
for a shard when one of its steps asks the judge, and :class:`RoutedClient` puts them behind one client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Iterator

from generation.backends.client import ChatRequest, ChatResult, LLMClient
from generation.config import RunConfig


class RoutedClient:
    """``routes[purpose]`` answers requests of that purpose, ``main`` every other; figures and the request cache
    that the runner and the PII scrubber read are the main client's, with each route's usage beside them."""

    def __init__(self, main: LLMClient, routes: Mapping[str, Any]):
        self.main = main
        self.routes = dict(routes)
        self.cache = getattr(main, "cache", None)

    @property
    def capacity(self) -> int:
        return self.main.capacity + sum(client.capacity for client in self.routes.values())

    def cache_key(self, request: ChatRequest) -> str:
        return self.routes.get(request.purpose, self.main).cache_key(request)

    async def check_ready(self) -> None:
        for client in (self.main, *self.routes.values()):
            await client.check_ready()

    async def chat(self, request: ChatRequest) -> ChatResult:
        return await self.routes.get(request.purpose, self.main).chat(request)

    def usage_summary(self) -> dict[str, Any]:
        summary = self.main.usage_summary()
        for purpose, client in self.routes.items():
            summary[purpose] = client.usage_summary().get("primary", {})
        return summary


@contextmanager
def judge_route(cfg: RunConfig, shard_dir: Path, purposes: set[str]) -> Iterator[Any]:
    """When a step of this shard asks the judge (purpose ``ranked_judge``): a factory that wraps the shard's client
    in a :class:`RoutedClient` (the judge's endpoint is started here if its model file says so); else None."""
    if "ranked_judge" not in purposes:
        yield None
        return
    from generation.backends.cache import RequestCache
    from generation.evaluation.judge import JudgeClient, judge_endpoint
    from generation.run.layout import JUDGE_CACHE, JUDGE_SERVER_LOG

    backend = cfg.evaluation.judge.backend
    assert backend is not None  # load_config fills it from evaluation.judge.model
    if cfg.evaluation.judge.max_concurrency:
        backend = backend.model_copy(update={"max_concurrency": cfg.evaluation.judge.max_concurrency})
    cache = RequestCache(shard_dir / JUDGE_CACHE) if cfg.cache.enabled else None
    try:
        with judge_endpoint(backend, shard_dir / JUDGE_SERVER_LOG) as url:

            @asynccontextmanager
            async def routed(client: LLMClient) -> AsyncIterator[RoutedClient]:
                async with AsyncExitStack() as stack:
                    judge = await stack.enter_async_context(JudgeClient(backend, url, cfg.retry, None, cache))
                    yield RoutedClient(client, {"ranked_judge": judge})

            yield routed
    finally:
        if cache is not None:
            cache.close()
