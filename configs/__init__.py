"""Bundled configs: installed as the data package ``generation.configs`` (see setup.py and pyproject.toml)."""
