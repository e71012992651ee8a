"""The Slurm executor: a Submitit job array of shard tasks, then a gather job that depends on it.

Every array task runs :func:`generation.shards.run_shard` — the same function ``synthgen run`` calls
in-process — and the gather job runs :func:`generation.pipeline.gather_shards`. A task that hits its time
limit or is preempted is requeued by Submitit (``Checkpointable``) and resumes from the shard's request
cache. ``submission.json`` in the run folder records which job ran which shard, for ``synthgen status``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit

from generation.config import RunConfig, SlurmConfig, dump_config_yaml
from generation.errors import SynthgenError
from generation.io import write_json, write_text
from generation.shards import STAGES, ShardLayout

log = logging.getLogger(__name__)

SUBMISSION_FILE = "submission.json"
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


def submit(
    cfg: RunConfig, out_dir: Path, stages: tuple[str, ...] = STAGES, questions_file: Path | None = None,
    force: bool = False, command: str | None = None,
) -> Submission:  # fmt: skip
    """Submit the shards that lack a completion marker as an array job, and a gather job after them."""
    from generation.pipeline import plan_run

    out_dir = out_dir.resolve()
    plan = plan_run(cfg, out_dir, stages, questions_file, force)
    stages, world_size, fingerprint = plan.stages, plan.world_size, plan.fingerprint
    _refuse_while_active(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "config.yaml", dump_config_yaml(cfg))
    pending = plan.pending()
    config = cfg.public_dict()
    qfile = str(plan.questions_file) if plan.questions_file else None
    log_folder = out_dir / "slurm-logs"
    slurm = cfg.execution.slurm
    shard_jobs: dict[int, str] = {}
    array_job_id = None
    try:
        if pending:
            executor = _executor(log_folder / "%j", slurm, f"synthgen-{cfg.name}", slurm.time_limit_min, slurm.gpus_per_task)
            jobs = executor.map_array(ShardTask(config, str(out_dir), stages, qfile), pending)
            shard_jobs = {rank: job.job_id for rank, job in zip(pending, jobs)}
            array_job_id = jobs[0].job_id.split("_")[0]
        else:
            log.info("all %d shards are complete; submitting only the gather job", world_size)
        dependency = f"afterok:{array_job_id}" if array_job_id else None
        gather_executor = _executor(log_folder / "%j", slurm, f"synthgen-{cfg.name}-gather", slurm.gather_time_limit_min, 0, dependency)
        gather_job = gather_executor.submit(GatherTask(config, str(out_dir), stages, qfile, command))
    except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SlurmError(f"sbatch failed: {first}") from None
    record = {
        "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
        "world_size": world_size,
        "stages": list(stages),
        "questions_file": qfile,
        "array_job_id": array_job_id,
        "shard_jobs": {str(rank): job for rank, job in shard_jobs.items()},
        "gather_job_id": gather_job.job_id,
        "log_folder": str(log_folder),
    }
    history = read_submissions(out_dir)
    write_json(out_dir / SUBMISSION_FILE, {"submissions": [*history, record]})
    return Submission(array_job_id, shard_jobs, gather_job.job_id, log_folder)


def _refuse_while_active(out_dir: Path) -> None:
    """Submitting again while the previous jobs still run would run shards twice."""
    submissions = read_submissions(out_dir)
    if not submissions:
        return
    latest = submissions[-1]
    jobs = [*latest["shard_jobs"].values(), latest["gather_job_id"]]
    active = [job for job, state in sacct_states(jobs).items() if state not in FINAL_STATES]
    if active:
        raise SlurmError(f"{out_dir}: jobs of the previous submission are still active ({', '.join(active)}); wait for them or scancel them")


def read_submissions(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / SUBMISSION_FILE
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


def shard_status(out_dir: Path) -> dict[str, Any]:
    """Per shard: done (completion marker), or the Slurm state of the job that last ran it."""
    submissions = read_submissions(out_dir)
    if not submissions:
        raise SlurmError(f"{out_dir}: no {SUBMISSION_FILE}; nothing was submitted to this folder")
    latest = submissions[-1]
    stages = tuple(latest["stages"])
    layout = ShardLayout(out_dir, stages)
    last_job: dict[int, str] = {}
    for record in submissions:
        if record["fingerprint"] == latest["fingerprint"]:
            last_job.update({int(rank): job for rank, job in record["shard_jobs"].items()})
    states = sacct_states([*last_job.values(), latest["gather_job_id"]])
    shards = {}
    for rank in range(latest["world_size"]):
        marker = layout.read_marker(rank)
        if marker is not None and marker["fingerprint"] == latest["fingerprint"]:
            shards[rank] = {"state": "DONE", "job": last_job.get(rank), "questions": marker["rows"]["questions"], "pairs": marker["rows"]["pairs"]}
        elif rank in last_job:
            shards[rank] = {"state": states[last_job[rank]], "job": last_job[rank]}
        else:
            shards[rank] = {"state": "NOT_SUBMITTED", "job": None}
    return {
        "shards": shards,
        "gather": {"job": latest["gather_job_id"], "state": states[latest["gather_job_id"]]},
        "log_folder": latest["log_folder"],
    }


def wait(out_dir: Path, submission: Submission, poll_s: float = 2.0, echo=print) -> bool:
    """Block until the shard and gather jobs end, printing each state change; True if all succeeded."""
    jobs = {f"shard {rank}": job for rank, job in submission.shard_jobs.items()}
    jobs["gather"] = submission.gather_job_id
    seen: dict[str, str] = {}
    while True:
        states = sacct_states(list(jobs.values()))
        for label, job in jobs.items():
            if seen.get(label) != states[job]:
                seen[label] = states[job]
                echo(f"{label:<10} job {job:<12} {states[job]}")
        if all(state in FINAL_STATES for state in states.values()):
            return all(state == "COMPLETED" for state in states.values())
        time.sleep(poll_s)
