"""Chunk checkpoints: a shard's files grow row by row and are committed in chunks.

A shard appends its finished rows (in row order) to ``questions.csv``, ``pairs.jsonl`` and ``dropped.csv``.
Every ``chunk_rows`` rows or ``chunk_seconds`` seconds, whichever comes first, the files are flushed and
fsynced and then the chunk marker ``chunks.json`` is replaced atomically: the rows consumed so far, each
file's size and row count, and the state needed to go on (step stats, counters, usage). A run killed at any
moment resumes after its last complete chunk: the files are cut back to the sizes the marker records
(whatever was appended after it is dropped) and the rows after it are redone, their finished requests
coming from the request cache. The marker carries the config fingerprint; another config starts afresh.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from generation.errors import OutputWriteError
from generation.io import write_json
from generation.run.layout import SHARD_CHUNKS, SHARD_DROPPED, SHARD_PAIRS, SHARD_QUESTIONS
from generation.steps.common import DroppedRow

log = logging.getLogger(__name__)

SHARD_QUESTION_FIELDS = ("question", "source_question", "modification", "origin", "qid")


@dataclass
class ChunkState:
    """What the last complete chunk recorded."""

    chunks: int = 0
    rows_consumed: int = 0
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> {"bytes": n, "rows": k}
    state: dict[str, Any] = field(default_factory=dict)  # the shard's own figures (stats, counters, usage)


class _Appender:
    """One shard file opened for appending; ``size()`` is its length after a flush."""

    def __init__(self, path: Path, header: list[str] | None, resume_bytes: int | None):
        self.path = path
        self.rows = 0
        try:
            if resume_bytes is not None:
                self.handle: IO[str] = open(path, "r+", encoding="utf-8", newline="")
                self.handle.truncate(resume_bytes)
                self.handle.seek(0, os.SEEK_END)
            else:
                self.handle = open(path, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.writer = csv.writer(self.handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\n") if header is not None else None
        if header is not None and resume_bytes is None:
            self.writer.writerow(header)  # type: ignore[union-attr]

    def csv_row(self, values: list[Any]) -> None:
        self.writer.writerow(values)  # type: ignore[union-attr]
        self.rows += 1

    def json_line(self, record: Any) -> None:
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.rows += 1

    def sync(self) -> int:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return os.fstat(self.handle.fileno()).st_size

    def close(self) -> None:
        self.handle.close()


class ShardWriter:
    """A shard's output files, appended row by row and committed in chunks (see the module docstring)."""

    def __init__(self, shard_dir: Path, fingerprint: str, chunk_rows: int, chunk_seconds: float):
        self.dir = shard_dir
        self.fingerprint = fingerprint
        self.chunk_rows = chunk_rows
        self.chunk_seconds = chunk_seconds
        self.marker = shard_dir / SHARD_CHUNKS
        self.chunks = 0
        self.rows_consumed = 0
        self._since_commit = 0
        self._last_commit = time.monotonic()
        self._files: dict[str, _Appender] = {}
        self.snapshot: Any = None  # () -> dict: the state to store with each chunk

    def open(self) -> ChunkState | None:
        """Open the files; after a complete chunk of the same config, cut them back to it and return its state."""
        resumed = self._read_marker()
        sizes = {name: info["bytes"] for name, info in resumed.files.items()} if resumed else {}
        headers = {SHARD_QUESTIONS: list(SHARD_QUESTION_FIELDS), SHARD_PAIRS: None, SHARD_DROPPED: list(DroppedRow.FIELDS)}
        try:
            for name, header in headers.items():
                self._files[name] = _Appender(self.dir / name, header, sizes.get(name))
        except OutputWriteError:
            self.close()
            raise
        if resumed is not None:
            for name, info in resumed.files.items():
                self._files[name].rows = info["rows"]
            self.chunks, self.rows_consumed = resumed.chunks, resumed.rows_consumed
        return resumed

    def _read_marker(self) -> ChunkState | None:
        if not self.marker.is_file():
            return None
        try:
            data = json.loads(self.marker.read_text(encoding="utf-8"))
            files = data["files"]
            if data.get("fingerprint") != self.fingerprint:
                log.info("%s: made with another config; the shard starts afresh", self.marker)
                return None
            for name in (SHARD_QUESTIONS, SHARD_PAIRS, SHARD_DROPPED):
                size = int(files[name]["bytes"])
                if (self.dir / name).stat().st_size < size:
                    raise ValueError(f"{name} is shorter than the chunk marker says")
            return ChunkState(int(data["chunks"]), int(data["rows_consumed"]), files, data.get("state") or {})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s is unusable (%s); the shard starts afresh (finished requests still come from the cache)", self.marker, exc)
            return None

    def write(self, question: Mapping[str, Any] | None, pair: Mapping[str, Any] | None, dropped: list[DroppedRow]) -> None:
        """Append one finished row's records; commits a chunk when one is due."""
        if question is not None:
            self._files[SHARD_QUESTIONS].csv_row([question.get(name, "") for name in SHARD_QUESTION_FIELDS])
        if pair is not None:
            self._files[SHARD_PAIRS].json_line(pair)
        for record in dropped:
            self._files[SHARD_DROPPED].csv_row([getattr(record, name) for name in DroppedRow.FIELDS])
        self.rows_consumed += 1
        self._since_commit += 1
        if self._since_commit >= self.chunk_rows or time.monotonic() - self._last_commit >= self.chunk_seconds:
            self.commit()

    def commit(self) -> None:
        """Make everything written so far a complete chunk (a no-op when nothing was written since the last one)."""
        if not self._since_commit:
            return
        try:
            files = {name: {"bytes": appender.sync(), "rows": appender.rows} for name, appender in self._files.items()}
        except OSError as exc:
            raise OutputWriteError(f"cannot write {self.dir}: {exc.strerror or exc}") from None
        self.chunks += 1
        write_json(self.marker, {
            "fingerprint": self.fingerprint, "chunks": self.chunks, "rows_consumed": self.rows_consumed, "files": files,
            "state": self.snapshot() if self.snapshot is not None else {},
            "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })  # fmt: skip
        self._since_commit = 0
        self._last_commit = time.monotonic()

    def rows(self, name: str) -> int:
        return self._files[name].rows

    def close(self) -> None:
        for appender in self._files.values():
            appender.close()

    def finish(self) -> None:
        """Close the files after a last flush (the shard's completion marker is written by the caller)."""
        for appender in self._files.values():
            appender.sync()
        self.close()

    def discard_marker(self) -> None:
        self.marker.unlink(missing_ok=True)
