"""The streaming engine: the runner, run-folder layout, chunk checkpoints and gather."""
