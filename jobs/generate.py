"""Batch entry point: run the whole pipeline in this process, e.g. as one Slurm task.

    sbatch --cpus-per-task=2 --wrap ".venv/bin/python jobs/generate.py -c configs/default.yaml -o outputs/x"

Takes the same options as `synthgen run`. The sharded Submitit array path builds on the same pipeline.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation.cli import cli  # noqa: E402 - needs the path above when run from a checkout

if __name__ == "__main__":
    cli(["run", *sys.argv[1:]], prog_name="jobs/generate.py")
