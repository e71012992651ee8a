"""On-disk cache of finished chat requests, so a rerun after a crash redoes only what was in flight.

With a PII scrubber (``privacy.pii.enabled``, the default) a reply's text is scrubbed before it is
stored, and what was masked is stored beside it (``masked_counts``), so no PII is kept in clear here and a
resumed run reports the same masking figures as the first.
"""

from __future__ import annotations

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
    """A small SQLite key/value store; each finished request is committed at once."""

    def __init__(self, path: Path, scrubber: "Scrubber | None" = None):
        self.path = path
        self.scrubber = scrubber
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
        row = self._db.execute("SELECT value FROM requests WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except json.JSONDecodeError:
            log.warning("request cache entry %s is corrupt; it will be regenerated", key[:12])
            return None
        return value if isinstance(value, dict) else None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result (its text already scrubbed when the cache has a scrubber), or None."""
        value = self._read(key)
        if value is not None:
            value.pop(MASKED_FIELD, None)
        return value

    def masked_counts(self, key: str) -> dict[str, int]:
        """What the scrubber masked in the stored text, per kind (empty if nothing or no entry)."""
        value = self._read(key)
        counts = value.get(MASKED_FIELD) if value is not None else None
        return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store a result; with a scrubber its ``text`` is scrubbed first and the counts kept beside it."""
        if self.scrubber is not None and isinstance(value.get("text"), str):
            text, counts = self.scrubber.scrub(value["text"])
            value = {**value, "text": text, MASKED_FIELD: dict(counts)}
        self._db.execute(
            "INSERT OR REPLACE INTO requests (key, value) VALUES (?, ?)", (key, json.dumps(value, ensure_ascii=False))
        )
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def close(self) -> None:
        self._db.close()
