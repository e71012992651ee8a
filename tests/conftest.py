"""Shared fixtures: one real embedded model server per test session, and tiny run configs."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Set before datasets is imported. datasets 5.2 keys its cache of a local folder with a dataset card by the folder's name
# and card, not its files: a run folder named like one an earlier session loaded came back with that session's rows.
# Each test session (and xdist worker) gets its own cache.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="synthgen-tests-datasets-")
atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)

import pytest  # noqa: E402
import yaml  # noqa: E402

from generation.config import EmbeddedServerConfig  # noqa: E402
from generation.endpoints.embedded import EmbeddedServer, free_port  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL_ALIAS = "SmolLM2-135M-Instruct"


def load_bench_evaluator():
    """bench/evaluator.py as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_evaluator", REPO / "bench" / "evaluator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real llama-cpp-python server with the embedded SmolLM2 GGUF; yields its base URL."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with EmbeddedServer(EmbeddedServerConfig(n_threads=2), MODEL_ALIAS, log_path) as server:
        yield server.base_url


def tiny_config(tmp_path: Path, base_url: str | None, name: str = "tiny", **sections: dict) -> Path:
    """Write a tiny-profile run config (4 seeds -> 6 questions, short answers) and return its path."""
    config: dict = {
        "name": name,
        "seed": 7,
        "domain": "healthcare",
        "model": "smollm2-embedded",
        "dataset": {"path": "csv", "data_files": str(REPO / "configs/samples/healthcare.csv"), "column": "question"},
        "questions": {"seed_questions": 4, "target": 6, "max_attempts": 2, "sampling": {"max_tokens": 40}},
        "responses": {"max_attempts": 2, "max_words": 40, "sampling": {"max_tokens": 48}},
        "retry": {"max_retries": 2, "backoff_initial_s": 0.1, "backoff_max_s": 0.5},
        "evaluation": {"enabled": False},  # tests that check the evaluation stage turn it on
    }
    if base_url is not None:
        config["backend"] = {"engine": "endpoint", "base_url": base_url, "model": MODEL_ALIAS}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def synthgen(*args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (in the repository, unless ``cwd`` says otherwise)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "generation", *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd
    )


# ------------------------------------------------------------------ no test writes into the repository root

# What tools make in the root by themselves (pytest's cache, the environments `make venv` builds).
ROOT_TOOL_ENTRIES = {".pytest_cache", "__pycache__", ".venv", ".venv-swarm", ".venv-vllm", "build", "dist", "synthgen.egg-info"}


def _root_entries() -> set[str]:
    return {entry.name for entry in REPO.iterdir()}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_ROOT_BEFORE] = _root_entries()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a test left a new file or folder in the repository root (e.g. an sbatch
    output file or an ``outputs/`` folder written relative to the working directory)."""
    before = session.config.stash.get(_ROOT_BEFORE, None)
    if before is None:
        return
    new = sorted(_root_entries() - before - ROOT_TOOL_ENTRIES)
    if new:
        session.config.get_terminal_writer().line(
            f"FAILED: tests wrote into the repository root: {', '.join(new)} (write into tmp_path instead)", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_ROOT_BEFORE = pytest.StashKey[set[str]]()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1"
