"""The pipeline as a real Slurm job on the local single-node cluster (slurm/dev-cluster.sh).

`make test` starts the cluster before this suite and stops it after (root only).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO, tiny_config
from test_pipeline import check_run_folder

pytestmark = pytest.mark.slurm
PYTHON = REPO / ".venv" / "bin" / "python"


def sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-j", job_id, "-n", "-P", "-X", "-o", "State"], capture_output=True, text=True, check=True)
    return out.stdout.strip().split(" ")[0]


def wait_for_state(job_id: str, states: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = sacct_state(job_id)
        if state in states:
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {state!r} after {timeout} s")


def job_config(tmp_path: Path, alias: str, **sections) -> Path:
    # The embedded engine: the job starts (and must stop) its own model server. A unique model alias
    # appears on the server's command line, so the test can look for stray server processes.
    return tiny_config(tmp_path, None, backend={"engine": "embedded", "model": alias}, **sections)


def test_pipeline_job_completes_with_accounting(tmp_path: Path):
    alias = f"smollm2-job-{uuid.uuid4().hex[:8]}"
    config = job_config(tmp_path, alias, questions={"seed_questions": 2, "target": 3})
    out = tmp_path / "run"
    submit = subprocess.run(
        ["sbatch", "--parsable", "--wait", "--cpus-per-task=2", f"--output={tmp_path}/job-%j.log", f"--chdir={REPO}",
         "--wrap", f"{PYTHON} jobs/generate.py -c {config} -o {out}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    job_id = submit.stdout.strip().split(";")[0]
    log = next(tmp_path.glob("job-*.log")).read_text() if list(tmp_path.glob("job-*.log")) else ""
    assert submit.returncode == 0, submit.stderr + log
    assert wait_for_state(job_id, {"COMPLETED", "FAILED", "CANCELLED"}) == "COMPLETED"
    check_run_folder(out, target=3)
    assert subprocess.run(["pgrep", "-f", alias], capture_output=True).returncode == 1  # no server left


def test_scancel_stops_the_jobs_model_server(tmp_path: Path):
    alias = f"smollm2-job-{uuid.uuid4().hex[:8]}"
    config = job_config(tmp_path, alias, questions={"seed_questions": 4, "target": 40, "max_attempts": 3})
    out = tmp_path / "run"
    submit = subprocess.run(
        ["sbatch", "--parsable", "--cpus-per-task=2", f"--output={tmp_path}/job-%j.log", f"--chdir={REPO}",
         "--wrap", f"{PYTHON} jobs/generate.py -c {config} -o {out}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    job_id = submit.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 180
    while not (out / "shards" / "00000" / "cache" / "requests.sqlite").exists():  # the server is up and answering
        assert time.monotonic() < deadline, "the job never started generating"
        time.sleep(0.2)
    assert subprocess.run(["pgrep", "-f", alias], capture_output=True).returncode == 0
    subprocess.run(["scancel", job_id], check=True)
    assert wait_for_state(job_id, {"CANCELLED", "COMPLETED", "FAILED"}) == "CANCELLED"
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-f", alias], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the job's model server survived scancel"
        time.sleep(0.5)
    assert not (out / "questions_and_responses.csv").exists()
