"""What synthgen ships and what it runs beside itself, found the same way from a checkout and an install.

- **Package data.** The repository's top-level ``configs/`` and ``slurm/`` folders are installed as the
  packages ``generation.configs`` and ``generation.slurm`` (``setup.py`` maps them; ``pyproject.toml``
  lists their files), so domain packs, model files, samples, run configs and Slurm templates are read
  with :mod:`importlib.resources` whether synthgen runs from an editable checkout, ``pip install .`` or
  a wheel.
- **Side environments.** llm-swarm (and other engines with conflicting pins) run under their own Python:
  ``$SYNTHGEN_<NAME>_PYTHON``, else the checkout's ``.venv-<name>`` when running from a checkout.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from generation.errors import ConfigError

CONFIGS_PACKAGE = "generation.configs"
SLURM_PACKAGE = "generation.slurm"


def package_data_dir(package: str) -> Path:
    """The folder of an installed data package (synthgen is always installed unzipped)."""
    root = importlib.resources.files(package)
    if not isinstance(root, Path):  # a zip import: the loaders need real files
        raise ConfigError(f"{package}: synthgen's package data must be installed as files, found {root!r}")
    return root


def bundled_configs() -> Path:
    """``configs/`` as installed: domain packs, model files, samples, run configs, eval/mining defaults."""
    return package_data_dir(CONFIGS_PACKAGE)


def bundled_slurm_dir() -> Path:
    """``slurm/`` as installed: the sbatch templates llm-swarm fills."""
    return package_data_dir(SLURM_PACKAGE)


def checkout_root() -> Path | None:
    """The source checkout synthgen runs from (an editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "generation").is_dir() else None


def side_python_variable(name: str) -> str:
    """The environment variable that names a side environment's Python: ``SYNTHGEN_<NAME>_PYTHON``."""
    return f"SYNTHGEN_{name.upper()}_PYTHON"


def side_python(name: str) -> Path:
    """The Python of a side environment (``swarm``, ``vllm``): ``$SYNTHGEN_<NAME>_PYTHON``, else
    ``<checkout>/.venv-<name>/bin/python``."""
    variable = side_python_variable(name)
    configured = os.environ.get(variable)
    checkout = checkout_root()
    if configured:
        path = Path(configured).expanduser()
    elif checkout is not None:
        path = checkout / f".venv-{name}" / "bin" / "python"
    else:
        raise ConfigError(f"{variable} is not set: point it at the Python of the environment that has the {name} engine installed")
    if not os.access(path, os.X_OK):
        hint = f"set {variable}" if configured or checkout is None else f"run `make venv{'-' + name if name == 'vllm' else ''}` or set {variable}"
        raise ConfigError(f"the {name} engine needs its own environment; {path} is not an executable Python ({hint})")
    return path

