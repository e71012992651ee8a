"""Run llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) with llama.cpp's extra CPU
buffer types off.

llama.cpp loads weights into "extra buffer types" (AMX tiles, repacked layouts) when the CPU advertises them.
Inside virtual machines that advertise AMX without enabling it, the first completion dies with a general
protection fault in ``libggml-cpu`` (seen on this project's 2-core build machines with llama-cpp-python
0.3.36 built with ``GGML_NATIVE``). Loading the model with ``use_extra_bufts = False`` avoids it at a small
cost in speed; ``SYNTHGEN_LLAMA_EXTRA_BUFTS=1`` keeps llama.cpp's default on machines where they work.
Arguments are those of ``llama_cpp.server``.
"""

from __future__ import annotations

import os
import runpy

EXTRA_BUFTS_ENV = "SYNTHGEN_LLAMA_EXTRA_BUFTS"


def disable_extra_buffer_types() -> None:
    """Make every model llama-cpp-python loads in this process skip the extra buffer types."""
    import llama_cpp.llama_cpp as library

    defaults = library.llama_model_default_params

    def model_params():  # noqa: ANN202 - a ctypes struct
        params = defaults()
        params.use_extra_bufts = False
        return params

    library.llama_model_default_params = model_params


def main() -> None:
    if os.environ.get(EXTRA_BUFTS_ENV) != "1":
        disable_extra_buffer_types()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
