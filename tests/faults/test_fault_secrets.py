"""API keys come only from the environment and never land anywhere the project writes: run folder,
logs, caches, saved configs, error messages, sbatch scripts and Submitit pickles. Fake but plausible
keys are put in the environment, the job runs, and every written byte is searched for them."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from conftest import synthgen, tiny_config
from faults_support import clean_run, fault_config, model_memo, one_line_error, proxy  # noqa: F401


def fake_keys() -> dict[str, str]:
    """Plausible-looking keys (OpenAI project key, HF token, a custom endpoint key), random per test."""
    return {
        "OPENAI_API_KEY": "sk-proj-" + secrets.token_urlsafe(48),
        "HF_TOKEN": "hf_" + secrets.token_hex(17),
        "SYNTHGEN_ENDPOINT_KEY": "sk-" + secrets.token_hex(24),
        "ACME_LLM_AUTH": "acme-" + secrets.token_hex(20),  # a name that does not look secret: masked because api_key_env names it
    }


def leaks(keys: dict[str, str], *places: Path | str) -> list[str]:
    """Every (file or text, variable) where a key value (or its first 16 characters) appears."""
    found = []
    needles = {name: value.encode() for name, value in keys.items()} | {f"{n} prefix": v[:16].encode() for n, v in keys.items()}
    for place in places:
        if isinstance(place, str):
            blobs = [("output", place.encode())]
        else:
            blobs = [(str(p), p.read_bytes()) for p in sorted(place.rglob("*")) if p.is_file()]
        for where, blob in blobs:
            found += [f"{where}: {name}" for name, needle in needles.items() if needle in blob]
    return found


@pytest.mark.model
def test_keys_in_the_environment_reach_the_endpoint_and_nothing_else(model_server: str, model_memo: dict, clean_run: Path, tmp_path: Path):
    keys = fake_keys()
    with proxy(model_server, model_memo) as endpoint:
        config = fault_config(
            tmp_path, endpoint.base_url, backend={"api_key_env": "SYNTHGEN_ENDPOINT_KEY"},
            fallback={"enabled": True, "model": "openai-gpt-4o-mini"},  # resolved (needs OPENAI_API_KEY), never called
        )  # fmt: skip
        out = tmp_path / "run"
        result = synthgen("-v", "run", "-c", str(config), "-o", str(out), env=keys)
    assert result.returncode == 0, result.stderr
    assert f"Bearer {keys['SYNTHGEN_ENDPOINT_KEY']}" in endpoint.auth_headers  # the key was really used
    assert (out / "shards" / "00000" / "cache" / "requests.sqlite").is_file()
    assert leaks(keys, out, result.stdout, result.stderr) == []
    assert "api_key_env: SYNTHGEN_ENDPOINT_KEY" in (out / "config.yaml").read_text()

    # Commands that print config or plans do not show them either.
    for args in (["config", "show", "-c", str(config)], ["run", "--dry-run", "-c", str(config)]):
        shown = synthgen(*args, env=keys)
        assert shown.returncode == 0, shown.stderr
        assert leaks(keys, shown.stdout, shown.stderr) == []


def test_a_provider_error_that_echoes_the_key_is_masked(tmp_path: Path):
    """Some providers repeat the key in a 401 message ("Incorrect API key provided: sk-..."); it is masked
    in the error line, the run summary and the logs."""
    from faulty_endpoint import FaultyEndpoint

    keys = fake_keys()
    with FaultyEndpoint(default="auth-echo") as endpoint:
        config = tiny_config(tmp_path, endpoint.base_url, backend={"api_key_env": "ACME_LLM_AUTH"})
        out = tmp_path / "run"
        result = synthgen("run", "-c", str(config), "-o", str(out), env=keys)
    assert endpoint.auth_headers and all(h == f"Bearer {keys['ACME_LLM_AUTH']}" for h in endpoint.auth_headers)
    assert result.returncode == 1, result.stderr
    line = one_line_error(result.stderr)
    assert "HTTP 401" in line and "Incorrect API key provided: ***" in line, line
    assert leaks(keys, out, result.stdout, result.stderr) == []


def _slurm_up() -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slurm
def test_submit_writes_no_key_into_scripts_pickles_or_logs(model_server: str, tmp_path: Path):
    if not _slurm_up():
        pytest.fail("the local Slurm cluster is not running (slurm/dev-cluster.sh start)")
    keys = fake_keys()
    config = tiny_config(
        tmp_path, model_server, name="secret-submit", questions={"seed_questions": 2, "target": 3},
        backend={"api_key_env": "SYNTHGEN_ENDPOINT_KEY"}, fallback={"enabled": True, "model": "openai-gpt-4o-mini"},
        execution={"shards": 2, "slurm": {"cpus_per_task": 1, "time_limit_min": 10}},
    )  # fmt: skip
    out = tmp_path / "run"
    result = synthgen("submit", "-c", str(config), "-o", str(out), "--wait", env=keys)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = out / "slurm-logs"
    written = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert any(name.endswith(".pkl") for name in written) and any(name.endswith(".sh") for name in written), written
    assert leaks(keys, out, result.stdout, result.stderr) == []
    # The tasks read the key from their environment (api_key_env is resolved before any work), or they would have failed.
    assert all((out / "shards" / f"{rank:05d}" / "done.json").is_file() for rank in range(2))
