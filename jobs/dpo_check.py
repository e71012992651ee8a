"""Batch entry point for the DPO training check, e.g. as one Slurm job on a GPU node.

    sbatch --gpus=1 --wrap ".venv/bin/python jobs/dpo_check.py -o OUT --model configs/models/dpo/qwen2.5-0.5b-lora.yaml"

Takes the same options as `synthgen dpo-check`; uses CUDA when the node has it (`--device auto`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation.cli import cli  # noqa: E402 - needs the path above when run from a checkout

if __name__ == "__main__":
    cli(["dpo-check", *sys.argv[1:]], prog_name="jobs/dpo_check.py")
