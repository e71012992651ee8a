"""The CLI contract: version, help, config show, dry run, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import synthgen, tiny_config
from generation import __version__


def test_version_and_help():
    result = synthgen("--version")
    assert result.returncode == 0 and __version__ in result.stdout
    result = synthgen("--help")
    assert result.returncode == 0
    for command in ("run", "questions", "responses", "serve-local", "config"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout
    assert "--dry-run" in synthgen("run", "--help").stdout


def test_config_show_prints_the_effective_secret_free_config(tmp_path: Path):
    secret = "sk-test-0123456789abcdefSECRET"
    result = synthgen(
        "config", "show", "--format", "json", "--set", "fallback.enabled=true", "--set", "questions.target=99",
        env={"OPENAI_API_KEY": secret},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["questions"]["target"] == 99
    assert shown["fallback"]["backend"]["api_key_env"] == "OPENAI_API_KEY"
    assert secret not in result.stdout + result.stderr


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path):
    result = synthgen("run", "--set", "questions.bogus=1")
    assert result.returncode == 2
    assert result.stderr.strip() == "synthgen: error: --set: questions.bogus: unknown key"
    result = synthgen("run", "-c", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "missing.yaml: config file not found" in result.stderr


def test_missing_dataset_column_is_one_line_and_nothing_is_written(tmp_path: Path, dead_url: str):
    data = tmp_path / "q.csv"
    data.write_text("text\nwhat causes gout\n", encoding="utf-8")
    config = tiny_config(tmp_path, dead_url, dataset={"data_files": str(data)})
    out = tmp_path / "run"
    result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("synthgen: error: ")
    assert "no column 'question'" in result.stderr
    assert not (out / "questions.csv").exists()


def test_dry_run_estimates_without_calling_the_model(tmp_path: Path, dead_url: str):
    config = tiny_config(tmp_path, dead_url)
    result = synthgen("run", "--dry-run", "-c", str(config), "-o", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["synthetic_questions"] == 2 and report["questions_total"] == 6
    assert report["requests"] == {"without_retries": 2 + 12, "at_most": 2 * 2 + 12 * 2}
    assert report["completion_tokens_at_most"] == 2 * 40 + 12 * 48
    assert report["time_s_at_most_without_retries"] > 0
    assert not (tmp_path / "run").exists()


def test_dry_run_of_the_default_config_checks_the_embedded_model():
    result = synthgen("run", "--dry-run")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["engine"] == "embedded" and report["questions_total"] == 40


def test_unreachable_primary_without_fallback_fails_cleanly(tmp_path: Path, dead_url: str):
    config = tiny_config(tmp_path, dead_url, retry={"max_retries": 1, "backoff_initial_s": 0.05, "backoff_max_s": 0.1})
    out = tmp_path / "run"
    result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("synthgen: error: primary backend") and "no fallback is enabled" in last
    assert not (out / "questions.csv").exists()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "failed"


def test_enabled_fallback_without_its_key_fails_before_work(tmp_path: Path, dead_url: str):
    config = tiny_config(tmp_path, dead_url, fallback={"enabled": True, "model": "openai-gpt-4o-mini"})
    result = synthgen("run", "-c", str(config), "-o", str(tmp_path / "run"), env={"OPENAI_API_KEY": ""})
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
