"""File I/O at the edges: atomic (and streaming) writers for CSV/JSONL/JSON/Parquet, streaming readers."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from generation.errors import InputDataError, OutputWriteError

# Cells can hold whole answers; the csv module's default limit (128 KiB) is too small for a 1 MB cell.
csv.field_size_limit(16 * 1024 * 1024)

_UMASK = os.umask(0)
os.umask(_UMASK)


def _write_error(path: Path, exc: OSError) -> OutputWriteError:
    """One line for a failed write (disk full, permission denied...); the previous file is untouched."""
    reason = exc.strerror or str(exc)
    return OutputWriteError(f"cannot write {path}: {reason} (errno {exc.errno}); the previous version, if any, is unchanged")


def _temporary_beside(path: Path) -> tuple[int, Path]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    return fd, Path(tmp_name)


@contextmanager
def _removed_on_failure(tmp: Path, path: Path) -> Iterator[None]:
    """Delete the temporary file if the write fails; an ``OSError`` becomes a one-line error naming ``path``."""
    try:
        yield
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    """Write to a temporary file beside ``path`` and rename it into place only when complete.

    A failed write (``OSError``: disk full, file size limit, permissions) becomes a one-line
    :class:`OutputWriteError` naming ``path``; the temporary file is removed and ``path`` is unchanged.
    """
    fd, tmp = _temporary_beside(path)
    with _removed_on_failure(tmp, path):
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; published files get the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a library to write to; rename it into place on success."""
    fd, tmp = _temporary_beside(path)
    os.close(fd)
    with _removed_on_failure(tmp, path):
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)


# Cells starting with these characters are read as formulas by spreadsheet programs (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def guard_formula(value: Any) -> Any:
    """Spreadsheet-safe form of one cell: text that a spreadsheet would run as a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_csv(path: Path, fieldnames: Iterable[str], rows: Iterable[Mapping[str, Any]], formula_guard: bool = False) -> int:
    """Atomically write a UTF-8 CSV (RFC 4180 quoting: commas, quotes and newlines survive); returns rows.

    Cells are written verbatim by default (training data must not change). ``formula_guard`` prefixes
    ``'`` to cells starting with ``= + - @``, tab or carriage return, so that a spreadsheet program shows
    them as text instead of running them (OWASP "CSV injection"); use it for files meant for spreadsheets.
    """
    count = 0
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames), quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: guard_formula(value) for key, value in row.items()} if formula_guard else row)
            count += 1
    return count


def write_jsonl(path: Path, records: Iterable[Any]) -> int:
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


def write_parquet(path: Path, records: Iterable[Mapping[str, Any]], features: Any, batch_rows: int = 10_000) -> int:
    """Atomically write records as Parquet with the given ``datasets.Features`` (kept in the file's schema
    metadata, as ``datasets`` writes it), streaming: at most ``batch_rows`` records in memory; returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = features.arrow_schema
    names = list(features)
    count = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        batch: list[Mapping[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_rows:
                writer.write_table(pa.Table.from_pylist([{n: r[n] for n in names} for r in batch], schema=schema))
                count += len(batch)
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist([{n: r[n] for n in names} for r in batch], schema=schema))
            count += len(batch)
    return count


def iter_jsonl_objects(path: Path, handle: IO[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a UTF-8 JSONL file, streaming; bad lines are one-line errors.
    ``handle``: an open text stream to read instead of opening ``path`` (``path`` then only names it)."""
    try:
        with open(path, encoding="utf-8") if handle is None else contextlib.nullcontext(handle) as stream:
            for line_number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputDataError(f"{path}: line {line_number}: invalid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise InputDataError(f"{path}: line {line_number}: expected a JSON object")
                yield line_number, record
    except UnicodeDecodeError as exc:
        raise InputDataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def read_jsonl_objects(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a UTF-8 JSONL file; bad lines are one-line errors."""
    return list(iter_jsonl_objects(path))


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a file the program wrote itself (a summary, a plan); {} when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


def iter_csv_rows(path: Path, required: Iterable[str], handle: IO[str] | None = None) -> Iterator[dict[str, str]]:
    """Stream a UTF-8 CSV as dicts; a missing file/column, bad encoding or ragged row is a one-line error.
    ``handle``: an open text stream to read instead of opening ``path`` (``path`` then only names it)."""
    if handle is None and not path.is_file():
        raise InputDataError(f"{path}: file not found")
    required = list(required)
    try:
        with open(path, encoding="utf-8-sig", newline="") if handle is None else contextlib.nullcontext(handle) as stream:
            reader = csv.reader(stream)
            header = next(reader, None)
            if header is None:
                raise InputDataError(f"{path}: file is empty")
            missing = [name for name in required if name not in header]
            if missing:
                raise InputDataError(f"{path}: missing column(s) {missing}; columns are {header}")
            for line_number, values in enumerate(reader, start=2):
                if not values:
                    continue
                if len(values) != len(header):
                    raise InputDataError(
                        f"{path}: row {line_number - 2} (line {reader.line_num}) has {len(values)} fields, expected {len(header)}"
                    )
                yield dict(zip(header, values))
    except UnicodeDecodeError as exc:
        raise InputDataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise InputDataError(f"{path}: malformed CSV: {exc}") from None


def read_csv_rows(path: Path, required: Iterable[str], allow_empty: bool = False) -> list[dict[str, str]]:
    """Read a UTF-8 CSV into dicts; a missing file/column, bad encoding or ragged row is a one-line error."""
    rows = list(iter_csv_rows(path, required))
    if not rows and not allow_empty:
        raise InputDataError(f"{path}: no data rows")
    return rows


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def guard_csv_file(path: Path) -> int:
    """Rewrite a CSV in place with :func:`guard_formula` applied to every cell (idempotent, streaming); returns rows."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fieldnames = list(reader.fieldnames or [])
        return write_csv(path, fieldnames, reader, formula_guard=True)
