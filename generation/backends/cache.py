"""On-disk cache of finished chat requests, so a rerun after a crash redoes only what was in flight.

Writes are grouped: inside an event loop a finished request is committed within ``flush_interval_s``
(5 ms) together with the others finished meanwhile (one transaction, WAL journal, ``synchronous=NORMAL``).
:meth:`RequestCache.store` (what the client uses) returns only once its result is committed, so a request
counts as in flight until it is on disk and a crash loses nothing but what was in flight; outside an event
loop every ``put`` commits at once. ``close`` commits what is left. A failed grouped commit is raised in
the ``store`` calls waiting for it (after a plain ``put``: by the next call).

With a PII scrubber (``privacy.pii.enabled``, the default) a reply's text is scrubbed before it is
stored, and what was masked is stored beside it (``masked_counts``), so no PII is kept in clear here and a
resumed run reports the same masking figures as the first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from generation.pii import Scrubber

log = logging.getLogger(__name__)
MASKED_FIELD = "pii_masked"


def request_key(payload: dict[str, Any]) -> str:
    """Stable hash of a request (model, messages, sampling parameters, seed)."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    """A small SQLite key/value store of finished requests, committed in small groups (see the module doc)."""

    def __init__(self, path: Path, scrubber: "Scrubber | None" = None, flush_interval_s: float = 0.005, flush_rows: int = 1024):
        self.path = path
        self.scrubber = scrubber
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self._pending: dict[str, str] = {}  # key -> JSON value, not yet committed
        self._flush_handle: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None  # a failed timed commit, raised by the next call
        self._waiters: list[asyncio.Future[None]] = []  # store() calls waiting for the next commit
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path)
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            self._setup(db)
            return db
        except sqlite3.DatabaseError as exc:
            # A damaged cache is set aside and rebuilt: it only saves work, it is never trusted blindly.
            broken = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            self.path.replace(broken)
            log.warning("request cache %s is unreadable (%s); moved to %s and starting a new one", self.path, exc, broken)
            db = sqlite3.connect(self.path)
            self._setup(db)
            return db

    @staticmethod
    def _setup(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.commit()

    def _read(self, key: str) -> dict[str, Any] | None:
        self._raise_failed_flush()
        blob = self._pending.get(key)
        if blob is None:
            row = self._db.execute("SELECT value FROM requests WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            blob = row[0]
        try:
            value = json.loads(blob)
        except json.JSONDecodeError:
            log.warning("request cache entry %s is corrupt; it will be regenerated", key[:12])
            return None
        return value if isinstance(value, dict) else None

    def lookup(self, key: str) -> tuple[dict[str, Any], dict[str, int]] | None:
        """The stored result (its text already scrubbed when the cache has a scrubber) and what the scrubber
        masked in it, per kind; None when there is no entry."""
        value = self._read(key)
        if value is None:
            return None
        counts = value.pop(MASKED_FIELD, None)
        return value, ({str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {})

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result (its text already scrubbed when the cache has a scrubber), or None."""
        entry = self.lookup(key)
        return entry[0] if entry is not None else None

    def masked_counts(self, key: str) -> dict[str, int]:
        """What the scrubber masked in the stored text, per kind (empty if nothing or no entry)."""
        entry = self.lookup(key)
        return entry[1] if entry is not None else {}

    def put(self, key: str, value: dict[str, Any]) -> tuple[str, dict[str, int]] | None:
        """Store a result; with a scrubber its ``text`` is scrubbed first and the counts kept beside it.

        Returns the text as stored and what was masked in it (None without a scrubber), so that a caller
        need not scrub the same reply again."""
        stored = None
        if self.scrubber is not None and isinstance(value.get("text"), str):
            text, counts = self.scrubber.scrub(value["text"])
            masked = dict(counts)
            value = {**value, "text": text, MASKED_FIELD: masked}
            stored = (text, masked)
        self._raise_failed_flush()
        self._pending[key] = json.dumps(value, ensure_ascii=False)
        if len(self._pending) >= self.flush_rows or self.flush_interval_s <= 0:
            self.flush()
        elif self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop: nothing would run a timer, so commit now
                self.flush()
                return stored
            self._flush_handle = loop.call_later(self.flush_interval_s, self._timed_flush)
        return stored

    async def store(self, key: str, value: dict[str, Any]) -> tuple[str, dict[str, int]] | None:
        """:meth:`put`, returning once the result is committed (with the others of its group)."""
        stored = self.put(key, value)
        if key in self._pending:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        return stored

    def flush(self) -> None:
        """Commit every pending result in one transaction."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        waiters, self._waiters = self._waiters, []
        try:
            if self._pending:
                with self._db:  # one transaction; rolled back if it fails
                    self._db.executemany("INSERT OR REPLACE INTO requests (key, value) VALUES (?, ?)", self._pending.items())
                self._pending.clear()
        except BaseException as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _timed_flush(self) -> None:
        self._flush_handle = None
        waiting = bool(self._waiters)
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - the waiting store() calls got it; otherwise raised by the next call
            if not waiting:
                self._error = exc

    def _raise_failed_flush(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __len__(self) -> int:
        self.flush()
        return self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def close(self) -> None:
        try:
            self._raise_failed_flush()
            self.flush()
        finally:
            self._db.close()
