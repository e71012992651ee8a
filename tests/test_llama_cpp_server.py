"""The embedded server's launcher: llama.cpp's extra CPU buffer types off unless asked for (they crash with a
general protection fault on VMs that advertise AMX without enabling it; the model suite runs the real server)."""

from __future__ import annotations

import subprocess
import sys

from generation.endpoints.embedded import EmbeddedServer
from generation.config import EmbeddedServerConfig

PROBE = (
    "import runpy, sys, llama_cpp.llama_cpp as lib\n"
    "import generation.endpoints.llama_cpp_server as launcher\n"
    "runpy.run_module = lambda *a, **k: print(lib.llama_model_default_params().use_extra_bufts)\n"
    "launcher.main()\n"
)


def _use_extra_bufts(env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_launcher_turns_extra_buffer_types_off_unless_asked(monkeypatch):
    import os

    env = {k: v for k, v in os.environ.items() if k != "SYNTHGEN_LLAMA_EXTRA_BUFTS"}
    assert _use_extra_bufts(env) == "False"
    assert _use_extra_bufts({**env, "SYNTHGEN_LLAMA_EXTRA_BUFTS": "1"}) == "True"


def test_embedded_engine_starts_the_launcher():
    command = EmbeddedServer(EmbeddedServerConfig(server="llama-cpp-python"), "alias").command()
    assert command[1:3] == ["-m", "generation.endpoints.llama_cpp_server"]
    assert "--model_alias" in command and "--interrupt_requests" in command
