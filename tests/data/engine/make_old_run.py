"""How tests/data/engine/old-run was made: synthgen at commit a1dee0c (before the streaming engine), 2 shards,
against tests/deterministic_endpoint.py. Kept for reference; it only reproduces the folder with that commit:

    git worktree add /tmp/old a1dee0c && cd /tmp/old && make venv
    .venv/bin/python <this repo>/tests/data/engine/make_old_run.py /tmp/fixture

Copied into the repo: seeds.csv, run/config.yaml, the published questions and pair files, and per shard its
questions.csv, pairs.jsonl, dropped.csv, done.json and cache/requests.sqlite (logs, card and Parquet left out).
"""

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = Path.cwd()  # the old checkout
sys.path.insert(0, str(HERE.parent.parent))  # tests/, for the deterministic endpoint
sys.path.insert(0, str(REPO))

from deterministic_endpoint import DeterministicEndpoint  # noqa: E402
from generation.config import load_config  # noqa: E402
from generation.pipeline import run_pipeline  # noqa: E402

root = Path(sys.argv[1]) / "old-run"
shutil.rmtree(root, ignore_errors=True)
root.mkdir(parents=True)
rows = (REPO / "configs/samples/healthcare.csv").read_text().splitlines()
(root / "seeds.csv").write_text("\n".join(rows[:31]) + "\n")
os.chdir(root)  # data_files stays the relative "seeds.csv", so the fingerprint does not depend on the folder
with DeterministicEndpoint(latency=0.002) as ep:
    overrides = [
        "backend.engine=endpoint", f"backend.base_url={ep.base_url}", "backend.model=det", "questions.seed_questions=8",
        "questions.target=14", "questions.max_attempts=3", "responses.max_attempts=2", "execution.shards=2",
        "evaluation.enabled=false", "name=old-run", "seed=5",
    ]  # fmt: skip
    cfg = load_config(REPO / "configs/default.yaml", overrides)
    cfg = cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"data_files": "seeds.csv"})})
    print(run_pipeline(cfg, root / "run", show_progress=False)["rows"])
