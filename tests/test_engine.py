"""The streaming engine end to end, against a deterministic endpoint with random latency (no model needed):
the same files whatever the in-flight limit or chunking, chunk resume after SIGKILL, near-duplicates across
shards, run folders made before the engine, and the streaming writers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rapidfuzz import fuzz

from conftest import REPO
from deterministic_endpoint import DeterministicEndpoint
from generation.config import load_config, load_saved_config
from generation.errors import SynthgenError
from generation.pipeline import gather_shards, plan_run, run_pipeline
from generation.shards import STAGES, config_fingerprint

OLD_RUN = REPO / "tests" / "data" / "engine" / "old-run"
PUBLISHED = (
    "questions.csv", "questions_and_responses.csv", "questions_and_responses.jsonl", "questions_and_responses.provenance.jsonl",
    "dropped.csv", "questions_and_responses.parquet", "questions_and_responses.conversational.parquet",
)  # fmt: skip
TIMING = {"near_duplicate_s", "engine", "elapsed_ms"}


@pytest.fixture(scope="module")
def endpoint():
    with DeterministicEndpoint(latency=0.004) as ep:
        yield ep


def overrides(base_url: str, **extra: object) -> list[str]:
    values = {
        "backend.engine": "endpoint", "backend.base_url": base_url, "backend.model": "det", "backend.max_concurrency": 8,
        "dataset.data_files": str(REPO / "configs/samples/healthcare.csv"), "questions.seed_questions": 60, "questions.target": 150,
        "questions.max_attempts": 3, "responses.max_attempts": 2, "evaluation.enabled": False, "seed": 3,
        "retry.max_retries": 2, "retry.backoff_initial_s": 0.05, "retry.backoff_max_s": 0.2,
    }  # fmt: skip
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items()]


def published(out: Path) -> dict[str, bytes]:
    """The published files; provenance without its ``endpoint`` (the port of the server that answered)."""
    files = {name: (out / name).read_bytes() for name in PUBLISHED}
    lines = [json.loads(line) for line in files["questions_and_responses.provenance.jsonl"].splitlines()]
    files["questions_and_responses.provenance.jsonl"] = json.dumps([{k: v for k, v in p.items() if k != "endpoint"} for p in lines]).encode()
    return files


def without_timing(data):
    if isinstance(data, dict):
        return {k: without_timing(v) for k, v in data.items() if k not in TIMING}
    return data


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_same_files_whatever_the_in_flight_limit_or_the_chunking(endpoint: DeterministicEndpoint, tmp_path: Path):
    reference = None
    for concurrency, chunk_rows in ((1, 1000), (8, 7), (512, 1)):
        cfg = load_config(REPO / "configs/default.yaml", overrides(endpoint.base_url, **{
            "backend.max_concurrency": concurrency, "execution.chunk_rows": chunk_rows}))  # fmt: skip
        out = tmp_path / f"c{concurrency}"
        # replies within 4 ms come back faster than 512 requests are sent. The endpoint shares this process (and
        # its GIL) with the client, so on a loaded CI machine sending is slow: 0-400 ms keeps well over 100 in flight
        endpoint.latency = 0.4 if concurrency == 512 else 0.004
        summary = run_pipeline(cfg, out, show_progress=False)
        files, stages = published(out), without_timing(summary["stages"])
        if reference is None:
            reference = (files, stages)
            # the run exercised the paths that depend on order: near-duplicates and retries of every kind
            reasons = {row["reason"] for row in read_csv(out / "dropped.csv")}
            assert {"near_duplicate", "chosen_too_short", "rejected_self_correction", "rejected_restates_chosen"} <= reasons
            assert summary["rows"]["pairs"] > 100
            continue
        assert files == reference[0], f"published files differ at {concurrency} in flight"
        assert stages == reference[1]
    # 512 in flight were asked for and the window got there
    assert endpoint.peak_in_flight > 100, f"at most {endpoint.peak_in_flight} requests were in flight"
    endpoint.latency = 0.004


def test_sigkill_mid_run_resumes_after_the_last_complete_chunk(tmp_path: Path):
    with DeterministicEndpoint(latency=0.004) as fast:
        reference = tmp_path / "reference"
        run_pipeline(load_config(REPO / "configs/default.yaml", overrides(fast.base_url)), reference, show_progress=False)
    with DeterministicEndpoint(latency=0.08) as slow:
        out = tmp_path / "run"
        command = [sys.executable, "-m", "generation", "run", "-o", str(out)]
        for item in overrides(slow.base_url, **{"execution.chunk_rows": 10}):
            command += ["--set", item]
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
        chunks = out / "shards" / "00000" / "chunks.json"
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if chunks.is_file() and json.loads(chunks.read_text())["chunks"] >= 3:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        at_kill = json.loads(chunks.read_text())
        sent_before = slow.total
        plan = plan_run(load_config(REPO / "configs/default.yaml", overrides(slow.base_url)), out, STAGES, None, False)
        assert plan.status() == {0: {"state": "partial", "chunks": at_kill["chunks"], "rows_done": at_kill["rows_consumed"]}}
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
        assert result.returncode == 0, result.stderr
        assert f"resuming after chunk {at_kill['chunks']}: {at_kill['rows_consumed']} row(s) already written" in result.stderr
        summary = json.loads((out / "run_summary.json").read_text())
        assert summary["stages"]["resume"]["rows_restored"] == at_kill["rows_consumed"]
        # nothing that finished before the kill was sent again, except what was in flight
        assert slow.resent() <= 8, (slow.resent(), sent_before)
    assert published(out) == published(reference)
    assert not (out / "shards" / "00000" / "chunks.json").exists()  # the completion marker replaced it
    assert plan.status()[0]["state"] == "done"


def test_gather_drops_near_duplicates_across_shards_and_accounts_for_them(endpoint: DeterministicEndpoint, tmp_path: Path):
    cfg = load_config(REPO / "configs/default.yaml", overrides(endpoint.base_url, **{"execution.shards": 3, "questions.target": 180}))
    out = tmp_path / "run"
    summary = run_pipeline(cfg, out, show_progress=False)
    dropped = [row for row in read_csv(out / "dropped.csv") if row["stage"] == "gather"]
    assert dropped and {row["reason"] for row in dropped} == {"near_duplicate_across_shards"}
    assert all(row["detail"].startswith("similar to: ") for row in dropped)
    questions = read_csv(out / "questions.csv")
    texts = [row["question"] for row in questions]
    synthetic = [row["question"] for row in questions if row["origin"] == "synthetic"]
    for text in synthetic:  # no synthetic question near-duplicates an earlier published one
        earlier = texts[: texts.index(text)]
        assert not any(fuzz.ratio(text, other) >= cfg.questions.filters.near_duplicate_ratio for other in earlier), text
    pairs = read_csv(out / "questions_and_responses.csv")
    stages = summary["stages"]
    assert summary["rows"]["questions"] == len(questions) == stages["questions"]["rows_out"]
    assert summary["rows"]["pairs"] == len(pairs) == stages["responses"]["rows_out"]
    assert stages["gather"]["near_duplicates_dropped"] == len(dropped)
    assert stages["questions"]["rejected_candidates"]["near_duplicate_across_shards"] == len(dropped)
    assert {p["prompt"] for p in pairs} <= set(texts)


def copy_old_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The run folder made by synthgen before the streaming engine (tests/data/engine/make_old_run.py)."""
    root = tmp_path / "old-run"
    shutil.copytree(OLD_RUN, root)
    monkeypatch.chdir(root)  # its config names the dataset as the relative path seeds.csv
    return root / "run"


def test_a_run_folder_from_before_the_engine_gathers_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoint: DeterministicEndpoint):
    out = copy_old_run(tmp_path, monkeypatch)
    cfg = load_saved_config(out / "config.yaml", [f"backend.base_url={endpoint.base_url}"])
    marker = json.loads((out / "shards" / "00000" / "done.json").read_text())
    assert config_fingerprint(cfg, STAGES) == marker["fingerprint"]  # new keys at their defaults change nothing
    before = published_old = {name: (OLD_RUN / "run" / name).read_bytes() for name in ("questions.csv", "questions_and_responses.csv", "questions_and_responses.jsonl")}
    for name in before:
        (out / name).unlink()
    gather_shards(cfg, out)
    assert {name: (out / name).read_bytes() for name in before} == published_old
    # a shard that never finished (no completion marker) is redone from its request cache
    (out / "shards" / "00001" / "done.json").unlink()
    sent = endpoint.total
    summary = run_pipeline(cfg, out, show_progress=False)
    assert summary["shards_skipped"] == 1
    assert summary["usage"]["primary"]["total"]["cache_hits"] > 0
    assert endpoint.total - sent <= 2  # at most the rejected answers the old engine never asked for
    assert {name: (out / name).read_bytes() for name in before} == published_old


@pytest.mark.parametrize("damage", ["extra row", "edited answer"])
def test_gather_refuses_shards_whose_files_disagree_with_their_marker(damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out = copy_old_run(tmp_path, monkeypatch)
    cfg = load_saved_config(out / "config.yaml")
    shard = out / "shards" / "00001"
    if damage == "extra row":
        with open(shard / "questions.csv", "a", encoding="utf-8") as handle:
            handle.write("an extra question,an extra question,,seed,seed-9999999\n")
        expected = "but the marker says"
    else:
        text = (shard / "pairs.jsonl").read_text(encoding="utf-8")
        (shard / "pairs.jsonl").write_text(text.replace('"chosen": "', '"chosen": "Tampered. ', 1), encoding="utf-8")
        expected = "pairs.jsonl changed after the shard finished"
    data = [p for p in out.iterdir() if p.suffix in (".csv", ".jsonl")]
    before = {p.name: p.read_bytes() for p in data}
    with pytest.raises(SynthgenError, match=expected):
        gather_shards(cfg, out)
    assert {p.name: p.read_bytes() for p in data} == before  # nothing published
    assert not list(out.glob(".*.tmp"))


def test_new_config_keys_at_their_defaults_keep_the_fingerprint():
    cfg = load_config(REPO / "configs/default.yaml")
    data = cfg.public_dict()
    for key in ("chunk_rows", "chunk_seconds"):
        del data["execution"][key]
    from generation.config import RunConfig

    assert config_fingerprint(RunConfig.model_validate(data), STAGES) == config_fingerprint(cfg, STAGES)
    changed = cfg.model_copy(update={"execution": cfg.execution.model_copy(update={"chunk_rows": 5, "chunk_seconds": 1.0})})
    assert config_fingerprint(changed, STAGES) == config_fingerprint(cfg, STAGES)  # chunking never changes content


def test_parquet_is_written_in_batches_and_reads_back_the_same(tmp_path: Path):
    import datasets

    from generation.io import write_parquet
    from generation.publish import _features, to_conversational

    rows = [{"prompt": f"q{i}, with a comma", "chosen": "line\nbreak", "rejected": 'a "quote"'} for i in range(25)]
    write_parquet(tmp_path / "a.parquet", iter(rows), _features(False), batch_rows=4)
    write_parquet(tmp_path / "b.parquet", (to_conversational(r) for r in rows), _features(True), batch_rows=7)
    write_parquet(tmp_path / "empty.parquet", iter([]), _features(False))
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "a.parquet"), split="train")
    assert loaded.to_list() == rows
    chat = datasets.load_dataset("parquet", data_files=str(tmp_path / "b.parquet"), split="train")
    assert chat.features == _features(True) and chat[3]["chosen"] == [{"role": "assistant", "content": "line\nbreak"}]
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_a_shard_writer_cuts_its_files_back_to_the_last_complete_chunk(tmp_path: Path):
    from generation.run.chunks import ShardWriter
    from generation.steps.common import DroppedRow

    def write_rows(writer: ShardWriter, start: int, count: int) -> None:
        for i in range(start, start + count):
            question = {"question": f"q{i}", "source_question": f"s{i}", "modification": "", "origin": "seed", "qid": f"seed-{i:07d}"}
            writer.write(question, {"prompt": f"q{i}", "chosen": "c", "rejected": "r", "provenance": {"qid": f"seed-{i:07d}"}},
                         [DroppedRow("responses", "chosen_too_short", "x", f"q{i}", "", 1)])  # fmt: skip

    writer = ShardWriter(tmp_path, "fp", chunk_rows=3, chunk_seconds=3600)
    assert writer.open() is None
    writer.snapshot = lambda: {"counters": {"rows": writer.rows_consumed}}
    write_rows(writer, 0, 7)  # chunks after rows 3 and 6; row 7 is not committed
    writer.close()  # as if killed
    resumed_writer = ShardWriter(tmp_path, "fp", chunk_rows=3, chunk_seconds=3600)
    state = resumed_writer.open()
    assert state is not None and state.chunks == 2 and state.rows_consumed == 6 and state.state == {"counters": {"rows": 6}}
    write_rows(resumed_writer, 6, 2)
    resumed_writer.commit()
    resumed_writer.finish()
    assert [row["question"] for row in read_csv(tmp_path / "questions.csv")] == [f"q{i}" for i in range(8)]
    assert len((tmp_path / "pairs.jsonl").read_text().splitlines()) == 8 == len(read_csv(tmp_path / "dropped.csv"))
    # another config's chunk marker is not trusted: the files start afresh
    other = ShardWriter(tmp_path, "another", chunk_rows=3, chunk_seconds=3600)
    assert other.open() is None
    other.close()
    assert read_csv(tmp_path / "questions.csv") == []
