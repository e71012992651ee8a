"""Every file name of a run folder and of its shards, in one place."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# -- published files (run folder)
PAIRS_STEM = "questions_and_responses"
PAIRS_CSV = f"{PAIRS_STEM}.csv"
PAIRS_JSONL = f"{PAIRS_STEM}.jsonl"
PAIRS_PARQUET = f"{PAIRS_STEM}.parquet"
PAIRS_CHAT_PARQUET = f"{PAIRS_STEM}.conversational.parquet"
PROVENANCE = f"{PAIRS_STEM}.provenance.jsonl"
QUESTIONS = "questions.csv"
DROPPED = "dropped.csv"
SUMMARY = "run_summary.json"
CONFIG = "config.yaml"
CARD = "README.md"
EVAL_DIR = "eval"
EVAL_SUMMARY = f"{EVAL_DIR}/summary.json"
SPLITS = ("train", "test")
SPLIT_FORMATS = ("csv", "jsonl", "parquet", "conversational.parquet")

# -- working files (run folder and every shard folder)
CACHE = "cache/requests.sqlite"
JUDGE_CACHE = "cache/judge-requests.sqlite"  # ranked pairs scored by the judge (replies unscrubbed: log-prob envelopes)
JUDGE_SERVER_LOG = "logs/judge-server.log"
RUN_LOG = "logs/synthgen.log"
SERVER_LOG = "logs/embedded-server.log"
VLLM_SERVER_LOG = "logs/vllm-server.log"
SWARM_DIR = "swarm"
ENDPOINT_FAILURE = "endpoint_failure.json"
RUN_PLAN = "run_plan.json"  # what the latest run or submission works on, and with which executor (any executor)
RUN_LOCK = "run.lock"  # held (flock) while a local run works in the folder; its pid, host and current shard
SUBMISSION = "submission.json"  # Slurm only: which job ran which shard
SLURM_LOGS = "slurm-logs"

# -- shard files
SHARD_QUESTIONS = QUESTIONS
SHARD_PAIRS = "pairs.jsonl"
SHARD_DROPPED = DROPPED
SHARD_FILES = (SHARD_QUESTIONS, SHARD_PAIRS, SHARD_DROPPED)
SHARD_MARKER = "done.json"  # written last: the shard is complete
SHARD_CHUNKS = "chunks.json"  # the last complete chunk while the shard runs


def split_file(split: str, ext: str) -> str:
    """Name of one split's file, e.g. ``questions_and_responses.train.csv``."""
    return f"{PAIRS_STEM}.{split}.{ext}"


@dataclass(frozen=True)
class RunPaths:
    """Where a run folder (or a shard folder) keeps each file."""

    root: Path

    @property
    def questions(self) -> Path:
        return self.root / QUESTIONS

    @property
    def pairs(self) -> Path:
        return self.root / PAIRS_CSV

    @property
    def pairs_jsonl(self) -> Path:
        return self.root / PAIRS_JSONL

    @property
    def provenance(self) -> Path:
        return self.root / PROVENANCE

    @property
    def dropped(self) -> Path:
        return self.root / DROPPED

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def cache(self) -> Path:
        return self.root / CACHE

    @property
    def server_log(self) -> Path:
        return self.root / SERVER_LOG

    @property
    def vllm_server_log(self) -> Path:
        return self.root / VLLM_SERVER_LOG

    @property
    def run_log(self) -> Path:
        return self.root / RUN_LOG

    @property
    def run_plan(self) -> Path:
        return self.root / RUN_PLAN

    @property
    def run_lock(self) -> Path:
        return self.root / RUN_LOCK

    @property
    def submission(self) -> Path:
        return self.root / SUBMISSION

    @property
    def slurm_logs(self) -> Path:
        return self.root / SLURM_LOGS


STAGES = ("questions", "responses")


def shards_dir_name(stages: tuple[str, ...]) -> str:
    """Full runs keep shards in ``shards/``; single-stage runs in ``shards-<stage>/``."""
    return "shards" if tuple(stages) == STAGES else f"shards-{stages[0]}"


@dataclass(frozen=True)
class ShardLayout:
    """Where one run's shards live."""

    out_dir: Path
    stages: tuple[str, ...]

    @property
    def root(self) -> Path:
        return self.out_dir / shards_dir_name(self.stages)

    def shard(self, rank: int) -> Path:
        return self.root / f"{rank:05d}"

    def marker(self, rank: int) -> Path:
        return self.shard(rank) / SHARD_MARKER

    def chunks(self, rank: int) -> Path:
        return self.shard(rank) / SHARD_CHUNKS

    def read_marker(self, rank: int) -> dict[str, Any] | None:
        """The shard's completion marker, or None if absent or unreadable (then the shard is redone)."""
        path = self.marker(rank)
        if not path.is_file():
            return None
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            log.warning("shard %d: completion marker %s is unreadable (%s); the shard will be redone", rank, path, exc)
            return None
        return marker if isinstance(marker, dict) and "fingerprint" in marker else None
