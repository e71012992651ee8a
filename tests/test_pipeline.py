"""End-to-end runs of the real CLI against the real embedded model server."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MODEL_ALIAS, REPO, synthgen, tiny_config
from generation.config import EmbeddedServerConfig
from generation.endpoints.embedded import EmbeddedServer

pytestmark = pytest.mark.model


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_run_folder(out: Path, target: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Assertions every successful run folder must satisfy; returns (questions, pairs)."""
    q_fields, questions = read_csv(out / "questions.csv")
    assert q_fields == ["question", "source_question", "modification", "origin"]
    assert 0 < len(questions) <= target
    assert {row["origin"] for row in questions} <= {"seed", "synthetic"}
    assert all(row["question"].strip() for row in questions)
    assert len({row["question"] for row in questions}) == len(questions)
    for row in questions:
        if row["origin"] == "synthetic":
            assert row["modification"] and row["source_question"] != row["question"]

    p_fields, pairs = read_csv(out / "questions_and_responses.csv")
    assert p_fields == ["prompt", "chosen", "rejected"]
    assert pairs, "no preference pairs were produced"
    assert all(value.strip() for row in pairs for value in row.values()), "empty cell"
    assert {row["prompt"] for row in pairs} <= {row["question"] for row in questions}

    conversational = read_jsonl(out / "questions_and_responses.jsonl")
    assert [c["prompt"][0]["content"] for c in conversational] == [p["prompt"] for p in pairs]
    assert [c["chosen"] for c in conversational] == [[{"role": "assistant", "content": p["chosen"]}] for p in pairs]
    assert [c["rejected"][0]["content"] for c in conversational] == [p["rejected"] for p in pairs]
    provenance = read_jsonl(out / "questions_and_responses.provenance.jsonl")
    assert [p["row"] for p in provenance] == list(range(len(pairs)))
    assert [p["prompt"] for p in provenance] == [p["prompt"] for p in pairs]

    import datasets

    loaded = datasets.load_dataset("csv", data_files=str(out / "questions_and_responses.csv"), split="train")
    assert loaded.num_rows == len(pairs) and loaded.column_names == ["prompt", "chosen", "rejected"]
    loaded = datasets.load_dataset("json", data_files=str(out / "questions_and_responses.jsonl"), split="train")
    assert loaded.num_rows == len(pairs)

    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["stages"]["questions"]["rows_out"] == len(questions)
    assert summary["stages"]["responses"]["rows_out"] == len(pairs)
    assert sum(u["total"]["completion_tokens"] + u["total"]["cache_hits"] for u in summary["usage"].values()) > 0
    assert (out / "config.yaml").is_file() and (out / "dropped.csv").is_file()
    return questions, pairs


def test_run_end_to_end_and_resume_from_cache(model_server: str, tmp_path: Path):
    config = tiny_config(tmp_path, model_server)
    out = tmp_path / "run"
    result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    questions, pairs = check_run_folder(out, target=6)
    assert [row["origin"] for row in questions[:4]] == ["seed"] * 4
    assert "Run summary" in result.stderr and str(out) in result.stderr

    # A rerun into the same folder skips the complete shard and republishes the same rows.
    first_questions = (out / "questions.csv").read_bytes()
    first_pairs = (out / "questions_and_responses.csv").read_bytes()
    again = synthgen("run", "-c", str(config), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "run_summary.json").read_text())["shards_skipped"] == 1
    assert (out / "questions.csv").read_bytes() == first_questions
    assert (out / "questions_and_responses.csv").read_bytes() == first_pairs

    # A shard that died before its completion marker is redone from the request cache: no model calls.
    (out / "shards" / "00000" / "done.json").unlink()
    resumed = synthgen("run", "-c", str(config), "-o", str(out))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["shards_skipped"] == 0
    usage = summary["usage"]["primary"]["total"]
    assert usage["requests"] == 0 and usage["cache_hits"] > 0
    assert (out / "questions.csv").read_bytes() == first_questions
    assert (out / "questions_and_responses.csv").read_bytes() == first_pairs

    # The same folder with another config is refused, unless --force.
    changed = synthgen("run", "-c", str(config), "-o", str(out), "--set", "seed=8")
    assert changed.returncode == 2 and "different config" in changed.stderr


def test_same_seed_same_choices_without_cache(model_server: str, tmp_path: Path):
    config = tiny_config(tmp_path, model_server, cache={"enabled": False}, questions={"seed_questions": 3, "target": 4})
    runs = []
    for name in ("a", "b"):
        result = synthgen("questions", "-c", str(config), "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        runs.append(read_csv(tmp_path / name / "questions.csv")[1])
        dropped = read_csv(tmp_path / name / "dropped.csv")[1]
        runs[-1].extend(dropped)  # rejected candidates carry their modification too
    assert [(r.get("source_question"), r.get("modification")) for r in runs[0]] == [
        (r.get("source_question"), r.get("modification")) for r in runs[1]
    ]


def test_responses_stage_on_user_questions(model_server: str, tmp_path: Path):
    questions = tmp_path / "mine.csv"
    questions.write_text('question,notes\n"is it safe to take ibuprofen, aspirin and tylenol together?",x\n"what does ""borderline"" cholesterol mean?",y\n', encoding="utf-8")
    config = tiny_config(tmp_path, model_server)
    out = tmp_path / "run"
    result = synthgen("responses", "-c", str(config), "-o", str(out), "--questions", str(questions))
    assert result.returncode == 0, result.stderr
    fields, pairs = read_csv(out / "questions_and_responses.csv")
    assert fields == ["prompt", "chosen", "rejected"]
    assert {p["prompt"] for p in pairs} <= {
        "is it safe to take ibuprofen, aspirin and tylenol together?",
        'what does "borderline" cholesterol mean?',
    }
    assert not (out / "questions.csv").exists()


def test_embedded_engine_starts_and_stops_its_own_server(tmp_path: Path):
    config = tiny_config(tmp_path, None, questions={"seed_questions": 2, "target": 3}, responses={"sampling": {"max_tokens": 32}})
    out = tmp_path / "run"
    result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    check_run_folder(out, target=3)
    port = json.loads((out / "run_summary.json").read_text())["usage"]["primary"]["endpoint"].split(":")[-1].split("/")[0]
    leftover = subprocess.run(["pgrep", "-f", f"llama_cpp.server.*--port {port}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "the embedded server outlived the run"
    assert (out / "shards" / "00000" / "logs" / "embedded-server.log").is_file()


def test_strict_shortfall_still_publishes(model_server: str, tmp_path: Path):
    # Filters nothing can pass: every synthetic slot gives up, the seeds are still published.
    config = tiny_config(tmp_path, model_server, questions={"seed_questions": 2, "target": 4, "max_attempts": 1,
                                                             "filters": {"min_words": 29, "max_words": 30}})  # fmt: skip
    out = tmp_path / "run"
    result = synthgen("questions", "-c", str(config), "-o", str(out), "--strict")
    assert result.returncode == 3, result.stderr
    assert "SHORTFALL" in result.stderr
    _, rows = read_csv(out / "questions.csv")
    assert [r["origin"] for r in rows] == ["seed", "seed"]
    _, dropped = read_csv(out / "dropped.csv")
    assert len(dropped) == 2 and all(d["stage"] == "questions" and d["reason"] for d in dropped)
    # without --strict the same shortfall is a warning and exit 0
    assert synthgen("questions", "-c", str(config), "-o", str(out)).returncode == 0


def test_fallback_when_primary_is_unreachable(model_server: str, tmp_path: Path, dead_url: str):
    fallback_model = tmp_path / "local-fallback.yaml"
    fallback_model.write_text(f"backend: {{engine: endpoint, model: {MODEL_ALIAS}, base_url: '{model_server}'}}\n")
    config = tiny_config(
        tmp_path, dead_url, questions={"seed_questions": 2, "target": 3},
        fallback={"enabled": True, "model": str(fallback_model)},
    )  # fmt: skip
    out = tmp_path / "run"
    result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "FALLBACK" in result.stderr
    _, pairs = check_run_folder(out, target=3)
    provenance = read_jsonl(out / "questions_and_responses.provenance.jsonl")
    assert provenance and all(p["fallback_used"] and p["chosen_backend"] == "fallback" for p in provenance)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["fallback_used"] is True
    assert summary["usage"]["fallback"]["total"]["requests"] > 0


def test_fallback_when_primary_dies_mid_run(model_server: str, tmp_path: Path):
    """Two real servers: the primary is killed once the answer stage starts; answers move to the fallback."""
    fallback_model = tmp_path / "local-fallback.yaml"
    fallback_model.write_text(f"backend: {{engine: endpoint, model: {MODEL_ALIAS}, base_url: '{model_server}'}}\n")
    primary = EmbeddedServer(EmbeddedServerConfig(n_threads=1), MODEL_ALIAS, tmp_path / "primary.log").start()
    try:
        config = tiny_config(
            tmp_path, primary.base_url, questions={"seed_questions": 3, "target": 4},
            fallback={"enabled": True, "model": str(fallback_model)},
        )  # fmt: skip
        out = tmp_path / "run"
        process = subprocess.Popen(
            [sys.executable, "-m", "generation", "run", "-c", str(config), "-o", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=os.environ.copy(),
        )  # fmt: skip
        shard_log = out / "shards" / "00000" / "logs" / "synthgen.log"
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if shard_log.is_file() and "step chosen: first row accepted" in shard_log.read_text(encoding="utf-8"):
                break
            time.sleep(0.05)
        primary.stop()
        stdout, stderr = process.communicate(timeout=300)
    finally:
        primary.stop()
    assert process.returncode == 0, stderr
    assert "FALLBACK" in stderr
    questions, pairs = check_run_folder(out, target=4)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["usage"]["primary"]["total"]["requests"] > 0  # the primary did the question stage
    assert summary["usage"]["fallback"]["total"]["requests"] > 0
    provenance = read_jsonl(out / "questions_and_responses.provenance.jsonl")
    assert any(p["fallback_used"] for p in provenance)
    # nothing lost: every question has a pair unless its answers were dropped for a stated reason
    dropped_questions = summary["stages"]["responses"]["questions_dropped"]
    assert len(pairs) + dropped_questions == len(questions)


def test_local_shards_and_gather_refuses_inconsistent_shard_files(model_server: str, tmp_path: Path):
    """`run` with 2 shards in-process; a shard whose files disagree with its marker is refused."""
    config = tiny_config(tmp_path, model_server, questions={"seed_questions": 2, "target": 3}, execution={"shards": 2})
    out = tmp_path / "run"
    assert synthgen("run", "-c", str(config), "-o", str(out)).returncode == 0
    shard_questions = out / "shards" / "00001" / "questions.csv"
    _, rows = read_csv(shard_questions)
    with open(shard_questions, "a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow([rows[0][k] for k in ("question", "source_question", "modification", "origin", "qid")])
    result = synthgen("gather", "-o", str(out))
    assert result.returncode == 1
    assert "but the marker says" in result.stderr and len(result.stderr.strip().splitlines()) == 1
