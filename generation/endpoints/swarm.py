"""Model endpoints started as Slurm jobs through llm-swarm, which runs in its own environment (.venv-swarm).

Each of ``backend.swarm.instances`` endpoints is one launcher process (swarm_launcher.py) holding a
single-instance LLMSwarm; synthgen checks readiness itself (llm-swarm counts any HTTP answer as healthy
and never times out), enforces ``startup_timeout_s``, and makes sure every job is gone on exit.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from generation.config import BackendConfig, EmbeddedServerConfig, SwarmConfig
from generation.endpoints.embedded import locate_model_file
from generation.endpoints.process import server_environment
from generation.errors import ConfigError, ServerStartError
from generation.resources import bundled_slurm_dir, side_python, side_python_variable

VLLM_VENV_LAUNCHER = "vllm-venv.sh"  # slurm/vllm-venv.sh: $VLLM_BIN for vLLM in its own environment

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("swarm_launcher.py")
REQUIRED_PLACEHOLDERS = ("{{job_name}}", "{{slurm_hosts_path}}")
STOP_GRACE_S = 30.0
POLL_S = 0.5


@dataclass
class _Instance:
    index: int
    work_dir: Path
    job_name: str
    process: subprocess.Popen[bytes] | None = None
    job_ids: list[str] = field(default_factory=list)
    url: str | None = None

    @property
    def endpoints_file(self) -> Path:
        return self.work_dir / "endpoints.json"

    @property
    def launcher_log(self) -> Path:
        return self.work_dir / "launcher.log"

    def read_job_ids(self) -> None:
        """Job ids printed by llm-swarm right after sbatch, for jobs that end before squeue shows them."""
        if not self.job_ids and self.launcher_log.is_file():
            printed = re.search(r"Slurm Job ID: \[([^\]]*)\]", self.launcher_log.read_text(encoding="utf-8", errors="replace"))
            if printed:
                self.job_ids = re.findall(r"\d+", printed.group(1))

    def describe(self) -> str:
        """Job id and where to look, for one-line errors."""
        self.read_job_ids()
        if self.job_ids:
            logs = ", ".join(str(self.work_dir / "slurm" / "logs" / f"llm-swarm_{j}.out") for j in self.job_ids)
            return f"Slurm job {','.join(self.job_ids)} ({self.job_name}); see {logs} and {self.launcher_log}"
        return f"no Slurm job was seen for {self.job_name}; see {self.launcher_log}"


def resolve_template(swarm: SwarmConfig) -> Path:
    """The sbatch template: an absolute path, or relative to the working directory, else a bundled one
    (``slurm/NAME``: synthgen's package data)."""
    path = Path(swarm.template).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, bundled_slurm_dir().parent / path]
    for candidate in candidates:
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8")
            missing = [p for p in REQUIRED_PLACEHOLDERS if p not in text]
            if missing:
                raise ConfigError(f"backend.swarm.template: {candidate} lacks the placeholder(s) {', '.join(missing)}")
            return candidate.resolve()
    raise ConfigError(f"backend.swarm.template: {swarm.template} not found (looked in {', '.join(map(str, candidates))})")


def swarm_python() -> Path:
    """llm-swarm's Python: $SYNTHGEN_SWARM_PYTHON, else the checkout's .venv-swarm."""
    return side_python("swarm")


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "synthgen"


def _make_loadable_by_transformers_4(folder: Path) -> None:
    """Rewrite a tokenizer saved by transformers 5 into the layout .venv-swarm's transformers 4.40 reads."""
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # 5.x writes "TokenizersBackend"
    template = folder / "chat_template.jinja"
    if template.is_file():  # 4.40 reads the chat template from tokenizer_config.json only
        config["chat_template"] = template.read_text(encoding="utf-8")
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer_path = folder / "tokenizer.json"
    data = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    merges = data.get("model", {}).get("merges")
    if isinstance(merges, list):  # tokenizers < 0.20 reads BPE merges as "a b", not ["a", "b"]
        data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in merges]
    tokenizer_path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _build_for_swarm(target: Path, build: Callable[[Path], None], what: str) -> Path:
    """Build ``target`` once (``build`` fills a temporary folder), make its tokenizer loadable by .venv-swarm's
    transformers 4.40 and check that it loads there; concurrent builders are fine (the first one wins)."""
    if (target / "tokenizer_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        _make_loadable_by_transformers_4(tmp)
        check = subprocess.run(
            [str(swarm_python()), "-c", "import sys; from transformers import AutoTokenizer; AutoTokenizer.from_pretrained(sys.argv[1])", str(tmp)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if check.returncode != 0:
            last = (check.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConfigError(f"backend.swarm.gguf: the tokenizer of {what} does not load in .venv-swarm: {last}")
        try:
            os.replace(tmp, target)
        except OSError:  # another process built it first
            if not (target / "tokenizer_config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("built the folder %s for llm-swarm", target)
    return target


def gguf_tokenizer_dir(gguf: EmbeddedServerConfig) -> Path:
    """A tokenizer folder for a GGUF model (llm-swarm insists on loading one); built once and cached."""
    model_file = locate_model_file(gguf)

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(model_file.parent), gguf_file=model_file.name).save_pretrained(str(tmp))

    return _build_for_swarm(_cache_root() / "tokenizers" / f"{model_file.stem}-{model_file.stat().st_size}", build, model_file.name)


def gguf_model_dir(gguf: EmbeddedServerConfig) -> Path:
    """A GGUF model as a plain Hugging Face folder that vLLM serves and llm-swarm (which loads the tokenizer of
    what the template serves) can read: the weights of embedded_hf's cached copy, linked, and its tokenizer
    rewritten for transformers 4.40."""
    from generation.embedded_hf import cached_gguf_model_dir

    source = cached_gguf_model_dir(gguf.package, gguf.file)

    def build(tmp: Path) -> None:
        for item in source.iterdir():
            if item.name.startswith("tokenizer") or item.suffix == ".jinja":
                shutil.copy2(item, tmp / item.name)  # rewritten below
            else:
                (tmp / item.name).symlink_to(item)

    return _build_for_swarm(source.parent / f"{source.name}-swarm", build, source.name)


def resolve_vllm_bin(swarm: SwarmConfig) -> str | None:
    """``swarm.vllm_bin`` as the jobs' $VLLM_BIN: a path is resolved like the template; a bare name is kept."""
    if swarm.vllm_bin is None or "/" not in swarm.vllm_bin:
        return swarm.vllm_bin
    path = Path(swarm.vllm_bin).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, bundled_slurm_dir().parent / path]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.resolve())
    raise ConfigError(f"backend.swarm.vllm_bin: no executable {swarm.vllm_bin} (looked in {', '.join(map(str, candidates))})")


def job_environment(swarm: SwarmConfig) -> dict[str, str]:
    """What the launcher (and so sbatch, which copies it into every job) gets: our environment without API keys,
    plus ``swarm.env`` and $VLLM_BIN."""
    vllm_bin = resolve_vllm_bin(swarm)
    extra = {"VLLM_BIN": vllm_bin} if vllm_bin else {}
    if vllm_bin and Path(vllm_bin).name == VLLM_VENV_LAUNCHER and side_python_variable("vllm") not in os.environ:
        extra[side_python_variable("vllm")] = str(side_python("vllm"))  # the bundled launcher runs vLLM from this Python
    return server_environment({**swarm.env, **extra})


def launcher_spec(backend: BackendConfig, template: Path, job_name: str, output: Path) -> dict:
    """What one launcher needs: llm-swarm's config plus our own template placeholders."""
    swarm = backend.swarm
    assert swarm is not None
    substitutions = {
        "job_name": job_name,
        "max_concurrent_requests": str(swarm.per_instance_max_parallel_requests),
        "model_alias": backend.model,
        # job resources and server flags (slurm/vllm.template.slurm); a template without them ignores them
        "cpus_per_task": str(swarm.cpus_per_task),
        "mem_per_cpu": swarm.mem_per_cpu,
        "tensor_parallel_size": str(swarm.tensor_parallel),
        "server_args": " ".join(shlex.quote(arg) for arg in swarm.server_args),
    }
    model = swarm.model
    engine = swarm.inference_engine
    if engine == "llamacpp":
        gguf = swarm.gguf or EmbeddedServerConfig()
        model = str(gguf_tokenizer_dir(gguf))
        substitutions.update(
            python=sys.executable,  # synthgen's own environment has llama-cpp-python[server]
            gguf_path=str(locate_model_file(gguf)),
            n_threads=str(gguf.n_threads),
            n_ctx=str(gguf.n_ctx),
        )
        engine = "tgi"  # llm-swarm only knows tgi/vllm; "tgi" leaves its endpoint URL untouched
    elif engine == "vllm" and swarm.gguf is not None:
        model = str(gguf_model_dir(swarm.gguf))
    return {
        "template": str(template),
        "model": model,
        "revision": swarm.revision,
        "gpus": swarm.gpus,
        "engine": engine,
        "per_instance_max_parallel_requests": swarm.per_instance_max_parallel_requests,
        "substitutions": substitutions,
        "output": str(output),
    }


def squeue_jobs(job_names: list[str]) -> list[tuple[str, str, str]]:
    """(job id, state code, name) of the jobs with these names that squeue still lists, completing ones too."""
    if not job_names:
        return []
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %t %j", "-n", ",".join(job_names)], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        raise ServerStartError(f"squeue failed: {out.stderr.strip() or out.returncode}")
    rows = [tuple(line.strip().split(" ", 2)) for line in out.stdout.splitlines() if line.strip()]
    return [row for row in rows if len(row) == 3 and row[2] in job_names]  # type: ignore[misc]


def _headers(backend: BackendConfig) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(backend.api_key_env) if backend.api_key_env else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _answers(url: str, backend: BackendConfig, timeout: float) -> bool:
    """True when a one-token chat request answers 200 (a TGI-style /health answer proves nothing)."""
    probe = json.dumps({"model": backend.model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1})
    request = urllib.request.Request(f"{url}/chat/completions", data=probe.encode(), headers=_headers(backend), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own endpoint
            response.read()
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _start(instance: _Instance, spec: dict, env: dict[str, str]) -> None:
    instance.work_dir.mkdir(parents=True, exist_ok=True)
    spec_path = instance.work_dir / "launcher.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    with open(instance.launcher_log, "ab") as log_file:
        instance.process = subprocess.Popen(
            [str(swarm_python()), str(LAUNCHER), str(spec_path)],
            cwd=instance.work_dir,
            stdin=subprocess.PIPE,  # the launcher stops when this pipe closes (we exited, however)
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C in our terminal reaches us, and we stop it in order
        )


def _wait_endpoints(instances: list[_Instance], backend: BackendConfig, deadline: float) -> None:
    """Wait until every endpoint answers a real chat request; fail fast when a job or launcher ends."""
    timeout = backend.swarm.startup_timeout_s  # type: ignore[union-attr]
    pending = list(instances)
    while pending:
        for instance in pending:
            instance.read_job_ids()  # before squeue: a job id known now and not listed below has ended
        listed: dict[str, set[str]] = {}
        for job_id, _, name in squeue_jobs([i.job_name for i in pending]):
            listed.setdefault(name, set()).add(job_id)
        for instance in list(pending):
            ids = listed.get(instance.job_name, set())
            instance.job_ids += sorted(ids - set(instance.job_ids))
            if instance.url is None and instance.endpoints_file.is_file():
                instance.url = json.loads(instance.endpoints_file.read_text(encoding="utf-8"))["endpoints"][0].rstrip("/") + "/v1"
            if instance.process is not None and instance.process.poll() is not None:
                raise ServerStartError(
                    f"swarm endpoint {instance.index} failed to start (llm-swarm launcher exited with status "
                    f"{instance.process.returncode}): {instance.describe()}"
                )
            if instance.job_ids and not ids:
                raise ServerStartError(f"swarm endpoint {instance.index}: the job ended before it answered: {instance.describe()}")
            if instance.url is not None and _answers(instance.url, backend, max(1.0, min(backend.timeout_s, deadline - time.monotonic()))):
                log.info("swarm endpoint %d ready at %s (Slurm job %s)", instance.index, instance.url, ",".join(instance.job_ids))
                pending.remove(instance)
        if pending and time.monotonic() > deadline:
            where = f" at {pending[0].url}" if pending[0].url else ""
            raise ServerStartError(
                f"swarm endpoint {pending[0].index}{where} did not answer a chat request within {timeout:.0f} s: {pending[0].describe()}"
            )
        if pending:
            time.sleep(POLL_S)


def _stop(instances: list[_Instance]) -> None:
    """Stop the launchers (they scancel their jobs), then make sure squeue lists none of our jobs."""
    for instance in instances:
        process = instance.process
        if process is None or process.poll() is not None:
            continue
        try:
            process.stdin.close()  # type: ignore[union-attr]
            process.send_signal(signal.SIGTERM)
        except (OSError, ProcessLookupError):
            pass
    for instance in instances:
        process = instance.process
        if process is None:
            continue
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log.warning("swarm launcher %d did not stop; killing it", instance.index)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    names = [i.job_name for i in instances]
    deadline = time.monotonic() + STOP_GRACE_S
    cancelled: set[str] = set()
    while True:
        try:
            jobs = {job_id: state for job_id, state, _ in squeue_jobs(names)}
        except (ServerStartError, subprocess.TimeoutExpired) as exc:  # must not hide the error that got us here
            log.error("could not check that swarm jobs %s are gone (%s); check squeue by hand", ",".join(names), exc)
            return
        if not jobs:
            return
        if time.monotonic() > deadline:
            log.error("Slurm job(s) %s are still listed by squeue after scancel; cancel them by hand", ",".join(sorted(jobs)))
            return
        # Jobs not already completing: the launcher was killed before it could scancel, or scancel failed.
        leftover = sorted(j for j, state in jobs.items() if state != "CG" and j not in cancelled)
        if leftover:
            log.warning("scancel-ing leftover swarm job(s) %s", ",".join(leftover))
            subprocess.run(["scancel", *leftover], capture_output=True, timeout=60)
            cancelled.update(leftover)
        time.sleep(POLL_S)


@contextmanager
def swarm_endpoints(backend: BackendConfig, work_dir: Path) -> Iterator[list[str]]:
    """Start ``backend.swarm.instances`` endpoints as Slurm jobs; yield their base URLs (ending in /v1).

    Raises ServerStartError when one does not answer a chat request within ``startup_timeout_s``. On any
    exit (also exceptions and KeyboardInterrupt) every job is cancelled.
    """
    swarm = backend.swarm
    if swarm is None:
        raise ConfigError("backend.swarm: engine 'swarm' needs a swarm section")
    template = resolve_template(swarm)
    swarm_python()
    if shutil.which("sbatch") is None:
        raise ConfigError("backend.engine: 'swarm' needs Slurm's sbatch on PATH")
    token = uuid.uuid4().hex[:8]
    work_dir = Path(work_dir).resolve()
    instances = [
        _Instance(i, work_dir / f"instance-{i}", f"synthgen-{swarm.inference_engine}-{token}-{i}") for i in range(swarm.instances)
    ]
    # The tokenizer folder is built once, before any launcher starts.
    specs = [launcher_spec(backend, template, inst.job_name, inst.endpoints_file) for inst in instances]
    env = job_environment(swarm)
    deadline = time.monotonic() + swarm.startup_timeout_s
    try:
        for instance, spec in zip(instances, specs):
            _start(instance, spec, env)
        log.info("starting %d swarm endpoint(s) with %s (work folder %s)", len(instances), template.name, work_dir)
        _wait_endpoints(instances, backend, deadline)
        yield [i.url for i in instances]  # type: ignore[misc]
    finally:
        _stop(instances)
