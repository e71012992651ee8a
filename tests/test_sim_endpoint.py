"""bench/sim_endpoint.py, the simulated continuous-batching server that the scale bench and the queue-aware
concurrency tests run against: request-determined replies that pass synthgen's own filters in every domain
pack, FIFO queueing past --max-batch visible in vLLM's metric names, and the OpenAI routes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
from rapidfuzz import fuzz, process

from conftest import REPO
from generation.config import load_config
from generation.preprocess import normalise_question
from generation.steps.questions import build_modification_messages, check_question, parse_question
from generation.steps.responses import build_answer_messages, check_chosen, check_rejected, parse_answer

sys.path.insert(0, str(REPO / "bench"))
import sim_endpoint  # noqa: E402

DOMAINS = ["healthcare", "law", "finance", "engineering"]


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "bench/sim_endpoint.py"), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    word, url = proc.stdout.readline().split()
    assert word == "ready" and url.endswith("/v1")
    return proc, url


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[str]:
    proc, url = start(*getattr(request, "param", ("--latency-mean", "0.01")))
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def post(url: str, body: dict) -> dict:
    data = json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/chat/completions", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


@pytest.mark.parametrize("domain", DOMAINS)
def test_replies_pass_the_domains_own_filters_and_rarely_collide(domain: str):
    """Offline (reply_for is what the server answers with): 600 rewrites of the domain's sample seeds."""
    import csv

    cfg = load_config(REPO / "configs/default.yaml", [f"domain={domain}"])
    seeds = [row["question"] for row in csv.DictReader(open(REPO / f"configs/samples/{domain}.csv", encoding="utf-8"))]
    existing = [normalise_question(s, cfg.preprocess.steps) for s in seeds]
    reasons: Counter[str] = Counter()
    for i in range(600):
        rng = random.Random(i)
        messages = build_modification_messages(seeds[i % len(seeds)], rng.choice(cfg.modifications), cfg.prompts)
        kind, text = sim_endpoint.reply_for(messages, random.Random(f"q{i}"))
        assert kind == "question"
        question, reason = parse_question(text, cfg.questions.filters)
        reason = reason or check_question(question, cfg.questions.filters)  # type: ignore[arg-type]
        assert reason is None, (reason, text)
        final = normalise_question(question, cfg.preprocess.steps)  # type: ignore[arg-type]
        if process.extractOne(final, existing, scorer=fuzz.ratio, score_cutoff=cfg.questions.filters.near_duplicate_ratio):
            reasons["near_duplicate"] += 1
        existing.append(final)
        kinds, answers = [], []
        for template in (cfg.prompts.chosen, cfg.prompts.rejected):
            kind, reply = sim_endpoint.reply_for(build_answer_messages(question, template), random.Random(f"a{i}{len(kinds)}"))  # type: ignore[arg-type]
            kinds.append(kind)
            answers.append(parse_answer(reply, "stop", cfg.responses))
        assert kinds == ["chosen", "rejected"]
        assert check_chosen(answers[0], cfg.responses) is None, answers[0]
        assert check_rejected(answers[1], answers[0], cfg.responses) is None, answers
    # each domain has a few dozen sample seeds, so each seed and modification pair recurs several times; still rare
    assert reasons["near_duplicate"] <= 6, reasons


def test_same_request_same_reply_and_usage(sim: str):
    body = {"model": "any", "messages": [{"role": "user", "content": "Answer this: <question>is flu contagious</question>"}],
            "seed": 7, "temperature": 0.7, "max_tokens": 128}  # fmt: skip
    first, again = post(sim, body), post(sim, body)
    other = post(sim, {**body, "seed": 8})
    assert first["choices"] == again["choices"] and first["choices"][0]["finish_reason"] == "stop"
    assert other["choices"][0]["message"]["content"] != first["choices"][0]["message"]["content"]
    usage = first["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    probe = post(sim, {"model": "any", "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1})
    assert probe["choices"][0]["message"]["content"] == "OK"


def test_routes_and_bad_requests(sim: str):
    root = sim.removesuffix("/v1")
    assert get(f"{root}/health")[0] == 200
    assert json.loads(get(f"{sim}/models")[1])["data"][0]["id"] == "sim"
    with pytest.raises(urllib.error.HTTPError) as error:
        post(sim, {"model": "x", "messages": []})
    assert error.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as error:
        get(f"{root}/nowhere")
    assert error.value.code == 404


@pytest.mark.parametrize("sim", [("--latency-mean", "0.4", "--latency-dist", "fixed", "--max-batch", "4")], indirect=True)
def test_requests_past_max_batch_wait_in_a_fifo_queue_seen_in_metrics(sim: str):
    import aiohttp

    root = sim.removesuffix("/v1")

    async def go() -> tuple[float, str]:
        async with aiohttp.ClientSession() as session:

            async def one(i: int) -> None:
                body = {"model": "x", "messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 8}
                async with session.post(f"{sim}/chat/completions", json=body) as response:
                    assert response.status == 200  # queued, never 429
                    await response.read()

            started = time.monotonic()
            tasks = [asyncio.create_task(one(i)) for i in range(12)]
            await asyncio.sleep(0.2)
            async with session.get(f"{root}/metrics") as response:
                during = await response.text()
            await asyncio.gather(*tasks)
            return time.monotonic() - started, during

    elapsed, during = asyncio.run(go())
    assert metric(during, "vllm:num_requests_running") == 4
    assert metric(during, "vllm:num_requests_waiting") == 8
    assert elapsed >= 1.2 - 0.05  # three batches of 0.4 s
    after = get(f"{root}/metrics")[1].decode()
    assert metric(after, "vllm:num_requests_waiting") == 0
    assert metric(after, "vllm:time_to_first_token_seconds_count") == 12
    assert metric(after, "vllm:time_to_first_token_seconds_sum") > 12 * 0.4  # queue waits count in TTFT
    stats = json.loads(get(f"{root}/stats")[1])
    assert stats["peaks"]["running"] == 4 and stats["peaks"]["waiting"] == 8


def test_latency_is_drawn_per_request_and_reproducible():
    args = sim_endpoint.parse_args(["--latency-mean", "1", "--latency-dist", "lognormal", "--seed", "3"])
    draws = [sim_endpoint.Simulator.draw_latency(_Bare(args), hashlib.sha256(str(i).encode()).digest()) for i in range(2000)]  # type: ignore[arg-type]
    again = [sim_endpoint.Simulator.draw_latency(_Bare(args), hashlib.sha256(str(i).encode()).digest()) for i in range(2000)]  # type: ignore[arg-type]
    assert draws == again
    mean = sum(draws) / len(draws)
    assert 0.9 < mean < 1.1 and min(draws) > 0 and len(set(draws)) > 200


class _Bare:
    """Just the arguments draw_latency reads (no event loop needed)."""

    def __init__(self, args: object):
        self.args = args


def test_scale_seed_sets_are_distinct_and_deterministic():
    import scale

    first = [scale.seed_question(i) for i in range(20000)]
    assert first == [scale.seed_question(i) for i in range(20000)]
    assert len({q.lower() for q in first}) == 20000
    assert all(q.endswith("?") and 5 <= len(q.split()) <= 25 for q in first)


@pytest.mark.parametrize("sim", [("--latency-mean", "0", "--latency-dist", "fixed", "--token-rate", "100")], indirect=True)
def test_token_rate_makes_a_fuller_batch_slower_per_request(sim: str):
    """Service time = completion tokens x requests running / token rate (a crude continuous-batching model)."""
    from concurrent.futures import ThreadPoolExecutor

    def timed(i: int) -> tuple[float, int]:
        started = time.monotonic()
        reply = post(sim, {"model": "x", "messages": [{"role": "user", "content": f"Say something {i}."}], "max_tokens": 64})
        return time.monotonic() - started, reply["usage"]["completion_tokens"]

    alone, tokens = timed(0)
    assert alone >= tokens / 100 * 0.9
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(timed, range(1, 9)))
    slowest, slowest_tokens = max(together)
    assert slowest >= 2 * slowest_tokens / 100  # it started with others running
