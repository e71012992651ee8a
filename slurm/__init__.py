"""Bundled Slurm templates: installed as the data package ``generation.slurm`` (see setup.py and pyproject.toml)."""
