"""Executors: where a run plan's shards run (in this process, or as a Slurm array through Submitit).

The interface and the status of any run folder are in :mod:`generation.executors.base`.
"""

EXECUTORS = ("local", "slurm")
