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
    result = synthgen("submit", "-c", str(config), "-o", str(out), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "array job" in result.stdout and "gather job" in result.stdout and "synthgen status" in result.stdout
    questions, pairs = check_run_folder(out, target=6)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["shards"] == 3
    stats = summary["stages"]["questions"]
    assert stats["target"] == 6 and len(questions) == 6 - stats["shortfall"]  # the union, shortfalls summed

    status = json.loads(synthgen("status", "-o", str(out), "--json").stdout)
    assert [s["state"] for s in status["shards"].values()] == ["DONE"] * 3
    assert status["gather"]["state"] == "COMPLETED"
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
        if states[0] == states[2] == "DONE" and report["gather"]["state"] == "CANCELLED":
            break
        assert time.monotonic() < deadline, f"unexpected states {states} / gather {report['gather']}"
        time.sleep(1)
    assert states[1] == "CANCELLED"

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
