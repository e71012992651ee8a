"""Loading seed questions with Hugging Face ``datasets``."""

from __future__ import annotations

import codecs
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class QuestionSource:
    """The configured split's question column, read batch by batch each time it is iterated.

    ``datasets`` prepares the split as Arrow files in its cache. They are read here with a plain Arrow
    stream reader (not memory-mapped), so only one batch is held at a time and memory does not grow with
    the dataset. A split that is not a plain cached split (e.g. ``train[:10%]``) is read with ``Dataset.iter``.
    """

    def __init__(self, cfg: DatasetConfig, num_rows: int, files: list[str], dataset: Any = None, batch_size: int = 10_000):
        self.cfg = cfg
        self.num_rows = num_rows
        self.files = files
        self.dataset = dataset
        self.batch_size = batch_size

    def __len__(self) -> int:
        return self.num_rows

    def _batches(self) -> Iterator[list[Any]]:
        column = self.cfg.column
        if self.dataset is not None:
            for batch in self.dataset.select_columns([column]).iter(batch_size=self.batch_size):
                yield batch[column]
            return
        import pyarrow as pa

        for name in self.files:  # datasets writes Arrow IPC streams, shards in row order
            with pa.OSFile(name) as handle:
                for record_batch in pa.ipc.open_stream(handle):
                    yield record_batch.column(column).to_pylist()

    def __iter__(self) -> Iterator[str | None]:
        column = self.cfg.column
        index = 0
        for values in self._batches():
            for value in values:
                if value is not None and not isinstance(value, str):
                    raise InputDataError(
                        f"{_describe(self.cfg)}: row {index}: column {column!r} holds {type(value).__name__}, expected text"
                    )
                yield value
                index += 1
        if index != self.num_rows:
            raise InputDataError(f"{_describe(self.cfg)}: read {index} rows from the dataset cache, expected {self.num_rows}")


def _split_files(builder: Any, split: str) -> list[str]:
    """The cached Arrow files of a plain split, in row order (empty if the split is not one)."""
    folder = Path(builder.cache_dir)
    single = folder / f"{builder.dataset_name}-{split}.arrow"
    if single.is_file():
        return [str(single)]
    return sorted(str(path) for path in folder.glob(f"{builder.dataset_name}-{split}-*-of-*.arrow"))


def local_folder_cache(path: str, cache_root: str) -> str | None:
    """For a dataset that is a local folder: a datasets cache folder of its own, named by the folder's path and its
    files (relative name, size, mtime); None for anything else, a packaged builder's name ("csv") included even when
    the working directory has a folder of that name (datasets never reads it as one).

    datasets (5.2) keys a local folder that has a dataset card with ``configs`` by the folder's name and card alone,
    so an edited folder, or another folder of the same name, came back with the rows prepared the first time.
    Shards of one run see the same files and share the folder.
    """
    import datasets

    folder = Path(path).expanduser()
    if path in getattr(datasets.packaged_modules, "_PACKAGED_DATASETS_MODULES", {}) or not folder.is_dir():
        return None
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.relative_to(folder).parts):
        stat = file.stat()
        digest.update(f"{file.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return str(Path(cache_root) / "synthgen-local-folders" / digest.hexdigest()[:20])


def open_questions(cfg: DatasetConfig, batch_size: int = 10_000) -> QuestionSource:
    """Prepare the configured split with ``datasets`` (checking files, column and emptiness) for streaming."""
    import datasets  # imported lazily: it is slow to import and not needed by most commands
    import pyarrow as pa

    datasets.disable_progress_bars()
    # Arrow's default allocator (jemalloc/mimalloc) keeps freed batches mapped, so preparing a large split
    # would leave the process larger than one batch needs; the system allocator returns them (bench/memory.py).
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())
    files = [cfg.data_files] if isinstance(cfg.data_files, str) else (cfg.data_files or [])
    for file in files:
        if "://" in file or any(ch in file for ch in "*?["):
            continue
        if not Path(file).exists():
            raise InputDataError(f"{file}: dataset file not found (dataset.data_files)")
        if Path(file).suffix.lower() in TEXT_SUFFIXES:
            check_utf8(Path(file))
    try:
        # The Parquet builder reads a whole row group at a time unless told otherwise (often the whole file).
        options: dict[str, Any] = {"batch_size": batch_size} if cfg.path == "parquet" else {}
        cache_dir = local_folder_cache(cfg.path, datasets.config.HF_DATASETS_CACHE)
        if cache_dir is not None:
            options["cache_dir"] = cache_dir
        builder = datasets.load_dataset_builder(cfg.path, cfg.name, data_files=cfg.data_files, revision=cfg.revision, **options)
        builder.download_and_prepare()
        splits = builder.info.splits or {}
        cached = _split_files(builder, cfg.split) if cfg.split in splits else []
        if cached and builder.info.features is not None:
            source = QuestionSource(cfg, splits[cfg.split].num_examples, cached, batch_size=batch_size)
            columns = list(builder.info.features)
        else:
            dataset = builder.as_dataset(split=cfg.split)
            source = QuestionSource(cfg, dataset.num_rows, [], dataset, batch_size)
            columns = dataset.column_names
    except Exception as exc:  # datasets raises many types (network, parse, missing split); report one line
        cause = _root_cause(exc)
        if isinstance(cause, UnicodeDecodeError):
            raise InputDataError(f"{_describe(cfg)}: file is not valid UTF-8 ({cause.reason} at byte {cause.start})") from None
        raise InputDataError(f"could not load dataset {_describe(cfg)}: {_one_line(cause)}") from None
    if cfg.column not in columns:
        raise InputDataError(f"{_describe(cfg)}: no column {cfg.column!r} (dataset.column); columns are {columns}")
    if len(source) == 0:
        raise InputDataError(f"{_describe(cfg)}: the dataset is empty")
    log.info("loaded %d rows from %s", len(source), _describe(cfg))
    return source


def load_questions(cfg: DatasetConfig) -> list[str | None]:
    """Load the configured split and return the question column, in dataset order (all in memory)."""
    return list(open_questions(cfg))
