"""Hold one single-instance LLMSwarm open; runs under .venv-swarm's Python, never in synthgen's environment.

llm-swarm 0.1.1 pins huggingface-hub<0.21 and transformers<5, so synthgen (generation/endpoints/swarm.py)
starts this script as a separate process, with the working directory set to a per-instance work folder
(llm-swarm writes ``slurm/`` and ``slurm/logs/`` relative to it). Stdlib and llm-swarm (with its own
dependencies) only: this file must not import ``generation``.

    python swarm_launcher.py SPEC.json

SPEC.json: template, model, revision, gpus, engine ("tgi" or "vllm"), per_instance_max_parallel_requests,
substitutions ({"placeholder": "value"}, filled into the template as ``{{placeholder}}`` before llm-swarm
fills its own) and output (where {"endpoints": [...], "job_ids": [...]} is written once the job answers).
The script then waits for SIGTERM/SIGINT/SIGHUP or EOF on stdin (the parent died) and scancels the job;
it scancels on every exit path, also when llm-swarm's start() fails (which it reports by swallowing the
exception and cancelling the job itself).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

FILLED_TEMPLATE = "filled.template.slurm"


def fill_template(template: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        template = template.replace("{{" + key + "}}", str(value))
    return template


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _exit_on_signal(signum: int, frame: object) -> None:
    # SystemExit is not an Exception, so it escapes llm-swarm's `except (KeyboardInterrupt, Exception)`.
    raise SystemExit(128 + signum)


def _watch_stdin() -> None:
    """Stop when the parent goes away: its end of our stdin pipe closes."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: swarm_launcher.py SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    threading.Thread(target=_watch_stdin, daemon=True).start()

    Path(FILLED_TEMPLATE).write_text(
        fill_template(Path(spec["template"]).read_text(encoding="utf-8"), spec.get("substitutions", {})), encoding="utf-8"
    )

    import llm_swarm
    import requests

    # llm-swarm probes /health through huggingface_hub's session, which refuses every request under
    # HF_HUB_OFFLINE=1; a plain session works in both modes (synthgen runs the real readiness check).
    llm_swarm.get_session = requests.Session

    config = llm_swarm.LLMSwarmConfig(
        instances=1,  # more than one makes llm-swarm start nginx with `sudo docker`
        inference_engine=spec["engine"],
        slurm_template_path=FILLED_TEMPLATE,
        model=spec["model"],
        revision=spec["revision"],
        gpus=int(spec["gpus"]),
        per_instance_max_parallel_requests=int(spec["per_instance_max_parallel_requests"]),
    )
    swarm = None
    try:
        swarm = llm_swarm.LLMSwarm(config)
        swarm.start()
        endpoints = list(getattr(swarm, "endpoints", None) or [])
        if swarm.cleaned_up or not endpoints:
            print(f"llm-swarm failed to start job(s) {getattr(swarm, 'job_ids', [])}", file=sys.stderr, flush=True)
            return 1
        write_json_atomic(Path(spec["output"]), {"endpoints": endpoints, "job_ids": list(swarm.job_ids)})
        print(f"endpoints written to {spec['output']}", flush=True)
        threading.Event().wait()  # until a signal or stdin EOF raises SystemExit
        return 0
    finally:
        if swarm is not None and getattr(swarm, "job_ids", None) and not swarm.cleaned_up:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)  # let scancel finish
            try:
                swarm.cleanup()
            except Exception as exc:  # noqa: BLE001 - the parent scancels by job name as a last resort
                print(f"cleanup failed: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
