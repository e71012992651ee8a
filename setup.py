"""Packages of the synthgen distribution; everything else is in pyproject.toml.

The repository keeps its configs and Slurm templates in the top-level folders ``configs/`` and ``slurm/``;
they are installed as the data packages ``generation.configs`` and ``generation.slurm`` (``package-dir`` in
pyproject.toml), read with importlib.resources. Listing them here beside the discovered ``generation``
packages keeps discovery automatic for new subpackages.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["generation", "generation.*"]), "generation.configs", "generation.slurm"])
