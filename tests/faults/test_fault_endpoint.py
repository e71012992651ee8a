"""Faults from the model endpoint during real runs: HTTP errors, resets, slow and hung replies,
malformed and empty bodies, and the model server killed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MODEL_ALIAS, REPO, synthgen
from faults_support import assert_same_rows, clean_run, fault_config, model_memo, one_line_error, proxy, read_csv  # noqa: F401
from generation.config import EmbeddedServerConfig
from generation.endpoints.embedded import EmbeddedServer, free_port

pytestmark = pytest.mark.model

FAULTS = ["500", "429", "reset", "malformed", "slow:3", "hang", "503"]


def test_endpoint_faults_are_retried_and_change_no_published_row(model_server: str, model_memo: dict, clean_run: Path, tmp_path: Path):
    # Every reply is already memoised by the clean run, so a 1.5 s timeout only catches the injected hangs.
    with proxy(model_server, model_memo, script=list(FAULTS)) as endpoint:
        config = fault_config(tmp_path, endpoint.base_url, backend={"timeout_s": 1.5})
        out = tmp_path / "run"
        result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert_same_rows(out, clean_run)
    bodies = [json.dumps(body, sort_keys=True) for body in endpoint.requests]
    assert len(bodies) - len(set(bodies)) == len(FAULTS)  # each fault cost exactly one resend of the same request
    log = (out / "logs" / "synthgen.log").read_text(encoding="utf-8")
    for expected in ("HTTP 500", "HTTP 429", "HTTP 503", "timeout", "MalformedResponseError"):
        assert f"retrying primary request to {endpoint.base_url}" in log and expected in log, expected
    assert log.count("retrying primary request") == len(FAULTS)  # one retry per injected fault, none lost


def test_empty_replies_are_rejected_candidates_not_rows(model_server: str, model_memo: dict, clean_run: Path, tmp_path: Path):
    # After the readiness probe, the first requests are answers to the first seed questions (rows go in order,
    # seeds first, and both answers of a question are asked at once); two empty replies are rejected
    # candidates and those answers are asked again.
    with proxy(model_server, model_memo, script=["ok", "empty", "empty"]) as endpoint:
        config = fault_config(tmp_path, endpoint.base_url)
        out = tmp_path / "run"
        result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    dropped = read_csv(out / "dropped.csv")
    assert sum(1 for d in dropped if d["reason"] in ("chosen_empty", "rejected_empty") and d["text"] == "") == 2
    questions = read_csv(out / "questions.csv")
    pairs = read_csv(out / "questions_and_responses.csv")
    assert all(q["question"].strip() for q in questions)
    assert all(value.strip() for row in pairs for value in row.values())
    summary = json.loads((out / "run_summary.json").read_text())
    stats = summary["stages"]["questions"]
    assert stats["rows_out"] + stats["give_ups"] == 6 and len(questions) == stats["rows_out"]
    assert len(pairs) + summary["stages"]["responses"]["questions_dropped"] == len(questions)


def test_model_server_killed_mid_run_fails_in_one_line_and_the_rerun_resumes(tmp_path: Path):
    port = free_port()
    server_cfg = EmbeddedServerConfig(n_threads=1, port=port)
    config = fault_config(
        tmp_path, f"http://127.0.0.1:{port}/v1", questions={"seed_questions": 2, "target": 3},
        retry={"max_retries": 2, "backoff_initial_s": 0.05, "backoff_max_s": 0.1, "primary_cooldown_s": 0},
        backend={"timeout_s": 30},
    )  # fmt: skip
    out = tmp_path / "run"
    shard_log = out / "shards" / "00000" / "logs" / "synthgen.log"
    with EmbeddedServer(server_cfg, MODEL_ALIAS, tmp_path / "first.log") as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "generation", "run", "-c", str(config), "-o", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=os.environ.copy(),
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if shard_log.is_file() and "step chosen: first row accepted" in shard_log.read_text(encoding="utf-8"):
                break
            time.sleep(0.05)
        assert server.process is not None
        server.process.kill()  # SIGKILL: the server dies without closing anything cleanly
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    line = one_line_error(stderr)
    assert f"primary backend http://127.0.0.1:{port}/v1 failed" in line
    assert not (out / "questions_and_responses.csv").exists() and not (out / "questions.csv").exists()
    assert json.loads((out / "run_summary.json").read_text())["status"] == "failed"

    with EmbeddedServer(server_cfg, MODEL_ALIAS, tmp_path / "second.log"):
        result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "resuming:" in result.stderr
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["usage"]["primary"]["total"]["cache_hits"] >= 1  # the question stage was not asked again
    questions = read_csv(out / "questions.csv")
    pairs = read_csv(out / "questions_and_responses.csv")
    assert len({q["question"] for q in questions}) == len(questions)
    assert len({p["prompt"] for p in pairs}) == len(pairs)
    assert len(pairs) + summary["stages"]["responses"]["questions_dropped"] == len(questions)
