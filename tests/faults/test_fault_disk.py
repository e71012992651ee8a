"""Disk full and permission errors on the run folder, provoked for real: a size-limited tmpfs and an
unprivileged user (setpriv). One line, exit 1, and the previously published files stay byte-identical."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, tiny_config
from faults_support import clean_run, copy_run, model_memo, no_temporary_files, one_line_error  # noqa: F401

pytestmark = pytest.mark.model

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs and switching users need root")


def top_level_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def run_cli(*args: str, user: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", "--"] if user else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "generation", *args], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        # CI runs as root on a machine that can mount: there a skip would hide the test, so it fails
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@needs_root
def test_disk_full_while_publishing_is_one_line_and_keeps_the_published_files(clean_run: Path, small_tmpfs: Path, tmp_path: Path, dead_url: str):
    out = copy_run(clean_run, small_tmpfs / "run")
    before = top_level_files(out)
    with open(small_tmpfs / "filler", "wb", buffering=0) as filler:  # fill the filesystem to the last byte
        for size in (65536, 1):
            try:
                while filler.write(b"\0" * size):
                    pass
            except OSError:
                pass
    # The shard is complete, so this only republishes (with a test split: more files than before).
    config = tiny_config(tmp_path, dead_url)
    result = run_cli("run", "-c", str(config), "-o", str(out), "--set", "publish.test_fraction=0.5")
    assert result.returncode == 1, result.stderr
    line = one_line_error(result.stderr)
    assert "cannot write " + str(out) in line and "No space left on device" in line, line
    assert top_level_files(out) == before
    assert no_temporary_files(out) == []

    (small_tmpfs / "filler").unlink()  # space again: the same command now succeeds
    result = run_cli("run", "-c", str(config), "-o", str(out), "--set", "publish.test_fraction=0.5")
    assert result.returncode == 0, result.stderr
    assert (out / "questions_and_responses.train.csv").is_file()
    for name in ("questions.csv", "questions_and_responses.csv", "questions_and_responses.jsonl"):
        assert (out / name).read_bytes() == before[name]


@needs_root
def test_permission_denied_on_the_run_folder_is_one_line_and_changes_nothing(clean_run: Path, dead_url: str):
    base = Path(tempfile.mkdtemp(prefix="synthgen-perm-", dir="/tmp"))
    try:
        base.chmod(0o755)
        out = copy_run(clean_run, base / "run")  # owned by root, not writable by nobody
        home = base / "home"
        home.mkdir()
        home.chmod(0o777)
        config = tiny_config(base, dead_url)
        config.chmod(0o644)
        before = top_level_files(out)
        hf = {"HF_HOME": str(home / "hf"), "HF_DATASETS_CACHE": str(home / "hf" / "datasets")}  # the session's cache is root's
        result = run_cli("run", "-c", str(config), "-o", str(out), user="nobody", env={"HOME": str(home), **hf})
        assert result.returncode == 1, result.stderr
        line = one_line_error(result.stderr)
        assert "cannot write " + str(out) in line and "Permission denied" in line, line
        assert top_level_files(out) == before
    finally:
        shutil.rmtree(base, ignore_errors=True)
