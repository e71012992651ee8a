"""The pipeline itself killed with SIGKILL mid-run, then resumed: nothing lost, nothing duplicated, the
surviving rows unchanged; and damaged caches, markers and shard files detected and rebuilt, not trusted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, synthgen
from faults_support import PUBLISHED, assert_same_rows, clean_run, copy_run, fault_config, model_memo, no_temporary_files, proxy  # noqa: F401

pytestmark = pytest.mark.model


def cached_requests(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]


def test_sigkill_mid_answers_then_resume_loses_and_duplicates_nothing(model_server: str, model_memo: dict, clean_run: Path, tmp_path: Path):
    out = tmp_path / "run"
    shard = out / "shards" / "00000"
    # Replies come from the clean run's memo, slowed down so that the kill lands in the answer stage.
    with proxy(model_server, model_memo, default="slow:0.4") as endpoint:
        config = fault_config(tmp_path, endpoint.base_url)
        process = subprocess.Popen(
            [sys.executable, "-m", "generation", "run", "-c", str(config), "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=os.environ.copy(),
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            log = shard / "logs" / "synthgen.log"
            if log.is_file() and "step chosen: first row accepted" in log.read_text(encoding="utf-8"):
                break
            time.sleep(0.05)
        time.sleep(1.0)  # a few answers finish
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    # Killed: no completion marker, nothing published, no half-written file under a published name.
    assert not (shard / "done.json").exists()
    for name in PUBLISHED:
        assert not (out / name).exists()
    finished = cached_requests(shard / "cache" / "requests.sqlite")
    assert finished > 3  # the probe, the question stage and some answers

    with proxy(model_server, model_memo) as endpoint:
        config = fault_config(tmp_path, endpoint.base_url)
        result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"resuming: {finished} finished request(s)" in result.stderr
    summary = json.loads((out / "run_summary.json").read_text())
    total = summary["usage"]["primary"]["total"]
    assert total["cache_hits"] >= finished - 1  # everything finished before the kill (except the probe) came from the cache
    sent_again = [body for body in endpoint.requests if body["messages"][-1]["content"] != "Say OK."]
    assert len(sent_again) == total["requests"]
    assert_same_rows(out, clean_run)
    assert no_temporary_files(out) == []


def _garbage_cache(shard: Path) -> None:
    (shard / "cache" / "requests.sqlite").write_bytes(b"\x00garbage, not SQLite\xff" * 500)


def _truncated_cache(shard: Path) -> None:
    path = shard / "cache" / "requests.sqlite"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _garbage_marker(shard: Path) -> None:
    (shard / "done.json").write_text('{"rank": 0, "fingerpr', encoding="utf-8")


def _truncated_pairs(shard: Path) -> None:
    path = shard / "pairs.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edited_pairs(shard: Path) -> None:
    """Same number of lines, one answer silently changed: only the marker's digest can tell."""
    path = shard / "pairs.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    records[0]["chosen"] = "Tampered answer."
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _deleted_questions(shard: Path) -> None:
    (shard / "questions.csv").unlink()


DAMAGE = {
    "garbage cache": (_garbage_cache, "request cache", True),
    "truncated cache": (_truncated_cache, "request cache", True),
    "garbage marker": (_garbage_marker, "completion marker", False),
    "truncated pairs.jsonl": (_truncated_pairs, "changed after its completion marker", False),
    "edited pairs.jsonl": (_edited_pairs, "changed after its completion marker", False),
    "deleted questions.csv": (_deleted_questions, "changed after its completion marker", False),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_file_is_detected_and_rebuilt(damage: str, model_server: str, model_memo: dict, clean_run: Path, tmp_path: Path):
    damage_func, warning, redo_shard = DAMAGE[damage]
    out = copy_run(clean_run, tmp_path / "run")
    shard = out / "shards" / "00000"
    if redo_shard:
        (shard / "done.json").unlink()  # a cache is only read by an incomplete shard
    damage_func(shard)
    with proxy(model_server, model_memo) as endpoint:
        config = fault_config(tmp_path, endpoint.base_url)
        result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert warning in result.stderr and "WARNING" in result.stderr
    assert_same_rows(out, clean_run)
    marker = json.loads((shard / "done.json").read_text())
    assert marker["rows"]["pairs"] == len((shard / "pairs.jsonl").read_text().splitlines())
    if damage.endswith("cache"):
        assert list((shard / "cache").glob("requests.sqlite.corrupt-*")), "the damaged cache was not set aside"
    else:  # the shard was redone from its (intact) cache: no model request
        assert json.loads((out / "run_summary.json").read_text())["usage"]["primary"]["total"]["requests"] == 0


def test_gather_refuses_a_shard_whose_files_changed(clean_run: Path, tmp_path: Path):
    out = copy_run(clean_run, tmp_path / "run")
    _edited_pairs(out / "shards" / "00000")
    before = {name: (out / name).read_bytes() for name in PUBLISHED}
    result = synthgen("gather", "-o", str(out))
    assert result.returncode == 1
    assert "pairs.jsonl changed after the shard finished" in result.stderr
    assert {name: (out / name).read_bytes() for name in PUBLISHED} == before
