"""A deterministic OpenAI-compatible test endpoint with random latency (not a model stand-in).

Every reply depends only on the request (messages, seed and sampling parameters), while each request's
latency is drawn at random, so completion order changes from run to run but the content never does. The
replies are varied and mostly valid for the healthcare pack's prompts, with a share of faults that
exercise every retry path: replies that are not one question, near-duplicate questions, answers that are
too short, rejected answers that correct themselves or restate the chosen one, cut-off answers.

It runs an aiohttp server on a loopback port in a background thread (its own event loop), so it can take
hundreds of requests in flight. ``received`` counts requests by body, so tests can see what was re-sent.
Usable from tests (``with DeterministicEndpoint() as ep: ep.base_url``) and as a process:
``python tests/deterministic_endpoint.py --latency 0.05`` prints ``ready <url>``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter

TEMPLATES = (
    "what are the early signs of {topic} in {group}?",
    "how is {topic} usually treated in {group}?",
    "can {topic} be prevented with {habit}?",
    "how long does recovery from {topic} take for {group}?",
    "is {topic} more common in {group} than in others?",
    "what tests confirm {topic} in {group}?",
    "does {habit} make {topic} worse?",
    "which specialist treats {topic} in {group}?",
    "what complications can {topic} cause in {group}?",
    "how does {habit} affect the risk of {topic}?",
    "when should {group} see a doctor about {topic}?",
    "what home remedies help with {topic} besides {habit}?",
)
GROUPS = ("children", "teenagers", "older adults", "pregnant women", "athletes", "smokers", "people with diabetes",
          "night shift workers", "office workers", "vegetarians", "new parents", "people over sixty")  # fmt: skip
HABITS = ("regular exercise", "a low salt diet", "drinking more water", "quitting smoking", "better sleep", "yoga",
          "intermittent fasting", "vitamin d supplements", "daily walks", "less caffeine", "stress management")  # fmt: skip
FACTS = ("doctors usually recommend rest and fluids", "symptoms often improve within two weeks", "a blood test can confirm it",
         "early treatment lowers the risk of complications", "regular check ups help to catch it early",
         "medication is only needed in severe cases", "it is not contagious between adults")  # fmt: skip
WRONG = ("it is caused by eating cold food at night", "drinking vinegar cures it within a day", "it only affects people with blue eyes",
         "antibiotics from the pharmacy shelf always clear it", "sleeping with socks on makes it spread", "it is cured by humming")  # fmt: skip
STOP = {"what", "is", "are", "the", "a", "an", "of", "in", "for", "how", "to", "do", "does", "can", "and", "with", "my", "i", "you"}
_QUESTION = re.compile(r"<question>(.*?)</question>", re.DOTALL)


def _topic(question: str) -> str:
    words = [w for w in re.findall(r"[a-z]+", question.lower()) if w not in STOP]
    return " ".join(words[-2:]) or "this condition"


def _sentences(rng: random.Random, pool: tuple[str, ...], topic: str, count: int) -> str:
    return " ".join(f"For {topic}, {rng.choice(pool)}." for _ in range(count))


def reply_for(body: dict) -> tuple[str, str]:
    """(text, finish_reason) for a chat request: a pure function of the request."""
    key = json.dumps(
        [body.get("messages"), body.get("seed"), body.get("temperature"), body.get("top_p"), body.get("max_tokens")], sort_keys=True
    )
    rng = random.Random(hashlib.sha256(key.encode("utf-8")).digest())
    messages = body.get("messages") or [{}]
    prompt = " ".join(str(m.get("content", "")) for m in messages)
    match = _QUESTION.search(prompt)
    question = match.group(1).strip() if match else prompt
    topic = _topic(question)
    roll = rng.random()
    lowered = prompt.lower()
    if "new question" in lowered:  # the modify-question prompt
        if roll < 0.04:
            return "Sure! Here is one: what causes it? And how long does it last?", "stop"
        if roll < 0.07:
            return "This is a great question about health.", "stop"
        if roll < 0.12:  # the same question for every slot of this seed: near-duplicates
            return f"what are the early signs of {topic} in children?", "stop"
        text = rng.choice(TEMPLATES).format(topic=topic, group=rng.choice(GROUPS), habit=rng.choice(HABITS))
        return (f"New question: {text}" if roll > 0.9 else text), "stop"
    canonical = _sentences(random.Random(topic), FACTS, topic, 2)
    if "incorrect" in lowered:  # the rejected-answer prompt
        if roll < 0.08:
            return _sentences(rng, WRONG, topic, 1) + " Just kidding, that is not true.", "stop"
        if roll < 0.15:
            return canonical, "stop"
        return _sentences(rng, WRONG, topic, rng.randint(2, 3)), ("length" if roll > 0.95 else "stop")
    if "answer" in lowered:  # the chosen-answer prompt
        if roll < 0.06:
            return "Yes.", "stop"
        if roll < 0.5:
            return canonical, "stop"
        return _sentences(rng, FACTS, topic, rng.randint(2, 3)), "stop"
    return "OK.", "stop"


class DeterministicEndpoint:
    """The endpoint in a background thread; ``latency`` is the maximum of a uniform random delay in seconds."""

    def __init__(self, latency: float = 0.0, port: int = 0):
        self.latency = latency
        self.port = port
        self.received: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def total(self) -> int:
        return sum(self.received.values())

    def resent(self) -> int:
        """Requests received more than once (same body)."""
        return sum(count - 1 for count in self.received.values() if count > 1)

    async def _serve(self) -> None:
        from aiohttp import web

        async def chat(request: web.Request) -> web.Response:
            raw = await request.read()
            body = json.loads(raw or b"{}")
            if body.get("max_tokens") != 1:  # the client's readiness probe is not counted
                self.received[hashlib.sha256(raw).hexdigest()] += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                if self.latency:
                    await asyncio.sleep(random.uniform(0, self.latency))
                text, finish = reply_for(body)
            finally:
                self.in_flight -= 1
            payload = {
                "id": "det", "object": "chat.completion", "created": 0, "model": body.get("model", "det"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {"prompt_tokens": len(json.dumps(body.get("messages"))) // 4, "completion_tokens": len(text) // 4,
                          "total_tokens": 0},
            }  # fmt: skip
            return web.json_response(payload)

        async def models(request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": "det"}]})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        app.router.add_get("/health", models)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> "DeterministicEndpoint":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("deterministic endpoint did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="maximum random delay per request, seconds")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with DeterministicEndpoint(args.latency, args.port) as endpoint:
        print(f"ready {endpoint.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
