"""The Slurm executor: a Submitit job array of shard tasks, then a gather job that depends on it.

Every array task runs :func:`generation.shards.run_shard` — the same function the local executor calls
in-process — and the gather job runs :func:`generation.pipeline.gather_shards`. A task that hits its time
limit or is preempted is requeued by Submitit (``Checkpointable``) and resumes from the shard's request
cache and its last complete chunk. ``submission.json`` in the run folder records which job ran which shard:
``synthgen status`` adds their Slurm states to what the shard files say.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit

from generation.config import RunConfig, SlurmConfig, dump_config_yaml
from generation.errors import SynthgenError
from generation.executors.base import Executor, RunPlan, RunStatus
from generation.io import write_json, write_text
from generation.run.layout import RunPaths

log = logging.getLogger(__name__)

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


class SlurmError(SynthgenError):
    """sbatch/sacct failed, or submitted jobs did not all succeed."""


def _task_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for name in ("httpx", "httpx2", "huggingface_hub", "datasets", "filelock", "urllib3", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


class ShardTask(submitit.helpers.Checkpointable):
    """One array task: run shard ``rank``. Holds the secret-free effective config only (it is pickled)."""

    def __init__(self, config: dict[str, Any], out_dir: str, stages: tuple[str, ...], questions_file: str | None):
        self.config = config
        self.out_dir = out_dir
        self.stages = stages
        self.questions_file = questions_file

    def __call__(self, rank: int) -> dict[str, int]:
        from generation.shards import run_shard

        _task_logging()
        cfg = RunConfig.model_validate(self.config)
        questions_file = Path(self.questions_file) if self.questions_file else None
        marker = run_shard(cfg, Path(self.out_dir), rank, cfg.execution.shards, self.stages, questions_file, show_progress=False)
        return marker["rows"]


class GatherTask:
    """The gather job: publish the shards like a local run does."""

    def __init__(self, config: dict[str, Any], out_dir: str, stages: tuple[str, ...], questions_file: str | None, command: str | None):
        self.config = config
        self.out_dir = out_dir
        self.stages = stages
        self.questions_file = questions_file
        self.command = command

    def __call__(self) -> dict[str, int]:
        from generation.pipeline import gather_shards

        _task_logging()
        cfg = RunConfig.model_validate(self.config)
        questions_file = Path(self.questions_file) if self.questions_file else None
        return gather_shards(cfg, Path(self.out_dir), self.stages, questions_file, self.command)["rows"]


def _executor(folder: Path, slurm: SlurmConfig, name: str, time_min: int, gpus: int, dependency: str | None = None) -> submitit.SlurmExecutor:
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=slurm.requeue_on_timeout)
    params: dict[str, Any] = {
        "job_name": name,
        "time": time_min,
        "cpus_per_task": slurm.cpus_per_task,
        "array_parallelism": slurm.array_parallelism,
        "additional_parameters": dict(slurm.additional),
    }
    optional = {"partition": slurm.partition, "account": slurm.account, "qos": slurm.qos, "dependency": dependency}
    params.update({key: value for key, value in optional.items() if value})
    if gpus:
        params["gpus_per_task"] = gpus
    if slurm.mem_gb:
        params["mem"] = f"{int(slurm.mem_gb * 1024)}M"
    executor.update_parameters(**params)
    return executor


@dataclass
class Submission:
    array_job_id: str | None
    shard_jobs: dict[int, str]
    gather_job_id: str
    log_folder: Path


class SlurmExecutor(Executor):
    """The plan's pending shards as one Submitit job array, then a gather job that runs after them (``afterok``)."""

    name = "slurm"
    submission: Submission | None = None  # once launch() has submitted

    def launch(self, plan: RunPlan) -> None:
        """Submit (and return at once): refused while jobs of the folder's previous submission, or a local run,
        are still active."""
        cfg, out_dir = self.cfg, self.out_dir
        self.prepare(plan)
        write_text(RunPaths(out_dir).config, dump_config_yaml(cfg))
        pending = plan.pending()
        config = cfg.public_dict()
        qfile = str(plan.questions_file) if plan.questions_file else None
        log_folder = RunPaths(out_dir).slurm_logs
        slurm = cfg.execution.slurm
        shard_jobs: dict[int, str] = {}
        array_job_id = None
        try:
            if pending:
                executor = _executor(log_folder / "%j", slurm, f"synthgen-{cfg.name}", slurm.time_limit_min, slurm.gpus_per_task)
                jobs = executor.map_array(ShardTask(config, str(out_dir), plan.stages, qfile), pending)
                shard_jobs = {rank: job.job_id for rank, job in zip(pending, jobs)}
                array_job_id = jobs[0].job_id.split("_")[0]
            else:
                log.info("all %d shards are complete; submitting only the gather job", plan.world_size)
            dependency = f"afterok:{array_job_id}" if array_job_id else None
            gather_executor = _executor(log_folder / "%j", slurm, f"synthgen-{cfg.name}-gather", slurm.gather_time_limit_min, 0, dependency)
            gather_job = gather_executor.submit(GatherTask(config, str(out_dir), plan.stages, qfile, self.command))
        except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SlurmError(f"sbatch failed: {first}") from None
        record = {
            "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": plan.fingerprint,
            "world_size": plan.world_size,
            "stages": list(plan.stages),
            "questions_file": qfile,
            "array_job_id": array_job_id,
            "shard_jobs": {str(rank): job for rank, job in shard_jobs.items()},
            "gather_job_id": gather_job.job_id,
            "log_folder": str(log_folder),
        }
        history = read_submissions(out_dir)
        write_json(RunPaths(out_dir).submission, {"submissions": [*history, record]})
        self.submission = Submission(array_job_id, shard_jobs, gather_job.job_id, log_folder)

    def wait(self, plan: RunPlan, echo: Callable[[str], None] | None = None, poll_s: float = 2.0) -> bool:
        """Follow the jobs until all have ended, echoing state changes; True when every one of them completed."""
        report = self.follow(plan, echo, poll_s)
        if self.submission is None:  # following a submission made by another process
            return report.gather.state == "done"
        states = [report.shards[rank].job_state for rank in self.submission.shard_jobs] + [report.gather.job_state]
        return all(state == "COMPLETED" for state in states)

    @classmethod
    def busy(cls, out_dir: Path) -> str | None:
        """Submitting again while the previous jobs still run would run shards twice."""
        submissions = read_submissions(out_dir)
        if not submissions:
            return None
        latest = submissions[-1]
        jobs = [*latest["shard_jobs"].values(), latest["gather_job_id"]]
        active = [job for job, state in sacct_states(jobs).items() if state not in FINAL_STATES]
        if active:
            return f"jobs of the previous submission are still active ({', '.join(active)}); wait for them or scancel them"
        return None

    @classmethod
    def add_detail(cls, plan: RunPlan, report: RunStatus) -> None:
        """Each shard's and the gather's latest job and its Slurm state (``sacct``): running, queued or failed."""
        submissions = [record for record in read_submissions(plan.out_dir) if record["fingerprint"] == plan.fingerprint]
        if not submissions:
            return
        latest = submissions[-1]
        report.logs = latest["log_folder"]
        last_job: dict[int, str] = {}
        for record in submissions:
            last_job.update({int(rank): job for rank, job in record["shard_jobs"].items()})
        states = sacct_states([*last_job.values(), latest["gather_job_id"]])
        tasks = [(report.shards[rank], job) for rank, job in last_job.items() if rank in report.shards]
        for task, job in [*tasks, (report.gather, latest["gather_job_id"])]:
            task.job, task.job_state = job, states[job]
            if task.state != "done":
                task.state = job_task_state(states[job], task.state)
                if task.state == "failed" and states[job] == "COMPLETED":
                    task.detail = "the job completed but left no completion marker"
        report.active = any(state not in FINAL_STATES for state in states.values())


RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"}


def job_task_state(job_state: str, files_state: str) -> str:
    """A task's state from its job's Slurm state, when its files do not say done: a queued or requeued job
    keeps what the files say (pending, or partial after a requeue)."""
    if job_state in RUNNING_STATES:
        return "running"
    if job_state in FINAL_STATES:
        return "failed"  # COMPLETED too: a task that completed is done, and its files would say so
    return files_state


def read_submissions(out_dir: Path) -> list[dict[str, Any]]:
    """The folder's submissions, oldest first (``submission.json``; none when it is absent)."""
    path = RunPaths(out_dir).submission
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SlurmError(f"{path}: unreadable ({exc})") from None
    return list(data.get("submissions", []))


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> Slurm state from real accounting (array tasks as ``<array>_<index>``)."""
    if not job_ids:
        return {}
    result = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(sorted({j.split("_")[0] for j in job_ids}))],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise SlurmError(f"sacct failed: {result.stderr.strip().splitlines()[0] if result.stderr.strip() else result.returncode}")
    states: dict[str, str] = {}
    for line in result.stdout.splitlines():
        job, _, state = line.partition("|")
        for one in _expand_array_id(job):
            states[one] = state.split(" ")[0]  # "CANCELLED by 0" -> "CANCELLED"
    missing = [job for job in job_ids if job not in states]
    if missing:
        queued = _squeue_states()
        for job in missing:
            # Not in accounting: still queued (accounting lags a fresh submission), or an array task
            # cancelled before it started, which Slurm removes without an accounting record.
            states[job] = queued.get(job, "CANCELLED")
    return {job: states[job] for job in job_ids}


def _squeue_states() -> dict[str, str]:
    result = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SlurmError(f"squeue failed: {result.stderr.strip().splitlines()[0] if result.stderr.strip() else result.returncode}")
    return dict(line.split("|", 1) for line in result.stdout.splitlines() if "|" in line)


def _expand_array_id(job: str) -> list[str]:
    """sacct lists pending array tasks together: ``16_[0-2,5%4]`` -> ``16_0 16_1 16_2 16_5``."""
    if "_[" not in job:
        return [job]
    base, _, spec = job.partition("_[")
    ids = []
    for part in spec.rstrip("]").split("%")[0].split(","):
        low, _, high = part.partition("-")
        ids.extend(f"{base}_{index}" for index in range(int(low), int(high or low) + 1))
    return ids
