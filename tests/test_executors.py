"""The executor interface on the local executor, and `synthgen status` / `gather` on run folders of any kind,
against the deterministic endpoint (no model needed): the plan record, the run lock (running vs stopped),
refusals while a run works in the folder, failed and responses-only runs, and run folders from before the
plan record. The Slurm executor itself runs in tests/test_slurm_submit.py."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, synthgen, tiny_config
from deterministic_endpoint import DeterministicEndpoint
from generation.executors.base import RunPlan, read_plan, run_status, write_plan_record
from generation.executors.slurm import job_task_state
from generation.run.layout import RUN_LOCK, RUN_PLAN

OLD_RUN = REPO / "tests" / "data" / "engine" / "old-run"


@pytest.fixture(scope="module")
def endpoint():
    with DeterministicEndpoint(latency=0.004) as ep:
        yield ep


def config(tmp_path: Path, base_url: str, **sections: dict) -> Path:
    return tiny_config(tmp_path, base_url, questions={"seed_questions": 6, "target": 12}, execution={"shards": 2, "chunk_rows": 1}, **sections)


def status_json(out: Path) -> dict:
    result = synthgen("status", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_local_run_records_its_plan_and_status_and_gather_read_it(endpoint: DeterministicEndpoint, tmp_path: Path):
    out = tmp_path / "run"
    result = synthgen("run", "-c", str(config(tmp_path, endpoint.base_url)), "-o", str(out), "--executor", "local")
    assert result.returncode == 0, result.stderr
    plan = json.loads((out / RUN_PLAN).read_text())
    assert plan["executor"] == "local" and plan["world_size"] == 2 and plan["stages"] == ["questions", "responses"]
    assert not (out / "submission.json").exists()

    report = status_json(out)
    summary = json.loads((out / "run_summary.json").read_text())
    markers = [json.loads((out / "shards" / f"{rank:05d}" / "done.json").read_text()) for rank in range(2)]
    assert report["executor"] == "local" and report["active"] is False
    assert report["shards"] == {
        str(rank): {"state": "done", "questions": m["rows"]["questions"], "pairs": m["rows"]["pairs"]} for rank, m in enumerate(markers)
    }
    assert report["gather"] == {"state": "done", "questions": summary["rows"]["questions"], "pairs": summary["rows"]["pairs"]}
    assert report["process"]["state"] == "completed" and report["process"]["pid"] != 0

    text = synthgen("status", "-o", str(out)).stdout
    assert "2 done" in text and "process     completed" in text and text.count("done ") >= 3

    # gather by hand, with no file that only the Slurm executor writes: the same published bytes
    published = {name: (out / name).read_bytes() for name in ("questions.csv", "questions_and_responses.csv")}
    again = synthgen("gather", "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert {name: (out / name).read_bytes() for name in published} == published


def wait_for(condition, timeout: float = 120, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_tells_a_running_local_run_from_a_killed_one_and_the_folder_is_refused_meanwhile(tmp_path: Path):
    with DeterministicEndpoint(latency=0.3) as slow:
        cfg = config(tmp_path, slow.base_url, backend={"max_concurrency": 1})
        out = tmp_path / "run"
        process = subprocess.Popen(
            [sys.executable, "-m", "generation", "run", "-c", str(cfg), "-o", str(out)], cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:

            def running_with_rows():
                if not (out / RUN_PLAN).is_file():
                    return None
                report = run_status(out)
                busy = [rank for rank, shard in report.shards.items() if shard.state == "running" and (shard.rows_done or 0) >= 1]
                return (report, busy[0]) if report.active and busy else None

            report, rank = wait_for(running_with_rows, what="a shard running with committed rows")
            slow.latency = 4.0  # one request at a time, up to 4 s each: the run outlasts the checks below
            assert report.process["state"] == "running" and report.process["pid"] == process.pid
            assert report.shards[rank].detail == f"pid {process.pid} on {report.process['host']}"
            assert [s.state for r, s in report.shards.items() if r != rank] == ["done" if rank else "pending"]
            assert report.gather.state == "pending"

            # nothing else may work in the folder meanwhile: a second run, even with --force (which would discard
            # the shards), a Slurm submission (refused before anything is submitted), a hand gather
            for args in (("run", "--set", "seed=9", "--force"), ("submit",)):
                refused = synthgen(*args, "-c", str(cfg), "-o", str(out))
                assert refused.returncode == 1, refused.stderr
                assert f"a local synthgen run (pid {process.pid} on" in refused.stderr and "still working in this folder" in refused.stderr
            refused = synthgen("gather", "-o", str(out))
            assert refused.returncode == 1 and "still working in this folder" in refused.stderr
            assert process.poll() is None, "the run ended before the checks were done; they proved nothing"
            assert (out / "shards" / f"{rank:05d}" / "chunks.json").is_file()
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

        report = status_json(out)
        assert report["active"] is False and report["process"]["state"] == "stopped"
        shard = report["shards"][str(rank)]
        assert shard["state"] == "partial" and shard["rows_done"] >= 1 and "stopped without finishing" in shard["detail"]
        assert report["gather"] == {"state": "pending"}
        assert "process     stopped (pid" in synthgen("status", "-o", str(out)).stdout

        refused = synthgen("gather", "-o", str(out))  # not running any more, but not complete either
        assert refused.returncode == 1 and "shard(s) are not complete" in refused.stderr


def test_a_failed_local_run_names_the_shard_and_the_error(tmp_path: Path, dead_url: str):
    cfg = config(tmp_path, dead_url, retry={"max_retries": 1, "backoff_initial_s": 0.05, "backoff_max_s": 0.1})
    out = tmp_path / "run"
    result = synthgen("run", "-c", str(cfg), "-o", str(out))
    assert result.returncode == 1
    report = status_json(out)
    assert report["process"]["state"] == "failed" and report["active"] is False
    assert report["shards"]["0"]["state"] == "failed" and "primary backend" in report["shards"]["0"]["detail"]
    assert report["shards"]["1"] == {"state": "pending"} and report["gather"]["state"] == "pending"


def test_a_responses_only_run_and_a_folder_without_a_plan_record(endpoint: DeterministicEndpoint, tmp_path: Path):
    questions = tmp_path / "questions.csv"
    questions.write_text("question\nhow is gout treated in older adults?\nwhat causes migraines in teenagers?\n"
                         "can yoga lower blood pressure?\n", encoding="utf-8")  # fmt: skip
    out = tmp_path / "run"
    result = synthgen("responses", "-c", str(config(tmp_path, endpoint.base_url)), "-o", str(out), "--questions", str(questions))
    assert result.returncode == 0, result.stderr
    report = status_json(out)
    assert report["stages"] == ["responses"] and report["gather"]["state"] == "done"
    assert [s["state"] for s in report["shards"].values()] == ["done", "done"]
    plan, executor = read_plan(out)

    # A folder from before run_plan.json: the saved config and the shard folder say the same.
    (out / RUN_PLAN).unlink()
    assert read_plan(out) == (plan, executor)
    assert status_json(out)["shards"] == report["shards"]


def test_status_and_gather_of_a_run_folder_from_before_the_plan_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shutil.copytree(OLD_RUN, tmp_path / "old-run")
    monkeypatch.chdir(tmp_path / "old-run")  # its config names the dataset as a relative path
    out = Path("run")
    assert not (out / RUN_PLAN).exists() and not (out / RUN_LOCK).exists()
    report = run_status(out)
    assert report.executor == "local" and report.world_size == 2 and report.process is None
    assert [s.state for s in report.shards.values()] == ["done", "done"]
    (out / "shards" / "00001" / "done.json").unlink()
    report = run_status(out)
    assert report.shards[0].state == "done" and report.shards[1].state == "pending"
    refused = synthgen("gather", "-o", str(out), cwd=tmp_path / "old-run")
    assert refused.returncode == 1 and "1 of 2 shard(s) are not complete" in refused.stderr


def test_status_of_a_slurm_run_folder_where_slurm_cannot_be_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shutil.copytree(OLD_RUN, tmp_path / "old-run")
    monkeypatch.chdir(tmp_path / "old-run")
    out = Path("run")
    plan, _ = read_plan(out)
    write_plan_record(plan, "slurm")
    record = {**plan.record("slurm"), "shard_jobs": {"0": "41_0", "1": "41_1"}, "gather_job_id": "42", "log_folder": "slurm-logs"}
    (out / "submission.json").write_text(json.dumps({"submissions": [record]}), encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path))  # e.g. the folder copied to a machine without Slurm: no sacct
    report = run_status(out)
    assert report.executor == "slurm" and [s.state for s in report.shards.values()] == ["done", "done"]
    assert len(report.notes) == 1 and "slurm executor" in report.notes[0] and "sacct" in report.notes[0]


def test_status_of_a_folder_that_is_not_a_run_folder(tmp_path: Path):
    result = synthgen("status", "-o", str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip() == f"synthgen: error: {tmp_path}: not a run folder (no run_plan.json and no config.yaml)"


def test_plan_records_round_trip(tmp_path: Path):
    from generation.run.layout import ShardLayout

    plan = RunPlan(("responses",), tmp_path / "q.csv", ShardLayout(tmp_path, ("responses",)), "abc123", 4)
    assert RunPlan.from_record(tmp_path, json.loads(json.dumps(plan.record("slurm")))) == plan


@pytest.mark.parametrize(
    ("job_state", "files_state", "expected"),
    [
        ("RUNNING", "partial", "running"), ("COMPLETING", "pending", "running"), ("PENDING", "pending", "pending"),
        ("REQUEUED", "partial", "partial"), ("CANCELLED", "partial", "failed"), ("TIMEOUT", "pending", "failed"),
        ("OUT_OF_MEMORY", "partial", "failed"), ("COMPLETED", "pending", "failed"),
    ],
)  # fmt: skip
def test_a_slurm_job_state_becomes_a_task_state(job_state: str, files_state: str, expected: str):
    assert job_task_state(job_state, files_state) == expected
