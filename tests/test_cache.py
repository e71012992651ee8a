"""The request cache's grouped commits: what is visible when, what a crash can lose, and failed commits."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from generation.backends.cache import RequestCache

VALUE = {"text": "An answer.", "finish_reason": "stop", "prompt_tokens": 3, "completion_tokens": 2}


def committed_keys(path: Path) -> set[str]:
    """The keys another connection (another process after a crash) can read."""
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT key FROM requests")}


def test_outside_an_event_loop_every_put_is_committed_at_once(tmp_path: Path):
    cache = RequestCache(tmp_path / "c.sqlite")
    cache.put("a", VALUE)
    assert committed_keys(tmp_path / "c.sqlite") == {"a"}
    cache.close()


def test_inside_an_event_loop_puts_are_readable_at_once_and_committed_within_the_interval(tmp_path: Path):
    path = tmp_path / "c.sqlite"

    async def go() -> tuple[set[str], set[str]]:
        cache = RequestCache(path, flush_interval_s=0.05)
        for key in ("a", "b", "c"):
            cache.put(key, VALUE)
        assert cache.get("b") == VALUE  # pending results answer at once
        before = committed_keys(path)
        await asyncio.sleep(0.2)
        after = committed_keys(path)
        cache.put("d", VALUE)
        cache.close()  # commits what is left
        return before, after

    before, after = asyncio.run(go())
    assert before == set() and after == {"a", "b", "c"}
    assert committed_keys(path) == {"a", "b", "c", "d"}
    reopened = RequestCache(path)
    assert len(reopened) == 4 and reopened.get("d") == VALUE
    reopened.close()


def test_a_full_group_is_committed_without_waiting(tmp_path: Path):
    path = tmp_path / "c.sqlite"

    async def go() -> set[str]:
        cache = RequestCache(path, flush_interval_s=60, flush_rows=10)
        for i in range(25):
            cache.put(f"k{i}", VALUE)
        seen = committed_keys(path)
        cache.close()
        return seen

    assert len(asyncio.run(go())) == 20


def test_sigkill_loses_only_the_results_of_the_last_interval(tmp_path: Path):
    path = tmp_path / "c.sqlite"
    script = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from generation.backends.cache import RequestCache

        async def main():
            cache = RequestCache(__import__("pathlib").Path({str(path)!r}), flush_interval_s=0.05)
            for i in range(100):
                cache.put(f"old{{i}}", {{"text": "x"}})
                await asyncio.sleep(0)
            await asyncio.sleep(0.3)  # longer than the interval: these are on disk
            for i in range(5):
                cache.put(f"new{{i}}", {{"text": "y"}})
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    old, new = {f"old{i}" for i in range(100)}, {f"new{i}" for i in range(5)}
    assert old <= committed_keys(path) <= old | new


def test_a_failed_timed_commit_is_raised_by_the_next_call(tmp_path: Path):
    async def go() -> None:
        cache = RequestCache(tmp_path / "c.sqlite", flush_interval_s=0.01)
        cache.put("a", VALUE)
        cache._db.close()  # the next commit fails for real (sqlite3.ProgrammingError)
        await asyncio.sleep(0.1)
        with pytest.raises(sqlite3.Error):
            cache.put("b", VALUE)

    asyncio.run(go())


def test_store_returns_only_once_its_group_is_committed(tmp_path: Path):
    """The client awaits store(): a request counts as in flight until its result is on disk, so a crash after it
    returned never sends the request again; results finished meanwhile share the commit."""
    path = tmp_path / "c.sqlite"

    async def go() -> tuple[set[str], set[str]]:
        cache = RequestCache(path, flush_interval_s=0.05)
        first = asyncio.ensure_future(cache.store("a", VALUE))
        await asyncio.sleep(0.01)
        seen_while_waiting = committed_keys(path) if not first.done() else {"done too early"}
        await asyncio.gather(first, cache.store("b", VALUE))
        committed = committed_keys(path)
        cache.close()
        return seen_while_waiting, committed

    seen_while_waiting, committed = asyncio.run(go())
    assert seen_while_waiting == set() and committed == {"a", "b"}


def test_a_failed_group_commit_fails_the_store_calls_waiting_for_it(tmp_path: Path):
    path = tmp_path / "c.sqlite"

    async def go() -> BaseException | None:
        cache = RequestCache(path, flush_interval_s=0.01)
        cache._db.close()  # any commit now fails, like a full disk
        try:
            await cache.store("a", VALUE)
        except sqlite3.Error as exc:
            return exc
        return None

    error = asyncio.run(go())
    assert isinstance(error, sqlite3.ProgrammingError)
