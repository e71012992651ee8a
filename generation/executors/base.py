"""The executor interface: one run plan, run in this process or as Slurm jobs, with one status for both.

A run plan (:class:`RunPlan`, made by :func:`generation.pipeline.plan_run`) names the stages, the shard
count and the config fingerprint. An executor runs the plan's shards that lack a completion marker with
:func:`generation.shards.run_shard`, then the gather (:func:`generation.pipeline.gather_shards`), and can
wait for them. Every executor records the plan in the run folder (``run_plan.json``) before it starts, so
``synthgen status`` and ``synthgen gather`` work on any run folder: what the shard files say (completion
markers, chunk markers) is the same for every executor, and each executor adds what only it knows (the
local run's lock with its pid; Slurm's job ids and states from ``submission.json`` and ``sacct``).
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from generation.config import RunConfig
from generation.errors import ConfigError, SynthgenError
from generation.executors import EXECUTORS
from generation.io import read_json_object, write_json
from generation.run.layout import STAGES, RunPaths, ShardLayout, shards_dir_name
from generation.shards import check_fingerprints, pending_ranks

log = logging.getLogger(__name__)

SHARD_STATES = ("done", "partial", "running", "failed", "pending")


class RunFolderBusyError(SynthgenError):
    """Another run (a local process or Slurm jobs) is still working in the run folder."""


@dataclass(frozen=True)
class RunPlan:
    """What a run or submission works on, validated before anything is written."""

    stages: tuple[str, ...]
    questions_file: Path | None
    layout: ShardLayout
    fingerprint: str
    world_size: int
    force: bool = False  # discard shards made with another config (done by the executor, once it owns the folder)

    @property
    def out_dir(self) -> Path:
        return self.layout.out_dir

    def pending(self) -> list[int]:
        return pending_ranks(self.layout, self.fingerprint, self.world_size)

    def status(self) -> dict[int, dict[str, Any]]:
        """Per shard, from its files alone (any executor): ``done`` (a matching completion marker, with its row
        counts), ``partial`` (complete chunks of this config so far) or ``pending``."""
        report: dict[int, dict[str, Any]] = {}
        for rank in range(self.world_size):
            marker = self.layout.read_marker(rank)
            if marker is not None and marker["fingerprint"] == self.fingerprint:
                report[rank] = {"state": "done", **marker["rows"]}
                continue
            try:
                chunks = json.loads(self.layout.chunks(rank).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                chunks = None
            if isinstance(chunks, dict) and chunks.get("fingerprint") == self.fingerprint:
                report[rank] = {"state": "partial", "chunks": chunks.get("chunks"), "rows_done": chunks.get("rows_consumed")}
            else:
                report[rank] = {"state": "pending"}
        return report

    def record(self, executor: str) -> dict[str, Any]:
        """The plan as ``run_plan.json`` keeps it."""
        return {
            "executor": executor, "stages": list(self.stages), "world_size": self.world_size, "fingerprint": self.fingerprint,
            "questions_file": str(self.questions_file) if self.questions_file else None,
            "planned_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }  # fmt: skip

    @classmethod
    def from_record(cls, out_dir: Path, record: dict[str, Any]) -> RunPlan:
        stages = tuple(record["stages"])
        questions_file = Path(record["questions_file"]) if record.get("questions_file") else None
        return cls(stages, questions_file, ShardLayout(out_dir, stages), str(record["fingerprint"]), int(record["world_size"]))


# ------------------------------------------------------------------------------------------- status


@dataclass
class TaskStatus:
    """One shard, or the gather: its state (one of :data:`SHARD_STATES`) and what is known about it."""

    state: str = "pending"
    questions: int | None = None  # done: rows in the shard's files
    pairs: int | None = None
    rows_done: int | None = None  # rows committed in complete chunks so far
    chunks: int | None = None
    job: str | None = None  # Slurm: the job that last ran it, and its state
    job_state: str | None = None
    detail: str | None = None  # e.g. the error that stopped it, or "pid 123 on node1"

    def describe(self) -> str:
        parts = [f"{self.state:<7}"]
        if self.questions is not None:
            parts.append(f"{self.questions} questions, {self.pairs} pairs")
        elif self.rows_done is not None:
            parts.append(f"{self.rows_done} rows committed ({self.chunks} chunks)")
        if self.job:
            parts.append(f"job {self.job} {self.job_state or ''}".rstrip())
        if self.detail:
            parts.append(self.detail)
        return "  ".join(parts).rstrip()


@dataclass
class RunStatus:
    """A run folder's state: every shard, the gather, and the executor's own view (a process or jobs)."""

    out_dir: Path
    executor: str
    stages: tuple[str, ...]
    world_size: int
    shards: dict[int, TaskStatus]
    gather: TaskStatus = field(default_factory=TaskStatus)
    process: dict[str, Any] | None = None  # local runs: pid, host, state (running / stopped), current task
    active: bool = False  # work is under way (a process holds the folder, or jobs are queued or running)
    logs: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. why the executor's own view is missing

    def as_dict(self) -> dict[str, Any]:
        def task(status: TaskStatus) -> dict[str, Any]:
            return {key: value for key, value in asdict(status).items() if value is not None}

        return {
            "run_folder": str(self.out_dir), "executor": self.executor, "stages": list(self.stages), "world_size": self.world_size,
            "active": self.active, "process": self.process, "shards": {str(rank): task(s) for rank, s in self.shards.items()},
            "gather": task(self.gather), "logs": self.logs, "notes": self.notes,
        }  # fmt: skip

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(SHARD_STATES, 0)
        for shard in self.shards.values():
            counts[shard.state] += 1
        return counts

    def lines(self) -> list[str]:
        """The report ``synthgen status`` prints."""
        summary = ", ".join(f"{n} {state}" for state, n in self.counts().items() if n)
        lines = [f"run folder  {self.out_dir}  ({self.executor}; {self.world_size} shard(s): {summary}; stages {'+'.join(self.stages)})"]
        if self.process:
            p = self.process
            doing = f", {p['task']}" if p.get("task") and p["state"] == "running" else ""
            lines.append(f"process     {p['state']} (pid {p.get('pid')} on {p.get('host')}{doing}; started {p.get('started_at')})")
        lines += [f"shard {rank:<5} {shard.describe()}" for rank, shard in self.shards.items()]
        lines.append(f"gather      {self.gather.describe()}")
        if self.logs:
            lines.append(f"logs        {self.logs}")
        lines += [f"note        {note}" for note in self.notes]
        return lines


def files_status(plan: RunPlan, executor: str) -> RunStatus:
    """What the run folder's files say, whatever ran them: markers, chunks and the run summary."""
    shards = {}
    for rank, info in plan.status().items():
        shards[rank] = TaskStatus(info["state"], info.get("questions"), info.get("pairs"), info.get("rows_done"), info.get("chunks"))
    gather = TaskStatus()
    summary = read_json_object(RunPaths(plan.out_dir).summary)
    if (
        summary.get("status") == "completed"
        and summary.get("fingerprint", plan.fingerprint) == plan.fingerprint  # summaries from before it had none
        and all(shard.state == "done" for shard in shards.values())
    ):
        gather = TaskStatus("done", summary.get("rows", {}).get("questions"), summary.get("rows", {}).get("pairs"))
    return RunStatus(plan.out_dir, executor, plan.stages, plan.world_size, shards, gather)


# ------------------------------------------------------------------------------------ plan records


def write_plan_record(plan: RunPlan, executor: str) -> None:
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(RunPaths(plan.out_dir).run_plan, plan.record(executor))


def read_plan(out_dir: Path, cfg: RunConfig | None = None) -> tuple[RunPlan, str]:
    """The plan of the latest run or submission in ``out_dir`` and the executor that ran it.

    From ``run_plan.json``; run folders made before it existed: the latest record of ``submission.json``
    (Slurm), else ``cfg`` or the saved ``config.yaml``, and the shard folder that is there (local).
    """
    paths = RunPaths(out_dir)
    if paths.run_plan.is_file():
        record = read_json_object(paths.run_plan)
        try:
            return RunPlan.from_record(out_dir, record), str(record.get("executor", "local"))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{paths.run_plan}: unreadable run plan; rerun or resubmit to rewrite it") from None
    if paths.submission.is_file():
        from generation.executors.slurm import read_submissions

        submissions = read_submissions(out_dir)
        if submissions:
            return RunPlan.from_record(out_dir, submissions[-1]), "slurm"
    if cfg is None:
        if not paths.config.is_file():
            raise ConfigError(f"{out_dir}: not a run folder (no {paths.run_plan.name} and no {paths.config.name})")
        from generation.config import load_saved_config

        cfg = load_saved_config(paths.config)
    return _plan_from_config(out_dir, cfg), "local"


def _plan_from_config(out_dir: Path, cfg: RunConfig) -> RunPlan:
    from generation.shards import config_fingerprint

    candidates = [STAGES, ("questions",), ("responses",)]
    stages = next((s for s in candidates if (out_dir / shards_dir_name(s)).is_dir()), STAGES)
    questions_file = None
    if stages == ("responses",):
        layout = ShardLayout(out_dir, stages)
        marker = layout.read_marker(0) or {}
        named = (marker.get("input") or {}).get("responses_input", {}).get("file")
        questions_file = Path(named) if named else RunPaths(out_dir).questions
        if not questions_file.is_file():
            raise ConfigError(f"{out_dir}: the questions file of this responses run, {questions_file}, is gone; pass -c and --questions")
    fingerprint = config_fingerprint(cfg, stages, questions_file)
    return RunPlan(stages, questions_file, ShardLayout(out_dir, stages), fingerprint, cfg.execution.shards)


def executor_class(name: str) -> type[Executor]:
    if name == "local":
        from generation.executors.local import LocalExecutor

        return LocalExecutor
    if name == "slurm":
        from generation.executors.slurm import SlurmExecutor

        return SlurmExecutor
    raise ConfigError(f"unknown executor {name!r} (expected one of: {', '.join(EXECUTORS)})")


def run_status(out_dir: Path) -> RunStatus:
    """The state of any run folder: its files, and what the executor that ran it knows."""
    plan, executor = read_plan(out_dir)
    report = files_status(plan, executor)
    try:
        executor_class(executor).add_detail(plan, report)
    except (SynthgenError, OSError) as exc:  # e.g. no sacct on this machine: the files still tell most of it
        report.notes.append(f"what only the {executor} executor knows is missing: {exc}")
    return report


# ----------------------------------------------------------------------------------------- executor


class Executor(ABC):
    """Runs a plan: the shards without a completion marker, then the gather; reports status; waits."""

    name: ClassVar[str]
    locks_folder: ClassVar[bool] = False  # its own busy check is a lock it holds while it works

    def __init__(self, cfg: RunConfig, out_dir: Path, command: str | None = None, show_progress: bool = True):
        self.cfg = cfg
        self.out_dir = out_dir
        self.command = command
        self.show_progress = show_progress

    def run(self, plan: RunPlan, echo: Callable[[str], None] | None = None) -> bool:
        """Launch the plan and wait for it; True when every shard and the gather completed."""
        self.launch(plan)
        return self.wait(plan, echo)

    @abstractmethod
    def launch(self, plan: RunPlan) -> None:
        """Start the plan's pending shards and then the gather (the local executor: run them, in this process)."""

    @abstractmethod
    def wait(self, plan: RunPlan, echo: Callable[[str], None] | None = None, poll_s: float = 2.0) -> bool:
        """Block until the launched work ends, echoing state changes; True when all of it completed."""

    @classmethod
    @abstractmethod
    def busy(cls, out_dir: Path) -> str | None:
        """What of this executor's work is still active in ``out_dir`` (a sentence), or None."""

    @classmethod
    @abstractmethod
    def add_detail(cls, plan: RunPlan, report: RunStatus) -> None:
        """Add what only this executor knows to a files-based report: running, failed, queued, jobs, pid."""

    def status(self, plan: RunPlan) -> RunStatus:
        report = files_status(plan, self.name)
        self.add_detail(plan, report)
        return report

    def prepare(self, plan: RunPlan) -> None:
        """Before any shard runs: no other executor is busy in the folder, ``--force`` discards shards of another
        config, and the plan is recorded for ``status`` and ``gather``."""
        for name in EXECUTORS:
            kind = executor_class(name)
            if kind is type(self) and self.locks_folder:
                continue
            try:
                busy = kind.busy(plan.out_dir)
            except (SynthgenError, OSError) as exc:
                if kind is type(self):
                    raise
                log.warning("%s: cannot tell whether %s work is still active there (%s); going on", plan.out_dir, name, exc)
                continue
            if busy:
                raise RunFolderBusyError(f"{plan.out_dir}: {busy}")
        if plan.force:
            check_fingerprints(plan.layout, plan.fingerprint, plan.world_size, force=True)
        write_plan_record(plan, self.name)

    def follow(self, plan: RunPlan, echo: Callable[[str], None] | None, poll_s: float) -> RunStatus:
        """Poll the status until nothing is active, echoing each shard's and the gather's state changes."""
        seen: dict[str, tuple[Any, ...]] = {}
        while True:
            report = self.status(plan)
            tasks = [(f"shard {rank}", shard) for rank, shard in report.shards.items()] + [("gather", report.gather)]
            for label, task in tasks:
                key = (task.state, task.job, task.job_state)
                if seen.get(label) != key:
                    seen[label] = key
                    if echo is not None:
                        echo(f"{label:<10} {task.describe()}")
            if not report.active:
                return report
            time.sleep(max(poll_s, plan.world_size / 500))  # every poll reads each shard's markers
