"""A model server that synthgen starts on a loopback port and always stops: the process part shared by the
embedded engine (llama.cpp) and the vLLM engine.

The server gets its own session and process group; it is stopped with SIGTERM to the group, then SIGKILL to
the group and to every descendant seen while it ran (vLLM starts an engine core and workers, which could
leave the group), and ``stop()`` checks that none of them survives.
"""

from __future__ import annotations

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

import psutil

from generation.errors import ServerStartError

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
SECRET_SUFFIXES = ("_API_KEY", "_SECRET", "_SECRET_KEY", "_SECRET_ACCESS_KEY", "_PASSWORD")


def server_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment minus API keys, plus ``extra``: what a model server (or a Slurm job) gets. HF_TOKEN stays
    (gated models); the keys of other services never reach a server's process or its logs."""
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith(SECRET_SUFFIXES)}
    return {**env, "PYTHONUNBUFFERED": "1", **(extra or {})}


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[psutil.Process]:
    """Every live descendant of ``pid`` (empty when it is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


class LocalServer:
    """A server process on 127.0.0.1; subclasses give its command, environment and readiness URL."""

    label = "model server"

    def __init__(self, port: int | None, startup_timeout_s: float, log_path: Path | None = None):
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self._family: dict[int, psutil.Process] = {}  # every process of the server seen so far, by pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- what a subclass provides
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The server's environment; None inherits ours."""
        return None

    def ready_url(self) -> str:
        """A URL that answers 200 once the model is loaded."""
        return f"{self.base_url}/models"

    def check_installed(self) -> None:
        """Raise ConfigError when the server's software is missing."""

    def describe(self) -> str:
        return self.label

    # ---- life cycle
    def start(self) -> "LocalServer":
        self.check_installed()
        command = self.command()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.info("starting %s on %s", self.describe(), self.base_url)
        started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file or sys.stderr,  # no log file (serve-local): the server's output goes to our stderr
            stderr=subprocess.STDOUT,
            env=self.environment(),
            start_new_session=True,  # its own process group, so stop() reaches its children
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("%s is ready at %s (%.0f s)", self.label, self.base_url, time.monotonic() - started)
        return self

    def _remember_family(self) -> None:
        if self.process is not None:
            for child in descendants(self.process.pid):
                self._family.setdefault(child.pid, child)

    def wait_ready(self) -> None:
        """Poll ``ready_url()`` until it answers 200, the process dies or the start-up timeout passes."""
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            self._remember_family()
            if self.process.poll() is not None:
                where = f"; see {self.log_path}" if self.log_path else ""
                raise ServerStartError(f"{self.label} exited with status {self.process.returncode} while starting{where}")
            try:
                with urllib.request.urlopen(self.ready_url(), timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        self._remember_family()
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        where = f"; see {self.log_path}" if self.log_path else ""
        raise ServerStartError(f"{self.label} did not answer on {self.base_url} within {self.startup_timeout_s:.0f} s{where}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server and every process it started: SIGTERM to its group, SIGKILL after STOP_GRACE_S."""
        process, self.process = self.process, None
        if process is not None:
            self._family.update({p.pid: p for p in descendants(process.pid)})
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within %.0f s; killing it", self.label, STOP_GRACE_S)
                    _kill_group(process.pid)
                    process.wait()
                except ProcessLookupError:
                    pass
            else:
                _kill_group(process.pid)  # the main process died (killed?): its children may still run
            survivors = self._reap_family()
            if survivors:
                log.error("%s: process(es) %s survived SIGKILL; stop them by hand", self.label, ", ".join(map(str, survivors)))
            log.info("%s stopped", self.label)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _reap_family(self) -> list[int]:
        """SIGTERM the server's other processes still running (one may have left the group), SIGKILL those left
        after the grace period; returns the pids that survive even that."""
        family = list(self._family.values())
        self._family = {}
        for signum, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            running = [p for p in family if _running(p)]
            for proc in running:
                try:
                    proc.send_signal(signum)
                except psutil.Error:
                    pass
            deadline = time.monotonic() + grace
            while running and time.monotonic() < deadline:
                time.sleep(0.1)
                running = [p for p in running if _running(p)]
            if not running:
                return []
        return [p.pid for p in family if _running(p)]

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _running(proc: psutil.Process) -> bool:
    """Alive and the same process (not a reused pid), zombies excluded."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
