"""Batch entry point: run the whole pipeline in this process, e.g. as one Slurm task.

    sbatch --cpus-per-task=2 --wrap ".venv/bin/python jobs/generate.py -c configs/default.yaml -o outputs/x"

Takes the same options as `synthgen run` (the local executor by default: every shard in this job, then gather;
`--executor slurm` from a login node instead submits one array task per shard).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation.cli import cli  # noqa: E402 - needs the path above when run from a checkout

if __name__ == "__main__":
    cli(["run", *sys.argv[1:]], prog_name="jobs/generate.py")
