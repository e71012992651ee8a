"""`synthgen submit/status/gather` on the real local Slurm cluster (Submitit arrays, real accounting)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import synthgen, tiny_config
from test_pipeline import check_run_folder

pytestmark = pytest.mark.slurm


def sharded_config(tmp_path: Path, base_url: str, name: str = "sharded") -> Path:
    return tiny_config(
        tmp_path, base_url, name=name, questions={"seed_questions": 3, "target": 6},
        execution={"shards": 3, "slurm": {"cpus_per_task": 1, "time_limit_min": 10}},
    )  # fmt: skip


def submissions(out: Path) -> list[dict]:
    return json.loads((out / "submission.json").read_text())["submissions"]


def our_jobs_in_queue(out: Path) -> list[str]:
    ids = set()
    for record in submissions(out):
        ids.add(record["gather_job_id"])
        if record["array_job_id"]:
            ids.add(record["array_job_id"])
    queue = subprocess.run(["squeue", "-h", "-o", "%F %i"], capture_output=True, text=True, check=True).stdout.split()
    return [job for job in queue if job in ids or job.split("_")[0] in ids]


def test_three_shard_array_then_gather_matches_a_single_process_run(model_server: str, tmp_path: Path):
    config = sharded_config(tmp_path, model_server)
    out = tmp_path / "slurm-run"
    # `run --executor slurm`: the same submission as `submit --wait`, then the run summary like a local run
    result = synthgen("run", "-c", str(config), "-o", str(out), "--executor", "slurm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "array job" in result.stdout and "gather job" in result.stdout and "synthgen status" in result.stdout
    assert "gather     done" in result.stderr and "Run summary" in result.stderr  # followed to the end
    questions, pairs = check_run_folder(out, target=6)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["shards"] == 3
    stats = summary["stages"]["questions"]
    assert stats["target"] == 6 and len(questions) == 6 - stats["shortfall"]  # the union, shortfalls summed
    assert json.loads((out / "run_plan.json").read_text())["executor"] == "slurm"

    status = json.loads(synthgen("status", "-o", str(out), "--json").stdout)
    assert status["executor"] == "slurm" and status["active"] is False
    assert [(s["state"], s["job_state"]) for s in status["shards"].values()] == [("done", "COMPLETED")] * 3
    assert [s["job"] for s in status["shards"].values()] == [submissions(out)[0]["shard_jobs"][str(rank)] for rank in range(3)]
    assert (status["gather"]["state"], status["gather"]["job_state"]) == ("done", "COMPLETED")
    assert sum(s["questions"] for s in status["shards"].values()) == len(questions)

    # The same config in one process: the same seeds, one row per question, no duplicates either way.
    local = tmp_path / "local-run"
    single = synthgen("run", "-c", str(config), "-o", str(local), "--set", "execution.shards=1")
    assert single.returncode == 0, single.stderr
    local_questions, _ = check_run_folder(local, target=6)
    local_stats = json.loads((local / "run_summary.json").read_text())["stages"]["questions"]
    assert len(local_questions) == 6 - local_stats["shortfall"]
    seeds = [q["question"] for q in questions if q["origin"] == "seed"]
    assert seeds == [q["question"] for q in local_questions if q["origin"] == "seed"]
    assert our_jobs_in_queue(out) == []


def test_cancelled_shard_blocks_gather_and_only_it_is_resubmitted(model_server: str, tmp_path: Path):
    config = sharded_config(tmp_path, model_server, name="cancel")
    out = tmp_path / "run"
    first = synthgen("submit", "-c", str(config), "-o", str(out))
    assert first.returncode == 0, first.stderr
    record = submissions(out)[0]
    subprocess.run(["scancel", record["shard_jobs"]["1"]], check=True)

    deadline = time.monotonic() + 300
    while True:  # the other shards finish; the gather job's afterok can never be met, so it is cancelled
        report = json.loads(synthgen("status", "-o", str(out), "--json").stdout)
        states = [report["shards"][str(rank)]["state"] for rank in range(3)]
        if states[0] == states[2] == "done" and report["gather"].get("job_state") == "CANCELLED":
            break
        assert time.monotonic() < deadline, f"unexpected states {states} / gather {report['gather']}"
        time.sleep(1)
    assert (states[1], report["shards"]["1"]["job_state"]) == ("failed", "CANCELLED")
    assert report["gather"]["state"] == "failed" and report["active"] is False

    refused = synthgen("gather", "-o", str(out))
    assert refused.returncode == 1
    assert "1 of 3 shard(s) are not complete" in refused.stderr and refused.stderr.strip().endswith(": 1")
    assert not (out / "questions_and_responses.csv").exists()

    done_before = {rank: (out / "shards" / f"{rank:05d}" / "done.json").stat().st_mtime_ns for rank in (0, 2)}
    again = synthgen("submit", "-c", str(config), "-o", str(out), "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    assert list(submissions(out)[-1]["shard_jobs"]) == ["1"]  # only the missing shard ran again
    assert {rank: (out / "shards" / f"{rank:05d}" / "done.json").stat().st_mtime_ns for rank in (0, 2)} == done_before
    questions, pairs = check_run_folder(out, target=6)
    with open(out / "questions_and_responses.provenance.jsonl", encoding="utf-8") as handle:
        qids = [json.loads(line)["qid"] for line in handle]
    assert len(qids) == len(set(qids)) == len(pairs)
    assert our_jobs_in_queue(out) == []

    # Another config into the same folder is refused; --force discards the old shards.
    other = synthgen("submit", "-c", str(config), "-o", str(out), "--set", "seed=9")
    assert other.returncode == 2 and "different config" in other.stderr
    forced = synthgen("submit", "-c", str(config), "-o", str(out), "--set", "seed=9", "--force")
    assert forced.returncode == 0, forced.stderr
    assert sorted(submissions(out)[-1]["shard_jobs"]) == ["0", "1", "2"]
    for job in (submissions(out)[-1]["array_job_id"], submissions(out)[-1]["gather_job_id"]):
        subprocess.run(["scancel", job], check=True)


def test_slurm_local_config_with_llm_swarm_endpoints(tmp_path: Path):
    """configs/slurm-local.yaml: each array task starts its own CPU endpoint through llm-swarm."""
    out = tmp_path / "run"
    result = synthgen(
        "submit", "-c", "configs/slurm-local.yaml", "-o", str(out), "--wait",
        "--set", "questions.seed_questions=3", "--set", "questions.target=6",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    check_run_folder(out, target=6)
    for rank in range(3):
        shard = out / "shards" / f"{rank:05d}"
        assert list((shard / "swarm").glob("instance-*")), "the shard did not start its endpoints through llm-swarm"
        marker = json.loads((shard / "done.json").read_text())
        assert marker["endpoint_failure"] is None and not marker["fallback_used"]
    assert our_jobs_in_queue(out) == []
    accounting = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobName,State,WorkDir"], capture_output=True, text=True, check=True)
    endpoint_jobs = [line for line in accounting.stdout.splitlines() if line.startswith("synthgen-llamacpp") and str(out) in line]
    assert len(endpoint_jobs) == 3 and all("|CANCELLED" in line for line in endpoint_jobs), endpoint_jobs
    queue = subprocess.run(["squeue", "-h", "-o", "%j %Z"], capture_output=True, text=True, check=True).stdout
    assert str(out) not in queue  # no endpoint job outlived its shard


def test_endpoints_that_never_start_send_the_shard_to_the_fallback(model_server: str, tmp_path: Path):
    template = tmp_path / "never-up.template.slurm"
    template.write_text(
        "#!/bin/bash\n#SBATCH --job-name={{job_name}}\n#SBATCH --output=slurm/logs/llm-swarm_%j.out\n"
        "#SBATCH --cpus-per-task=1\necho http://127.0.0.1:9 > {{slurm_hosts_path}}\nsleep 600\n",
        encoding="utf-8",
    )
    fallback_model = tmp_path / "local-fallback.yaml"
    fallback_model.write_text(f"backend: {{engine: endpoint, model: SmolLM2-135M-Instruct, base_url: '{model_server}'}}\n")
    out = tmp_path / "run"
    result = synthgen(
        "run", "-c", "configs/slurm-local.yaml", "-o", str(out),
        "--set", "execution.shards=1", "--set", "questions.seed_questions=2", "--set", "questions.target=3",
        "--set", f"backend.swarm.template={template}", "--set", "backend.swarm.startup_timeout_s=15",
        "--set", "fallback.enabled=true", "--set", f"fallback.model={fallback_model}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "FALLBACK: model endpoints did not start" in result.stderr
    marker = json.loads((out / "shards" / "00000" / "done.json").read_text())
    assert marker["fallback_used"] is True
    assert marker["endpoint_failure"]["fallback"] == str(fallback_model) and marker["endpoint_failure"]["error"]
    with open(out / "questions_and_responses.provenance.jsonl", encoding="utf-8") as handle:
        provenance = [json.loads(line) for line in handle]
    assert provenance and all(p["chosen_backend"] == "fallback" for p in provenance)
    queue = subprocess.run(["squeue", "-h", "-o", "%j %Z"], capture_output=True, text=True, check=True).stdout
    assert str(out) not in queue


def test_requeued_task_resumes_from_its_request_cache(model_server: str, tmp_path: Path):
    config = tiny_config(
        tmp_path, model_server, name="requeue", questions={"seed_questions": 4, "target": 10},
        execution={"shards": 1, "slurm": {"cpus_per_task": 1, "time_limit_min": 10}},
    )  # fmt: skip
    out = tmp_path / "run"
    assert synthgen("submit", "-c", str(config), "-o", str(out)).returncode == 0
    job = submissions(out)[0]["shard_jobs"]["0"]
    cache = out / "shards" / "00000" / "cache" / "requests.sqlite"
    deadline = time.monotonic() + 300
    while True:  # wait until the task has finished a few requests, then requeue it (as preemption would)
        if cache.is_file():
            import sqlite3

            with sqlite3.connect(cache) as db:
                try:
                    if db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] >= 4:
                        break
                except sqlite3.OperationalError:  # the file exists but its table is not created yet
                    pass
        assert time.monotonic() < deadline, "the shard never started"
        time.sleep(0.2)
    assert not (out / "shards" / "00000" / "done.json").exists()
    subprocess.run(["scontrol", "requeue", job], check=True)
    # Slurm holds a requeued batch job back for about two minutes (once its first run has ended); let it
    # start at once.
    deadline = time.monotonic() + 60
    while subprocess.run(["squeue", "-h", "-j", job, "-o", "%r"], capture_output=True, text=True).stdout.strip() != "BeginTime":
        assert time.monotonic() < deadline, "the requeued job never came back as pending"
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)

    again = synthgen("submit", "-c", str(config), "-o", str(out))  # refused: its jobs are still active
    assert again.returncode == 1 and "still active" in again.stderr

    deadline = time.monotonic() + 300
    while json.loads(synthgen("status", "-o", str(out), "--json").stdout)["gather"]["state"] != "done":
        assert time.monotonic() < deadline, "the requeued run did not finish"
        time.sleep(1)
    marker = json.loads((out / "shards" / "00000" / "done.json").read_text())
    usage = marker["usage"]["primary"]["total"]
    assert usage["cache_hits"] >= 4  # work done before the requeue was reused, not redone
    check_run_folder(out, target=10)
