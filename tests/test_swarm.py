"""Model endpoints as Slurm jobs through llm-swarm (.venv-swarm), on the local cluster (slurm/dev-cluster.sh).

The CPU template serves the embedded SmolLM2 GGUF with llama-cpp-python, one thread per server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from huggingface_hub import InferenceClient

from conftest import REPO
from generation.config import BackendConfig
from generation.endpoints.swarm import swarm_endpoints
from generation.endpoints.swarm_launcher import fill_template
from generation.errors import ServerStartError

pytestmark = pytest.mark.slurm
CPU_MODEL_FILE = REPO / "configs" / "models" / "smollm2-slurm-cpu.yaml"


def cpu_backend(alias: str, **swarm: object) -> BackendConfig:
    """The smollm2-slurm-cpu model file with a unique alias (it shows on the servers' command lines)."""
    data = yaml.safe_load(CPU_MODEL_FILE.read_text(encoding="utf-8"))["backend"]
    data["model"] = alias
    data["swarm"].update(swarm)
    return BackendConfig.model_validate(data)


def swarm_jobs(work_dir: Path) -> list[str]:
    """Jobs (any state) that squeue still lists and that were submitted from under work_dir, as 'id state'.

    The cluster may be shared with other test suites, so jobs are told apart by their working directory.
    """
    out = subprocess.run(["squeue", "-h", "-o", "%i %t %Z"], capture_output=True, text=True, check=True).stdout
    rows = [line.split(" ", 2) for line in out.splitlines()]
    return [f"{r[0]} {r[1]}" for r in rows if len(r) == 3 and Path(r[2]).is_relative_to(work_dir)]


def servers(alias: str) -> bool:
    return subprocess.run(["pgrep", "-f", f"llama_cpp.server.*{alias}"], capture_output=True).returncode == 0


def wait_until_gone(work_dir: Path, alias: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while swarm_jobs(work_dir) or servers(alias):
        assert time.monotonic() < deadline, f"left behind: jobs {swarm_jobs(work_dir)}, server running: {servers(alias)}"
        time.sleep(0.5)


def test_two_cpu_endpoints_answer_and_nothing_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    secrets = {"HF_TOKEN": f"hf_secret_{uuid.uuid4().hex}", "OPENAI_API_KEY": f"sk-secret-{uuid.uuid4().hex}"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)  # inherited by the launchers and the jobs
    alias = f"smol-swarm-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with swarm_endpoints(cpu_backend(alias, instances=2), tmp_path / "swarm") as urls:
        startup_s = time.monotonic() - started
        assert len(urls) == 2 and len(set(urls)) == 2 and all(u.endswith("/v1") for u in urls)
        running = swarm_jobs(tmp_path)
        assert len(running) == 2 and all(line.endswith(" R") for line in running), running
        for url in urls:
            reply = InferenceClient(base_url=url, timeout=60).chat_completion(
                messages=[{"role": "user", "content": "Name a fruit."}], model=alias, max_tokens=8, temperature=0
            )
            assert reply.choices[0].message.content.strip()
        pids = subprocess.run(["pgrep", "-f", f"llama_cpp.server.*{alias}"], capture_output=True, text=True).stdout.split()
        assert len(pids) == 2
        for pid in pids:  # the jobs get HF_TOKEN (gated models), never the API keys
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert f"HF_TOKEN={secrets['HF_TOKEN']}".encode() in environ
            assert not any(entry.startswith(b"OPENAI_API_KEY=") for entry in environ)
    print(f"2 endpoints ready in {startup_s:.1f} s")
    assert swarm_jobs(tmp_path) == []  # swarm_endpoints returns only once squeue lists none of its jobs
    wait_until_gone(tmp_path, alias, timeout=15)

    written = [p for p in (tmp_path / "swarm").rglob("*") if p.is_file()]
    assert any(p.suffix == ".slurm" for p in written) and any(p.name.startswith("llm-swarm_") for p in written)
    for path in written:
        text = path.read_text(encoding="utf-8", errors="replace")
        for name, value in secrets.items():
            assert value not in text, f"{name}'s value leaked into {path}"


@pytest.mark.parametrize(
    ("body", "timeout_s", "expected"),
    [
        # A URL where nothing ever listens: llm-swarm alone would wait forever.
        ('echo "http://$(hostname):9" > "{{slurm_hosts_path}}"\nsleep 600', 10, "did not answer a chat request within 10 s"),
        # The job dies before llm-swarm sees it running (llm-swarm alone would wait forever): fail fast.
        ('exit 3\necho "http://$(hostname):9" > "{{slurm_hosts_path}}"', 120, "the job ended before it answered"),
    ],
    ids=["never-listens", "job-fails"],
)
def test_endpoint_that_never_comes_up_raises_and_is_cancelled(tmp_path: Path, body: str, timeout_s: int, expected: str):
    template = tmp_path / "broken.template.slurm"
    template.write_text(
        "#!/bin/bash\n#SBATCH --job-name={{job_name}}\n#SBATCH --output=slurm/logs/llm-swarm_%j.out\n"
        f"#SBATCH --cpus-per-task=1\n{body}\n",
        encoding="utf-8",
    )
    backend = cpu_backend(f"smol-broken-{uuid.uuid4().hex[:8]}", instances=1, template=str(template), startup_timeout_s=timeout_s)
    started = time.monotonic()
    with pytest.raises(ServerStartError) as error:
        with swarm_endpoints(backend, tmp_path / "swarm"):
            pytest.fail("swarm_endpoints yielded endpoints that never came up")
    elapsed = time.monotonic() - started
    message = str(error.value)
    assert "\n" not in message and expected in message, message
    job_id = message.split("Slurm job ")[1].split(" ")[0]
    assert job_id.isdigit() and f"slurm/logs/llm-swarm_{job_id}.out" in message, message
    assert elapsed < min(timeout_s, 30) + 20, f"took {elapsed:.0f} s"
    assert swarm_jobs(tmp_path) == []


HOLDER = """
import signal, sys, time
from pathlib import Path
from test_swarm import cpu_backend
from generation.endpoints.swarm import swarm_endpoints

def interrupt(signum, frame):
    raise KeyboardInterrupt

if sys.argv[3] == "cli":  # what synthgen's CLI does with SIGTERM
    signal.signal(signal.SIGTERM, interrupt)
with swarm_endpoints(cpu_backend(sys.argv[1], instances=1), Path(sys.argv[2])) as urls:
    print("READY", *urls, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("handler", ["default", "cli"])
def test_sigterm_to_the_holder_cancels_its_jobs(tmp_path: Path, handler: str):
    """default: the holder dies at once and its launcher sees stdin close; cli: swarm_endpoints' own clean-up."""
    alias = f"smol-holder-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, alias, str(tmp_path / "swarm"), handler],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])},
    )  # fmt: skip
    try:
        line = holder.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("READY "), f"holder exited with {holder.poll()} before its endpoint was ready"
        assert len(swarm_jobs(tmp_path)) == 1 and servers(alias)
        holder.send_signal(signal.SIGTERM)
        status = holder.wait(timeout=60)
        # An uncaught KeyboardInterrupt ends Python as if by SIGINT.
        assert status == (-signal.SIGTERM if handler == "default" else -signal.SIGINT)
        if handler == "cli":
            assert swarm_jobs(tmp_path) == []  # swarm_endpoints returned only after squeue listed none
        wait_until_gone(tmp_path, alias, timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()


@pytest.mark.parametrize("name", ["tgi", "tgi-apptainer", "vllm", "llamacpp-cpu"])
def test_filled_templates_are_valid_bash(tmp_path: Path, name: str):
    text = (REPO / "slurm" / f"{name}.template.slurm").read_text(encoding="utf-8")
    values = {
        "job_name": "synthgen-x-0", "slurm_hosts_path": "slurm/hosts.txt", "model": "org/model", "revision": "main",
        "gpus": "8", "model_max_length": "32768", "model_input_length": "32668", "max_concurrent_requests": "64",
        "model_alias": "m", "python": sys.executable, "gguf_path": "/m.gguf", "n_threads": "1", "n_ctx": "2048",
        "cpus_per_task": "12", "mem_per_cpu": "11G", "tensor_parallel_size": "8", "server_args": "--enforce-eager",
    }  # fmt: skip
    filled = fill_template(text, values)
    assert "{{" not in filled, f"unfilled placeholder in {name}"
    assert "HF_TOKEN=" not in filled.replace("APPTAINERENV_HF_TOKEN=", "")  # passed by name, never by value
    script = tmp_path / "job.slurm"
    script.write_text(filled, encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "#SBATCH --output=slurm/logs/llm-swarm_%j.out" in filled  # where llm-swarm and synthgen look
