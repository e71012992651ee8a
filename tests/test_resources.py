"""Package data and side environments (generation/resources.py), as seen from the editable checkout; the
installed wheel is checked by tests/test_wheel.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import REPO
from generation.config import BUNDLED_CONFIGS, SwarmConfig
from generation.endpoints.swarm import resolve_template, swarm_python
from generation.errors import ConfigError
from generation.resources import bundled_slurm_dir, checkout_root, side_python


def test_package_data_is_the_checkouts_folders_in_an_editable_install():
    assert BUNDLED_CONFIGS == REPO / "configs" and bundled_slurm_dir() == REPO / "slurm"
    assert checkout_root() == REPO
    assert (BUNDLED_CONFIGS / "domains" / "_base.yaml").is_file() and (bundled_slurm_dir() / "llamacpp-cpu.template.slurm").is_file()


def test_a_bundled_swarm_template_is_found_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    swarm = SwarmConfig(inference_engine="llamacpp", template="slurm/llamacpp-cpu.template.slurm", model="m")
    assert resolve_template(swarm) == bundled_slurm_dir() / "llamacpp-cpu.template.slurm"
    own = tmp_path / "slurm" / "llamacpp-cpu.template.slurm"  # the current directory's own copy wins
    own.parent.mkdir()
    own.write_text("#SBATCH --job-name={{job_name}}\necho x > {{slurm_hosts_path}}\n")
    assert resolve_template(swarm) == own
    with pytest.raises(ConfigError, match=r"backend.swarm.template: slurm/nope.slurm not found"):
        resolve_template(swarm.model_copy(update={"template": "slurm/nope.slurm"}))


def test_side_environment_from_the_variable_or_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SYNTHGEN_SWARM_PYTHON", sys.executable)
    assert side_python("swarm") == Path(sys.executable) and swarm_python() == Path(sys.executable)
    monkeypatch.setenv("SYNTHGEN_SWARM_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(ConfigError, match=r"the swarm engine needs its own environment; .*nope/python is not an executable Python \(set SYNTHGEN_SWARM_PYTHON\)"):
        side_python("swarm")
    monkeypatch.delenv("SYNTHGEN_SWARM_PYTHON")
    monkeypatch.setenv("SYNTHGEN_VLLM_PYTHON", sys.executable)
    assert side_python("vllm") == Path(sys.executable)
    monkeypatch.delenv("SYNTHGEN_VLLM_PYTHON")
    expected = REPO / ".venv-absent" / "bin" / "python"
    with pytest.raises(ConfigError, match=rf"{expected} is not an executable Python \(run `make venv` or set SYNTHGEN_ABSENT_PYTHON\)"):
        side_python("absent")


def test_every_bundled_file_is_declared_package_data():
    """A wheel ships only what pyproject's package-data patterns match: a new kind of file under configs/ or
    slurm/ (e.g. configs/eval/precision.json) must be declared, or installed synthgen cannot find it."""
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    for package, folder in (("generation.configs", REPO / "configs"), ("generation.slurm", REPO / "slurm")):
        shipped = {path for pattern in patterns[package] for path in folder.glob(pattern)}
        files = {p for p in folder.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}
        assert sorted(str(p.relative_to(REPO)) for p in files - shipped) == []
