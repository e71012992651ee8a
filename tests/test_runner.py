"""The step contract and the streaming runner on a scripted in-process client (no model, no HTTP).

The client's replies depend only on the request while its latencies are random, so every test can also
check that what the runner emits does not depend on timing or on the in-flight limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter

import pytest

from generation.backends.client import ChatRequest, ChatResult
from generation.config import SamplingConfig
from generation.pii import Scrubber
from generation.run.runner import Runner, run_rows
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row, RowStep

SAMPLING = SamplingConfig(temperature=0.0, max_tokens=16)


class ScriptedClient:
    """Replies from ``script(user message, seed)``; random latency; records requests and the peak in flight."""

    def __init__(self, script, capacity: int = 4, latency: float = 0.002, seed: int | None = None):
        self.script = script
        self._capacity = capacity
        self.latency = latency
        self.rng = random.Random(seed)
        self.requests: list[tuple[str, int | None]] = []
        self.in_flight = 0
        self.peak = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    async def chat(self, request: ChatRequest) -> ChatResult:
        user = request.messages[-1][1]
        self.requests.append((user, request.seed))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.rng.random() * self.latency)
        finally:
            self.in_flight -= 1
        text = self.script(user, request.seed)
        return ChatResult(text, "stop", len(user), len(text), "primary", "scripted", "local")


def roll(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts``."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16) / 16**8


class Answer(LLMStep):
    """Like the chosen step: one answer per row, rejected when the script says "short"."""

    name = "answer"
    stage = "responses"
    needs = ("q",)
    outputs = ("answer",)
    reason_prefix = "answer_"
    sampling = SAMPLING
    max_attempts = 3

    def messages(self, row, attempt, sample):
        return [{"role": "user", "content": f"answer {row['q']}"}]

    def seed(self, row, attempt, sample):
        return attempt

    def parse(self, reply: Reply, row: Row) -> Fields | Reject:
        return Reject("too_short") if reply.text == "short" else {"answer": reply.text}


class Wrong(LLMStep):
    """Like the rejected step: asked at once, compared with the answer once it is there."""

    name = "wrong"
    stage = "responses"
    needs = ("q",)
    check_needs = ("answer",)
    outputs = ("wrong",)
    reason_prefix = "wrong_"
    sampling = SAMPLING
    max_attempts = 3

    def messages(self, row, attempt, sample):
        return [{"role": "user", "content": f"wrong {row['q']}"}]

    def seed(self, row, attempt, sample):
        return 100 + attempt

    def parse(self, reply, row):
        return Reject("joke") if "kidding" in reply.text else {"wrong": reply.text}

    def check(self, fields, row):
        return Reject("restates") if fields["wrong"] == row["answer"] else None


def answer_script(user: str, seed: int | None) -> str:
    kind, q = user.split(" ", 1)
    r = roll(user, seed)
    if kind == "answer":
        return "short" if r < 0.3 else f"fact about {q}"
    if r < 0.2:
        return "just kidding"
    if r < 0.45:
        return f"fact about {q}"  # the canonical answer: restates it when the answer was this text too
    return f"myth {int(r * 1000)} about {q}"


def outcome(rows: list[Row]) -> list[tuple]:
    return [(row.index, row.failed, sorted(row.fields.items()), [d.as_row() for d in row.dropped]) for row in rows]


def run(steps, script, rows, capacity=4, latency=0.002, seed=None, **kwargs):
    client = ScriptedClient(script, capacity, latency, seed)
    finished, runner = asyncio.run(run_rows(steps, client, rows, **kwargs))
    return finished, runner, client


def test_answers_are_checked_against_each_other_and_do_not_depend_on_timing():
    rows = [{"q": f"question {i}"} for i in range(120)]
    reference, runner, client = run([Answer(), Wrong()], answer_script, rows, capacity=1, input_fields=("q",))
    assert [row.index for row in reference] == list(range(120))
    stats = runner.stats_dict()
    for capacity in (3, 64):
        for seed in (1, 2):
            finished, other, client = run([Answer(), Wrong()], answer_script, rows, capacity=capacity, seed=seed, input_fields=("q",))
            assert outcome(finished) == outcome(reference)
            assert other.stats_dict() == stats
            assert client.peak <= capacity
    assert client.peak == 64  # the window was kept full
    # every failure path happened: retries after "short", "joke" and "restates", and some rows gave up
    assert set(stats["answer"]["rejected_candidates"]) == {"answer_too_short"}
    assert set(stats["wrong"]["rejected_candidates"]) == {"wrong_joke", "wrong_restates"}
    kept = [row for row in reference if row.failed is None]
    assert kept and len(kept) < len(reference)
    assert all(row["wrong"] != row["answer"] for row in kept)
    # the figures add up: a row is in or out, each request is counted once per recorded attempt
    assert stats["answer"]["rows_in"] == 120 and stats["answer"]["rows_out"] + sum(stats["answer"]["gave_up"].values()) == 120
    assert stats["wrong"]["rows_in"] == stats["answer"]["rows_out"]
    recorded = Counter(d["stage"] for row in reference for d in outcome([row])[0][3])
    assert recorded["responses"] == sum(stats["answer"]["rejected_candidates"].values()) + sum(stats["wrong"]["rejected_candidates"].values())


def test_a_row_whose_first_step_gives_up_records_nothing_of_the_steps_after_it():
    def script(user, seed):
        return "short" if user.startswith("answer") else "just kidding"

    finished, runner, client = run([Answer(), Wrong()], script, [{"q": "x"}], capacity=8, input_fields=("q",))
    (row,) = finished
    assert row.failed == "answer" and row.failed_reason == "too_short"
    assert [(d.reason, d.attempt) for d in row.dropped] == [("answer_too_short", 1), ("answer_too_short", 2), ("answer_too_short", 3)]
    stats = runner.stats_dict()
    assert stats["wrong"] == {**stats["wrong"], "rows_in": 0, "requests": 0, "rejected_candidates": {}}
    assert runner.engine["requests_sent"] >= 4  # the wrong answer was asked at once, and its replies were not needed


def test_retries_go_out_at_once_not_in_rounds():
    """Row 0 needs three attempts; the other rows finish meanwhile instead of waiting for a next round."""

    def script(user, seed):
        return "short" if user == "answer slow" and seed < 2 else f"fact {user}"

    rows = [{"q": "slow"}] + [{"q": f"fast {i}"} for i in range(30)]
    client = ScriptedClient(script, capacity=4, latency=0.0)
    order: list[str] = []

    async def go():
        runner = Runner([Answer()], client, input_fields=("q",))
        await runner.run(rows, lambda row: order.append(row["q"]))

    asyncio.run(go())
    sends = [user for user, _ in client.requests]
    assert sends.count("answer slow") == 3
    assert sends.index("answer slow", sends.index("answer slow") + 1) < 8  # the retry went out with the first requests
    assert order == [row["q"] for row in rows]  # emitted in input order all the same


class NearDuplicateLike(LLMStep):
    """An ordered step: a candidate is refused when an earlier row kept the same text (decided in row order)."""

    name = "pick"
    needs = ("n",)
    outputs = ("text",)
    ordered = True
    sampling = SAMPLING
    max_attempts = 4

    def __init__(self):
        self.kept: list[str] = []

    def messages(self, row, attempt, sample):
        return [{"role": "user", "content": f"pick {row['n']}"}]

    def seed(self, row, attempt, sample):
        return attempt

    def parse(self, reply, row):
        return {"text": reply.text}

    def commit(self, fields, row):
        if fields["text"] in self.kept:
            return Reject("duplicate", f"similar to: {fields['text']}")
        self.kept.append(fields["text"])
        return None


def test_ordered_commits_happen_in_row_order_whatever_the_latency():
    def script(user, seed):
        return f"text {int(roll(user, seed) * 6)}"  # few distinct texts: many duplicates and retries

    rows = [{"n": i} for i in range(12)]
    first, _, _ = run([NearDuplicateLike()], script, rows, capacity=1, input_fields=("n",))
    for seed in range(4):
        step = NearDuplicateLike()
        again, runner, _ = run([step], script, rows, capacity=16, latency=0.01, seed=seed, input_fields=("n",))
        assert outcome(again) == outcome(first)
        assert step.kept == [row["text"] for row in again if row.failed is None]
    assert any(row.dropped for row in first) and any(row.failed for row in first)


class BestOfThree(LLMStep):
    """k samples per row and a selection: the longest and the shortest reply, if they differ enough."""

    name = "ranked"
    needs = ("q",)
    outputs = ("best", "worst")
    samples = 3
    sampling = SAMPLING
    max_attempts = 2

    def messages(self, row, attempt, sample):
        return [{"role": "user", "content": f"sample {row['q']}"}]

    def seed(self, row, attempt, sample):
        return 10 * sample + attempt

    def parse(self, reply, row):
        return Reject("empty") if not reply.text else {"text": reply.text, "seed": reply.seed}

    def combine(self, row, samples):
        texts = sorted((s["text"] for s in samples if s is not None), key=lambda t: (len(t), t))
        if len(texts) < 2 or len(texts[-1]) - len(texts[0]) < 3:
            return Reject("no_margin")
        return {"best": texts[-1], "worst": texts[0]}


def test_k_samples_per_row_and_a_selection_over_them():
    def script(user, seed):
        r = roll(user, seed)
        return "" if r < 0.2 else "x" * int(2 + 10 * r)

    rows = [{"q": i} for i in range(40)]
    first, runner, client = run([BestOfThree()], script, rows, capacity=2, input_fields=("q",))
    again, _, _ = run([BestOfThree()], script, rows, capacity=32, seed=3, input_fields=("q",))
    assert outcome(first) == outcome(again)
    stats = runner.stats_dict()["ranked"]
    assert stats["requests"] >= 3 * 40 and stats["rejected_candidates"].get("empty")
    assert stats["gave_up"].get("no_margin") and stats["rows_out"]
    for row in first:
        if row.failed is None:
            assert len(row["best"]) - len(row["worst"]) >= 3


class ShortFilter(RowStep):
    name = "length"
    needs = ("answer",)
    outputs = ("length",)

    def process(self, row):
        return Reject("too_long") if len(row["answer"]) > 14 else {"length": len(row["answer"])}


class Numbered(RowStep):
    """An ordered plain step: numbers the kept rows in row order."""

    name = "number"
    needs = ("length",)
    outputs = ("number",)
    ordered = True

    def __init__(self):
        self.next = 0

    def process(self, row):
        self.next += 1
        return {"number": self.next}


def test_plain_row_steps_filter_and_number_rows_in_order():
    def script(user, seed):
        return f"fact {user[-2:]}" if roll(user) < 0.5 else f"a longer fact about {user}"

    rows = [{"q": f"q{i:02d}"} for i in range(30)]
    finished, runner, _ = run([Answer(), ShortFilter(), Numbered()], script, rows, capacity=8, latency=0.005, input_fields=("q",))
    kept = [row for row in finished if row.failed is None]
    assert [row["number"] for row in kept] == list(range(1, len(kept) + 1))
    dropped = [row for row in finished if row.failed == "length"]
    assert dropped and all(row.dropped[-1].reason == "too_long" for row in dropped)
    assert runner.stats_dict()["length"]["gave_up"] == {"too_long": len(dropped)}


def test_replies_are_scrubbed_unless_the_step_opts_out():
    def script(user, seed):
        return "write to jane.doe@example.com for facts"

    class Raw(Answer):
        name = "raw"
        scrub_replies = False

    scrubber = Scrubber(kinds=["EMAIL"])
    finished, runner, _ = run([Answer()], script, [{"q": "a"}], scrubber=scrubber, input_fields=("q",))
    assert "@" not in finished[0]["answer"] and runner.stats_dict()["answer"]["pii_masked"] == {"EMAIL": 1}
    finished, runner, _ = run([Raw()], script, [{"q": "a"}], scrubber=scrubber, input_fields=("q",))
    assert "jane.doe@example.com" in finished[0]["answer"] and runner.stats_dict()["raw"]["pii_masked"] == {}


def test_declarations_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match="needs \\['answer'\\]"):
        Runner([Wrong()], ScriptedClient(answer_script), input_fields=("q",))
    with pytest.raises(ValueError, match="distinct"):
        Runner([Answer(), Answer()], ScriptedClient(answer_script), input_fields=("q",))


def test_input_is_read_lazily_and_the_window_stays_bounded():
    pulled = 0

    def rows():
        nonlocal pulled
        for i in range(2000):
            pulled += 1
            yield {"q": f"q{i}"}

    seen_pulled: list[int] = []
    client = ScriptedClient(lambda user, seed: "fact", capacity=8, latency=0.0)

    async def go():
        runner = Runner([Answer()], client, input_fields=("q",), window_rows=50)
        await runner.run(rows(), lambda row: seen_pulled.append(pulled - row.index))
        return runner

    runner = asyncio.run(go())
    assert len(seen_pulled) == 2000
    assert max(seen_pulled) <= 50 and runner.engine["peak_window"] <= 50


def test_a_failing_request_stops_the_run_and_cancels_what_is_in_flight():
    class Broken(ScriptedClient):
        async def chat(self, request):
            if request.messages[-1][1] == "answer q3":
                raise RuntimeError("endpoint exploded")
            return await super().chat(request)

    client = Broken(lambda user, seed: "fact", capacity=4, latency=0.05)
    emitted: list[int] = []

    async def go():
        await Runner([Answer()], client, input_fields=("q",)).run([{"q": f"q{i}"} for i in range(50)], lambda row: emitted.append(row.index))

    with pytest.raises(RuntimeError, match="exploded"):
        asyncio.run(go())
    assert emitted == list(range(len(emitted))) and len(emitted) < 50


def test_the_collector_is_tuned_while_rows_run_and_restored_after_even_on_failure():
    import gc

    seen: list[tuple[tuple[int, int, int], int]] = []

    class Watching(ScriptedClient):
        async def chat(self, request):
            seen.append((gc.get_threshold(), gc.get_freeze_count()))
            if request.messages[-1][1] == "answer q7":
                raise RuntimeError("endpoint exploded")
            return await super().chat(request)

    before = gc.get_threshold()
    client = Watching(lambda user, seed: "fact")
    with pytest.raises(RuntimeError, match="exploded"):
        asyncio.run(run_rows([Answer()], client, [{"q": f"q{i}"} for i in range(10)], input_fields=("q",)))
    assert seen and all(threshold[0] > before[0] and frozen > 0 for threshold, frozen in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


@pytest.mark.parametrize("latency", [0.0, 0.002])
def test_replies_that_arrive_while_a_batch_yields_are_not_lost(latency: float):
    """The runner lets the event loop turn inside a long batch of replies; replies arriving meanwhile must be
    handled without waiting for another one (the last ones would hang the run), and nothing else changes."""
    rows = [{"q": f"q{i}"} for i in range(60)]
    expected, _, _ = run([Answer(), Wrong()], answer_script, rows, capacity=16, input_fields=("q",))

    class Yielding(Runner):
        yield_every = 1

    async def go():
        finished: list[Row] = []
        client = ScriptedClient(answer_script, 16, latency, seed=3)
        await asyncio.wait_for(Yielding([Answer(), Wrong()], client, input_fields=("q",)).run(rows, finished.append), 30)
        return finished

    assert outcome(asyncio.run(go())) == outcome(expected)
