"""The one streaming runner: rows flow through a declared list of steps, with the model kept busy.

- **Window.** Rows are read lazily from an iterator and admitted while fewer requests are ready than the
  client can take (``client.capacity``, read before every dispatch) and fewer than ``window_rows`` rows are
  open. Ready requests wait in a heap ordered by row, so the oldest rows finish first and the window stays
  small; every request in flight is one task, no more.
- **Pipelining.** A step starts for a row as soon as the fields it ``needs`` are there: an accepted
  question immediately queues its chosen and rejected answers. A step whose ``check`` needs another step's
  fields sends its requests at once and checks its candidates when those fields arrive.
- **Retries at once.** A Reject (from ``parse``, ``check`` or an ordered ``commit``) queues the next
  attempt immediately.
- **Determinism.** Ordered ``commit`` calls happen in row order; rows are emitted in row order; stats and
  dropped rows of a row are folded in when the row is emitted. What a row records follows the steps'
  declared order: when a step gives up, the steps after it are abandoned (their replies ignored, their
  rejected candidates not recorded), while the steps before it finish. Given the same replies, the emitted
  rows, their dropped candidates and the step stats are the same whatever the timing or concurrency;
  only ``engine`` figures (requests whose replies were not needed, time) depend on timing.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from generation.backends.client import ChatRequest, ChatResult
from generation.pii import Scrubber, scrub_reply
from generation.steps.base import Fields, LLMStep, Reject, Reply, Row, RowStep, Step

log = logging.getLogger(__name__)

WAITING, RUNNING, DONE, GAVE_UP, SKIPPED = range(5)


class ChatClient(Protocol):
    """What the runner needs from :class:`generation.backends.client.LLMClient`."""

    @property
    def capacity(self) -> int: ...

    async def chat(self, request: ChatRequest) -> ChatResult: ...


_collector_depth = 0


@contextmanager
def few_collections(threshold: int = 20_000) -> Iterator[None]:
    """Run with Python's cyclic garbage collector seldom and only over new objects.

    Every request in flight keeps dozens of objects alive (task, futures, aiohttp's request and response),
    so with the default thresholds the collector runs full passes over a heap that grows with the in-flight
    limit: the client's CPU per request grew from 0.18 ms at 64 in flight to 0.40 ms at 5,000
    (``bench/overhead.py``). The objects alive at the start (imports, config, seeds) are frozen out of the
    collector's passes and young collections run every ``threshold`` allocations instead of 700; cycles are
    still collected. Restored on exit (nested uses: by the outermost)."""
    global _collector_depth
    _collector_depth += 1
    if _collector_depth > 1:
        try:
            yield
        finally:
            _collector_depth -= 1
        return
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, 50, 100)
    try:
        yield
    finally:
        _collector_depth -= 1
        gc.set_threshold(*before)
        gc.unfreeze()


class RunnerStalled(RuntimeError):
    """A row can never finish (a step needs fields nothing produces): a bug in the step list."""


@dataclass
class StepStats:
    """Per-step figures, folded in row order (so they do not depend on timing)."""

    rows_in: int = 0
    rows_out: int = 0
    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    gave_up: Counter[str] = field(default_factory=Counter)  # rows the step dropped, by the last reason
    rejected_candidates: Counter[str] = field(default_factory=Counter)  # every rejected reply, by reason
    pii_masked: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in, "rows_out": self.rows_out, "requests": self.requests, "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "gave_up": dict(sorted(self.gave_up.items())), "rejected_candidates": dict(sorted(self.rejected_candidates.items())),
            "pii_masked": dict(sorted(self.pii_masked.items())),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepStats:
        counters = {name: Counter(data.get(name) or {}) for name in ("gave_up", "rejected_candidates", "pii_masked")}
        numbers = {name: int(data.get(name) or 0) for name in ("rows_in", "rows_out", "requests", "cache_hits", "prompt_tokens", "completion_tokens")}
        return cls(**numbers, **counters)


class _StepState:
    """One step's progress on one row."""

    __slots__ = ("status", "attempts", "accepted", "open_samples", "parked", "records", "rejected", "last_reject",
                 "requests", "cache_hits", "prompt_tokens", "completion_tokens", "masked")  # fmt: skip

    def __init__(self, status: int, samples: int = 1):
        self.status = status
        self.attempts = [0] * samples
        self.accepted: list[Fields | None] = [None] * samples
        self.open_samples = samples
        self.parked: dict[int, tuple[Reply, Fields]] = {}  # waiting for check_needs
        self.records: list[tuple[int, int, Any]] = []  # (sample, attempt, DroppedRow)
        self.rejected: Counter[str] | None = None
        self.last_reject: Reject | None = None
        self.requests = self.cache_hits = self.prompt_tokens = self.completion_tokens = 0
        self.masked: Counter[str] | None = None


class _RowState:
    __slots__ = ("steps", "failed_at", "finished", "ordered_wait")

    def __init__(self, n_steps: int):
        self.steps: list[_StepState] = []
        self.failed_at = n_steps  # index of the earliest step that gave up (n_steps: none)
        self.finished = False
        self.ordered_wait: dict[int, tuple[Reply, Fields]] = {}  # step index -> candidate waiting for its commit turn


class Runner:
    """Run ``steps`` over rows; see the module docstring. One runner per pass over a stream of rows."""

    yield_every = 64  # replies handled between two turns of the event loop

    def __init__(
        self,
        steps: Sequence[Step],
        client: ChatClient,
        *,
        scrubber: Scrubber | None = None,
        input_fields: Iterable[str] = (),
        window_rows: int | None = None,
        progress: str | None = None,
        total: int | None = None,
        initial: int = 0,
        stats: dict[str, dict[str, Any]] | None = None,
    ):
        self.steps = list(steps)
        self.client = client
        self.scrubber = scrubber
        self.window_rows = window_rows
        self.progress_label, self.total, self.initial = progress, total, initial
        self._check_declarations(set(input_fields))
        self.stats = {step.name: StepStats.from_dict((stats or {}).get(step.name, {})) for step in self.steps}
        self.engine: Counter[str] = Counter()  # timing-dependent figures
        self._ordered = [i for i, step in enumerate(self.steps) if step.ordered]
        self._heads = {i: 0 for i in self._ordered}
        self._window: deque[Row] = deque()
        self._base = 0  # index of the first row in the window
        self._next_index = 0
        self._heap: list[tuple[int, int, Row, int, int, int]] = []
        self._seq = 0
        self._in_flight = 0
        self._done: list[asyncio.Task[ChatResult]] = []
        self._jobs: dict[asyncio.Task[ChatResult], tuple[Row, int, int, int, ChatRequest]] = {}
        self._wake: asyncio.Future[None] | None = None
        self._exhausted = False
        self._announced: set[int] = set()

    def _check_declarations(self, available: set[str]) -> None:
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"steps need distinct, non-empty names: {names}")
        for step in self.steps:
            needs = set(step.needs) | set(getattr(step, "check_needs", ()))
            missing = needs - available
            if missing:
                raise ValueError(f"step {step.name}: needs {sorted(missing)}, which neither the input nor an earlier step provides")
            if isinstance(step, LLMStep) and step.ordered and step.samples != 1:
                raise ValueError(f"step {step.name}: an ordered step takes one sample per row")
            available |= set(step.outputs)

    # ------------------------------------------------------------------------------------------ running

    async def run(self, rows: Iterable[Row] | Iterable[Fields], emit: Callable[[Row], None]) -> None:
        """Run every row through the steps; ``emit`` gets each finished row, in input order."""
        from tqdm import tqdm

        self._emit = emit
        self._input: Iterator[Any] = iter(rows)
        loop = asyncio.get_running_loop()
        bar = tqdm(total=self.total, initial=self.initial, desc=self.progress_label, unit="row", disable=self.progress_label is None)
        self._bar = bar
        started = time.monotonic()
        lag_watch = loop.create_task(self._watch_loop_lag())
        try:
            with few_collections():
                await self._loop(loop)
        finally:
            lag_watch.cancel()
            bar.close()
            self.engine["elapsed_ms"] += int(1000 * (time.monotonic() - started))
            pending = list(self._jobs)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self._jobs.clear()

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            self._fill()
            self._drain_ordered()
            self._emit_ready()
            self._dispatch()
            if not self._in_flight:
                if self._heap or (not self._exhausted and len(self._window) < self._max_window()):
                    continue
                if not self._window and self._exhausted:
                    break
                self._stalled()
            if not self._done:  # replies that arrived while a batch yielded (below) are handled without waiting
                self._wake = loop.create_future()
                await self._wake
            done, self._done = self._done, []
            for count, task in enumerate(done, 1):
                self._in_flight -= 1
                row, index, sample, attempt, request = self._jobs.pop(task)
                self._on_reply(row, index, sample, attempt, request, task.result())
                if count % self.yield_every == 0 and count < len(done):
                    # A long batch of replies would keep every freed slot empty until its end: send what is
                    # ready and let the loop run the sends (replies arriving meanwhile wait for the next batch).
                    self._dispatch()
                    await asyncio.sleep(0)

    async def _watch_loop_lag(self, tick_s: float = 0.05) -> None:
        """Measure how late the event loop wakes a 50 ms timer: work on the loop (parsing, checks, the
        near-duplicate index, writing) delays every dispatch by as much. Kept in ``engine``: the largest lag,
        the total lag and the number of stalls over 100 ms."""
        loop = asyncio.get_running_loop()
        engine = self.engine
        while True:
            before = loop.time()
            await asyncio.sleep(tick_s)
            lag_ms = int(1000 * (loop.time() - before - tick_s))
            if lag_ms > 0:
                engine["loop_lag_total_ms"] += lag_ms
                if lag_ms > engine["loop_lag_max_ms"]:
                    engine["loop_lag_max_ms"] = lag_ms
                if lag_ms >= 100:
                    engine["loop_stalls_100ms"] += 1

    def _max_window(self) -> int:
        return self.window_rows or max(256, 8 * self.client.capacity)

    def _fill(self) -> None:
        """Admit input rows while the ready queue is short of what the client can take."""
        if self._exhausted:
            return
        target = self.client.capacity
        limit = self._max_window()
        while len(self._heap) < target and len(self._window) < limit:
            item = next(self._input, None)
            if item is None:
                self._exhausted = True
                return
            row = item if isinstance(item, Row) else Row(item)
            row.index = self._next_index
            self._next_index += 1
            row._state = _RowState(len(self.steps))
            row._state.steps = [
                _StepState(WAITING if step.applies(row) else SKIPPED, getattr(step, "samples", 1)) for step in self.steps
            ]
            self._window.append(row)
            self.engine["peak_window"] = max(self.engine["peak_window"], len(self._window))
            self._advance(row)

    def _dispatch(self) -> None:
        target = self.client.capacity
        loop = asyncio.get_running_loop()
        while self._in_flight < target and self._heap:
            _, _, row, index, sample, attempt = heapq.heappop(self._heap)
            state = row._state
            if state is None or index > state.failed_at or state.steps[index].status != RUNNING:
                continue  # the row gave up (or finished) meanwhile
            step = self.steps[index]
            assert isinstance(step, LLMStep)
            seed = step.seed(row, attempt, sample)
            request = ChatRequest.build(step.messages(row, attempt, sample), step.sampling, seed, step.name)
            task = loop.create_task(self.client.chat(request))
            self._jobs[task] = (row, index, sample, attempt, request)
            task.add_done_callback(self._on_done)
            self._in_flight += 1
            self.engine["requests_sent"] += 1

    def _on_done(self, task: asyncio.Task[ChatResult]) -> None:
        self._done.append(task)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _queue(self, row: Row, index: int, sample: int, attempt: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (row.index, self._seq, row, index, sample, attempt))

    def _stalled(self) -> None:
        row = self._window[0]
        waiting = [self.steps[i].name for i, st in enumerate(row._state.steps) if st.status in (WAITING, RUNNING)]
        raise RunnerStalled(f"row {row.index} cannot finish: step(s) {waiting} wait for fields no step produces ({sorted(row.fields)})")

    # -------------------------------------------------------------------------------------- row logic

    def _advance(self, row: Row) -> None:
        """Start every step whose needs are met; finish the row when nothing is left for it."""
        state = row._state
        progressed = True
        while progressed:
            progressed = False
            for index, step in enumerate(self.steps):
                if index > state.failed_at:
                    break
                st = state.steps[index]
                if st.status != WAITING or not all(name in row.fields for name in step.needs):
                    continue
                st.status = RUNNING
                progressed = True
                if isinstance(step, LLMStep):
                    for sample in range(step.samples):
                        self._queue(row, index, sample, 0)
                elif not step.ordered:
                    self._resolve_row_step(row, index)
        if not state.finished and all(
            st.status in (DONE, GAVE_UP, SKIPPED) for st in state.steps[: min(state.failed_at + 1, len(self.steps))]
        ):
            state.finished = True

    def _resolve_row_step(self, row: Row, index: int) -> None:
        step = self.steps[index]
        assert isinstance(step, RowStep)
        outcome = step.process(row)
        if isinstance(outcome, Reject):
            st = row._state.steps[index]
            st.records.append((0, 0, step.dropped(row, outcome)))
            self._give_up(row, index, outcome)
        else:
            self._accept_step(row, index, outcome)

    def _on_reply(self, row: Row, index: int, sample: int, attempt: int, request: ChatRequest, result: ChatResult) -> None:
        state = row._state
        if state is None or index > state.failed_at or state.steps[index].status != RUNNING:
            self.engine["replies_not_needed"] += 1
            return
        st = state.steps[index]
        step = self.steps[index]
        assert isinstance(step, LLMStep)
        st.requests += 1
        st.cache_hits += result.cached
        st.prompt_tokens += result.prompt_tokens
        st.completion_tokens += result.completion_tokens
        text = result.text
        if step.scrub_replies and self.scrubber is not None:
            text, counts = scrub_reply(self.scrubber, self.client, request, result)  # before anything keeps or writes it
            if counts:
                if st.masked is None:
                    st.masked = Counter()
                st.masked.update(counts)
        reply = Reply(text, result, attempt, sample, request.seed)
        self._judge(row, index, reply, step.parse(reply, row))

    def _judge(self, row: Row, index: int, reply: Reply, outcome: Fields | Reject) -> None:
        """Run a parsed candidate through check (when its fields are there) and the ordered commit."""
        step = self.steps[index]
        assert isinstance(step, LLMStep)
        if isinstance(outcome, Reject):
            return self._reject(row, index, reply, outcome)
        if step.check_needs:
            if not all(name in row.fields for name in step.check_needs):
                row._state.steps[index].parked[reply.sample] = (reply, outcome)
                return
            rejected = step.check(outcome, row)
            if rejected is not None:
                return self._reject(row, index, reply, rejected)
        if step.ordered:
            row._state.ordered_wait[index] = (reply, outcome)
            return
        self._accept_sample(row, index, reply.sample, outcome)

    def _reject(self, row: Row, index: int, reply: Reply, reject: Reject) -> None:
        step = self.steps[index]
        assert isinstance(step, LLMStep)
        st = row._state.steps[index]
        st.records.append((reply.sample, reply.attempt, step.dropped(row, reply, reject)))
        if st.rejected is None:
            st.rejected = Counter()
        st.rejected[step.reason_prefix + reject.reason] += 1
        st.attempts[reply.sample] = reply.attempt + 1
        if reply.attempt + 1 < step.max_attempts:
            self._queue(row, index, reply.sample, reply.attempt + 1)
            return
        st.last_reject = reject
        st.open_samples -= 1
        if not st.open_samples:
            self._finish_llm_step(row, index)

    def _accept_sample(self, row: Row, index: int, sample: int, fields: Fields) -> None:
        st = row._state.steps[index]
        st.accepted[sample] = fields
        st.open_samples -= 1
        if not st.open_samples:
            self._finish_llm_step(row, index)

    def _finish_llm_step(self, row: Row, index: int) -> None:
        step = self.steps[index]
        assert isinstance(step, LLMStep)
        st = row._state.steps[index]
        if step.samples == 1:
            outcome: Fields | Reject = st.accepted[0] if st.accepted[0] is not None else (st.last_reject or Reject("no_reply"))
        elif any(fields is not None for fields in st.accepted):
            outcome = step.combine(row, st.accepted)
        else:
            outcome = st.last_reject or Reject("no_sample")
        if isinstance(outcome, Reject):
            self._give_up(row, index, outcome)
        else:
            self._accept_step(row, index, outcome)

    def _accept_step(self, row: Row, index: int, fields: Fields) -> None:
        state = row._state
        state.steps[index].status = DONE
        if index not in self._announced:
            self._announced.add(index)
            log.info("step %s: first row accepted", self.steps[index].name)
        row.fields.update(fields)
        for other, st in enumerate(state.steps):  # candidates that waited for these fields
            if st.parked and other <= state.failed_at and all(name in row.fields for name in self.steps[other].check_needs):  # type: ignore[attr-defined]
                parked, st.parked = st.parked, {}
                for sample in sorted(parked):
                    if st.status == RUNNING:
                        self._judge(row, other, *parked[sample])
        self._advance(row)

    def _give_up(self, row: Row, index: int, reject: Reject) -> None:
        state = row._state
        state.steps[index].status = GAVE_UP
        state.steps[index].last_reject = reject
        state.failed_at = min(state.failed_at, index)
        self._advance(row)

    def _drain_ordered(self) -> None:
        """Commit waiting candidates of ordered steps in row order, as far as the rows allow."""
        for index in self._ordered:
            step = self.steps[index]
            head = max(self._heads[index], self._base)
            while head < self._next_index:
                row = self._window[head - self._base]
                state = row._state
                st = state.steps[index]
                if index > state.failed_at or st.status in (DONE, GAVE_UP, SKIPPED):
                    head += 1
                    continue
                if isinstance(step, RowStep):
                    if st.status != RUNNING:
                        break
                    self._resolve_row_step(row, index)
                    head += 1
                    continue
                waiting = state.ordered_wait.pop(index, None)
                if waiting is None:
                    break
                reply, fields = waiting
                rejected = step.commit(fields, row)  # type: ignore[attr-defined]
                if rejected is None:
                    self._accept_sample(row, index, reply.sample, fields)
                else:
                    self._reject(row, index, reply, rejected)
                if st.status == RUNNING:
                    break  # its retry is queued; later rows wait for it
                head += 1
            self._heads[index] = head

    def _emit_ready(self) -> None:
        window = self._window
        while window and window[0]._state.finished:
            row = window.popleft()
            self._base += 1
            self._fold(row)
            self._emit(row)
            self._bar.update(1)

    def _fold(self, row: Row) -> None:
        """Add a finished row's figures to the step stats and set its ``failed`` and ``dropped``."""
        state = row._state
        records = []
        requests = cached = 0
        for index, st in enumerate(state.steps):
            if index > state.failed_at or st.status == SKIPPED or st.status == WAITING:
                continue
            stats = self.stats[self.steps[index].name]
            stats.rows_in += 1
            requests += st.requests
            cached += st.cache_hits
            stats.requests += st.requests
            stats.cache_hits += st.cache_hits
            stats.prompt_tokens += st.prompt_tokens
            stats.completion_tokens += st.completion_tokens
            if st.rejected:
                stats.rejected_candidates.update(st.rejected)
            if st.masked:
                stats.pii_masked.update(st.masked)
            if st.status == DONE:
                stats.rows_out += 1
            elif st.status == GAVE_UP:
                reason = st.last_reject.reason if st.last_reject else "gave_up"
                stats.gave_up[getattr(self.steps[index], "reason_prefix", "") + reason] += 1
                row.failed, row.failed_reason = self.steps[index].name, reason
            records.extend(record for _, _, record in sorted(st.records, key=lambda item: (item[0], item[1])))
        row.dropped = records
        if requests and requests == cached:  # everything this row needed came from the request cache
            self.engine["rows_from_cache"] += 1
        row._state = None

    # ----------------------------------------------------------------------------------------- figures

    def stats_dict(self) -> dict[str, dict[str, Any]]:
        """Per-step stats (deterministic) plus each step's own figures (``extra_stats``, e.g. timings)."""
        return {step.name: {**self.stats[step.name].as_dict(), **step.extra_stats()} for step in self.steps}


async def run_rows(
    steps: Sequence[Step], client: ChatClient, rows: Iterable[Fields], *, scrubber: Scrubber | None = None,
    input_fields: Iterable[str] = (), progress: str | None = None, total: int | None = None,
) -> tuple[list[Row], Runner]:  # fmt: skip
    """Run a small, in-memory set of rows through ``steps``; returns the finished rows in input order."""
    finished: list[Row] = []
    runner = Runner(steps, client, scrubber=scrubber, input_fields=input_fields, progress=progress, total=total)
    await runner.run(rows, finished.append)
    return finished, runner
