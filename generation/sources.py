"""Loading seed questions with Hugging Face ``datasets``."""

from __future__ import annotations

import codecs
import logging
from pathlib import Path

from generation.config import DatasetConfig
from generation.errors import InputDataError

log = logging.getLogger(__name__)


def _describe(cfg: DatasetConfig) -> str:
    parts = [cfg.path]
    if cfg.name:
        parts.append(f"subset {cfg.name}")
    if cfg.data_files:
        files = cfg.data_files if isinstance(cfg.data_files, str) else ", ".join(cfg.data_files)
        parts.append(f"files {files}")
    parts.append(f"split {cfg.split}")
    return " / ".join(parts)


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


TEXT_SUFFIXES = {".csv", ".tsv", ".json", ".jsonl", ".txt"}


def check_utf8(path: Path) -> None:
    """Stream-decode a local text file so bad bytes get a precise error before ``datasets`` sees them."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise InputDataError(f"{path}: not valid UTF-8 (byte {offset + exc.start}: {exc.reason})") from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise InputDataError(f"{path}: not valid UTF-8 (truncated character at the end: {exc.reason})") from None


def load_questions(cfg: DatasetConfig) -> list[str | None]:
    """Load the configured split and return the question column, in dataset order."""
    import datasets  # imported lazily: it is slow to import and not needed by most commands

    datasets.disable_progress_bars()
    files = [cfg.data_files] if isinstance(cfg.data_files, str) else (cfg.data_files or [])
    for file in files:
        if "://" in file or any(ch in file for ch in "*?["):
            continue
        if not Path(file).exists():
            raise InputDataError(f"{file}: dataset file not found (dataset.data_files)")
        if Path(file).suffix.lower() in TEXT_SUFFIXES:
            check_utf8(Path(file))
    try:
        dataset = datasets.load_dataset(
            cfg.path, cfg.name, split=cfg.split, data_files=cfg.data_files, revision=cfg.revision
        )
    except Exception as exc:  # datasets raises many types (network, parse, missing split); report one line
        cause = _root_cause(exc)
        if isinstance(cause, UnicodeDecodeError):
            raise InputDataError(f"{_describe(cfg)}: file is not valid UTF-8 ({cause.reason} at byte {cause.start})") from None
        raise InputDataError(f"could not load dataset {_describe(cfg)}: {_one_line(cause)}") from None
    if cfg.column not in dataset.column_names:
        raise InputDataError(
            f"{_describe(cfg)}: no column {cfg.column!r} (dataset.column); columns are {dataset.column_names}"
        )
    if len(dataset) == 0:
        raise InputDataError(f"{_describe(cfg)}: the dataset is empty")
    values = dataset[cfg.column]
    for index, value in enumerate(values):
        if value is not None and not isinstance(value, str):
            raise InputDataError(
                f"{_describe(cfg)}: row {index}: column {cfg.column!r} holds {type(value).__name__}, expected text"
            )
    log.info("loaded %d rows from %s", len(values), _describe(cfg))
    return values
