"""Helpers for the fault-injection suite: a memoising fault proxy in front of the real model server,
one clean reference run per session, and run-folder comparisons."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from conftest import synthgen, tiny_config
from faulty_endpoint import FaultyEndpoint

# What a run publishes and must never lose, duplicate or change.
PUBLISHED = ("questions.csv", "questions_and_responses.csv", "questions_and_responses.jsonl")


# Test modules import these fixtures, and pytest then runs a session fixture once per importing module;
# module-level state keeps it to one memo and one clean run per session.
_MEMO: dict[str, bytes] = {}
_CLEAN: dict[str, Path] = {}


@pytest.fixture(scope="session")
def model_memo(model_server: str) -> dict:
    """Model replies by request body, shared by every proxy of the session: the same request gets the same text."""
    return _MEMO


def proxy(model_server: str, memo: dict, script: list[str] | None = None, default: str = "ok") -> FaultyEndpoint:
    """A faulty endpoint that forwards "ok" requests to the real model server (memoised)."""
    endpoint = FaultyEndpoint(script, default=default, upstream=model_server)
    endpoint.memo = memo
    return endpoint


def fault_config(tmp_path: Path, base_url: str, name: str = "tiny", **sections: dict) -> Path:
    """The tiny profile with fast retries."""
    sections.setdefault("retry", {"max_retries": 8, "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "primary_cooldown_s": 0})
    return tiny_config(tmp_path, base_url, name=name, **sections)


@pytest.fixture(scope="session")
def clean_run(model_server: str, model_memo: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run through a fault-free proxy: the reference every faulty run must reproduce."""
    if model_server in _CLEAN:
        return _CLEAN[model_server]
    root = tmp_path_factory.mktemp("clean")
    with proxy(model_server, model_memo) as endpoint:
        config = fault_config(root, endpoint.base_url)
        out = root / "run"
        result = synthgen("run", "-c", str(config), "-o", str(out))
    assert result.returncode == 0, result.stderr
    _CLEAN[model_server] = out
    return out


def published(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in PUBLISHED}


def assert_same_rows(out: Path, reference: Path) -> None:
    """Nothing lost, nothing duplicated, every surviving row's content unchanged: byte-identical files."""
    for name in PUBLISHED:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), f"{name} differs from the reference run"
    pairs = read_csv(out / "questions_and_responses.csv")
    assert pairs and len({p["prompt"] for p in pairs}) == len(pairs), "duplicated prompt"
    provenance = [json.loads(line) for line in (out / "questions_and_responses.provenance.jsonl").read_text().splitlines()]
    assert [p["row"] for p in provenance] == list(range(len(pairs)))
    assert len({p["qid"] for p in provenance}) == len(provenance)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def copy_run(reference: Path, target: Path) -> Path:
    shutil.copytree(reference, target)
    return target


def one_line_error(stderr: str) -> str:
    """The error line; asserts it is a single line and no traceback was printed."""
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("synthgen: error:")]
    assert len(errors) == 1, stderr
    assert stderr.rstrip().splitlines()[-1] == errors[0], stderr
    return errors[0]


def no_temporary_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*.tmp"))
