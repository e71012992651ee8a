"""Executors: where shards run (in this process, or as a Slurm array through Submitit)."""
