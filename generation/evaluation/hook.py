"""The evaluation step at the end of ``synthgen run`` (kept out of pipeline.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from generation.config import RunConfig
from generation.errors import SynthgenError

log = logging.getLogger(__name__)

EVAL_DIR = "eval"


def evaluate_run(cfg: RunConfig, out_dir: Path, stages: tuple[str, ...], summary: dict[str, Any], progress: bool = True) -> None:
    """Evaluate the run's pairs into ``out_dir/eval`` unless ``evaluation.enabled`` is false; record the outcome in
    ``summary['evaluation']``. A failed evaluation is logged and recorded; the published pairs stay as they are."""
    if "responses" not in stages:
        return
    if not cfg.evaluation.enabled:
        summary["evaluation"] = {"status": "disabled"}
        return
    pairs = out_dir / "questions_and_responses.csv"
    if not summary.get("rows", {}).get("pairs"):
        summary["evaluation"] = {"status": "skipped", "reason": "no pairs"}
        return
    from generation.evaluation.evaluate import evaluate_file

    try:
        result = evaluate_file(pairs, out_dir / EVAL_DIR, cfg, progress=progress)
    except (SynthgenError, ImportError, OSError) as exc:
        log.error("evaluation failed (%s); the pairs are published; rerun with: synthgen evaluate %s -o %s", exc, pairs, out_dir / EVAL_DIR)
        summary["evaluation"] = {"status": "failed", "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
        return
    summary["evaluation"] = {
        "status": "completed", "dir": str(out_dir / EVAL_DIR), "rows": result["rows"], "passed": result["passed"],
        "judge_model": result["judge_model"], "elapsed_s": result["elapsed_s"],
    }  # fmt: skip
