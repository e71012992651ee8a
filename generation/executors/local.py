"""The local executor: every pending shard in this process, one after another, then the gather.

While it works it holds an exclusive lock (``flock``) on the run folder's ``run.lock``, which also records
its pid, host and current task. A second local run into the same folder is refused while the lock is held,
and ``synthgen status`` tells a run that is working ("running", the lock is held) from one that stopped
without finishing (the record says running but nobody holds the lock: killed, or its node went down).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from generation.errors import OutputWriteError, redact
from generation.executors.base import Executor, RunFolderBusyError, RunPlan, RunStatus
from generation.run.layout import RunPaths

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunLock:
    """``run.lock``: an exclusive ``flock`` held while a local process works in a run folder, and its record
    (pid, host, start, current task, final state). The record is rewritten in place: renaming a new file over
    it would drop the lock."""

    def __init__(self, path: Path):
        self.path = path
        self.record: dict[str, Any] = {}
        self._fd: int | None = None

    def acquire(self, attempts: int = 20) -> None:
        """Take the lock (a status check holds it for an instant, hence a few attempts) or refuse: busy."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutputWriteError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if attempt + 1 < attempts:
                    time.sleep(0.05)
        os.close(fd)
        raise RunFolderBusyError(f"{self.path.parent}: {describe_holder(read_lock(self.path) or {})}")

    def begin(self, **fields: Any) -> None:
        self.record = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _now(), "state": "running", **fields}
        self._write()

    def update(self, **fields: Any) -> None:
        self.record.update(fields, updated_at=_now())
        self._write()

    def release(self, state: str | None = None, error: str | None = None) -> None:
        """Record how the work ended (unless it never began) and let go of the lock."""
        if self._fd is None:
            return
        try:
            if state is not None and self.record:
                self.record.update(state=state, finished_at=_now(), **({"error": error} if error else {}))
                self._write()
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _write(self) -> None:
        assert self._fd is not None
        data = (json.dumps(self.record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))
        except OSError as exc:
            log.warning("cannot update %s: %s", self.path, exc.strerror or exc)

    @contextmanager
    def working(self, **fields: Any) -> Iterator[RunLock]:
        """Record a piece of work under the acquired lock: it begins now and ends completed, failed or interrupted,
        and then the lock is released."""
        try:
            self.begin(**fields)
            yield self
        except BaseException as exc:
            first = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
            self.release("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", first)
            raise
        self.release("completed")


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's record and whether a process holds it now (``held``); None when there is no lock file."""
    if not path.is_file():
        return None
    record: dict[str, Any] = {}
    for _ in range(5):  # a reader can catch a rewrite half done; the next read sees it whole
        try:
            loaded = json.loads(path.read_text(encoding="utf-8") or "{}")
            record = loaded if isinstance(loaded, dict) else {}
            break
        except (OSError, ValueError):
            time.sleep(0.02)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {**record, "held": False}
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        held = False
    except BlockingIOError:
        held = True
    finally:
        os.close(fd)
    return {**record, "held": held}


def describe_holder(record: dict[str, Any]) -> str:
    task = f", on {record['task']}" if record.get("task") else ""
    return (
        f"a local synthgen run (pid {record.get('pid', '?')} on {record.get('host', '?')}, since {record.get('started_at', '?')}{task}) "
        "is still working in this folder; wait for it or stop it"
    )


class LocalExecutor(Executor):
    """Every pending shard in this process (``synthgen run``), then gather, publication and evaluation."""

    name = "local"
    locks_folder = True
    summary: dict[str, Any] | None = None  # the run summary, once launch() has run

    def launch(self, plan: RunPlan) -> None:
        from generation.evaluation.hook import evaluate_run
        from generation.pipeline import gather_run, summary_session
        from generation.shards import run_shard

        lock = RunLock(RunPaths(self.out_dir).run_lock)
        lock.acquire()
        try:
            self.prepare(plan)
        except BaseException:
            lock.release()
            raise
        with lock.working(executor=self.name, fingerprint=plan.fingerprint, task=None), summary_session(
            self.cfg, self.out_dir, plan.stages, self.command
        ) as summary:  # fmt: skip
            summary["fingerprint"] = plan.fingerprint
            pending = plan.pending()
            summary["shards_skipped"] = plan.world_size - len(pending)
            for rank in pending:
                lock.update(task=f"shard {rank}", shard=rank)
                run_shard(self.cfg, self.out_dir, rank, plan.world_size, plan.stages, plan.questions_file, self.show_progress)
            lock.update(task="gather", shard=None)
            gather_run(self.cfg, self.out_dir, plan.stages, summary, plan.questions_file)
            lock.update(task="evaluation")
            evaluate_run(self.cfg, self.out_dir, plan.stages, summary, self.show_progress)  # OUTDIR/eval/ unless disabled
        self.summary = summary

    def gather(self, plan: RunPlan) -> dict[str, Any]:
        """Publish complete shards by hand (``synthgen gather``), holding the folder like a run does."""
        from generation.pipeline import gather_shards

        lock = RunLock(RunPaths(self.out_dir).run_lock)
        lock.acquire()
        with lock.working(executor=self.name, fingerprint=plan.fingerprint, task="gather"):
            return gather_shards(self.cfg, self.out_dir, plan.stages, plan.questions_file, self.command)

    def wait(self, plan: RunPlan, echo: Callable[[str], None] | None = None, poll_s: float = 2.0) -> bool:
        """Until no local process holds the folder (after :meth:`launch`, at once); True when published."""
        return self.follow(plan, echo, poll_s).gather.state == "done"

    @classmethod
    def busy(cls, out_dir: Path) -> str | None:
        info = read_lock(RunPaths(out_dir).run_lock)
        return describe_holder(info) if info and info["held"] else None

    @classmethod
    def add_detail(cls, plan: RunPlan, report: RunStatus) -> None:
        paths = RunPaths(plan.out_dir)
        if paths.run_log.is_file():
            report.logs = str(paths.run_log)
        info = read_lock(paths.run_lock)
        if info is None or info.get("fingerprint", plan.fingerprint) != plan.fingerprint:
            return
        held = bool(info["held"])
        recorded = info.get("state", "running")
        state = "running" if held else ("stopped" if recorded == "running" else recorded)
        report.active = held
        report.process = {
            key: info.get(key) for key in ("pid", "host", "started_at", "finished_at", "task", "error") if info.get(key) is not None
        } | {"state": state}  # fmt: skip
        who = f"pid {info.get('pid')} on {info.get('host')}"
        task, rank = info.get("task"), info.get("shard")
        target = report.gather if task in ("gather", "evaluation") else report.shards.get(rank) if isinstance(rank, int) else None
        if target is None or target.state == "done":
            return
        if state == "running":
            target.state, target.detail = "running", who
        elif state == "failed":
            target.state, target.detail = "failed", info.get("error")
        elif state in ("stopped", "interrupted"):
            target.detail = f"{'interrupted' if state == 'interrupted' else 'stopped without finishing'} ({who}); rerun to resume"
