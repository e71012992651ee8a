"""Shards: the unit of work that every executor runs (in this process, or as a Slurm array task).

Shard ``rank`` of ``world_size`` owns seed question ``i`` when ``i % world_size == rank`` and synthetic
slot ``j`` when ``j % world_size == rank``; request seeds derive from the run seed and the global index,
so a rerun of one shard reproduces its choices. A shard writes its files under
``OUTDIR/<shards dir>/<rank>/`` and then, last, a completion marker carrying the config fingerprint and
its row counts (datatrove style). Reruns skip shards whose marker matches; ``gather`` merges complete
shards into the published files and refuses when one is missing or counts disagree.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from generation.backends.client import LLMClient
from generation.config import RunConfig
from generation.errors import ConfigError, InputDataError, SynthgenError
from generation.io import read_csv_rows, read_jsonl_objects, write_csv, write_json, write_jsonl
from generation.steps.common import DroppedRow
from generation.steps.questions import QuestionRow, generate_questions
from generation.steps.responses import PairRow, generate_responses

log = logging.getLogger(__name__)

STAGES = ("questions", "responses")
SHARD_QUESTION_FIELDS = (*QuestionRow.FIELDS, "qid")


class ShardsIncompleteError(SynthgenError):
    """Gather was asked to publish while shards are missing or inconsistent."""


def shards_dir_name(stages: tuple[str, ...]) -> str:
    """Full runs keep shards in ``shards/``; single-stage runs in ``shards-<stage>/``."""
    return "shards" if tuple(stages) == STAGES else f"shards-{stages[0]}"


def config_fingerprint(cfg: RunConfig, stages: tuple[str, ...], input_file: Path | None = None) -> str:
    """Hash of everything that decides a shard's content (not resources, names or output places)."""
    data = cfg.public_dict()
    # evaluation and mining read a run's outputs or make lists for later runs; they never change a shard.
    # domain_pack is the pack's name and description (metadata); the prompts they fill are hashed as they are.
    for key in ("name", "description", "domain_pack", "output_dir", "strict", "publish", "retry", "evaluation", "mining"):
        data.pop(key, None)
    # Where and how fast the model is served is a resource: a server restarted on another port or node,
    # or another timeout, must not turn a resumable run folder into a "different config".
    for backend in (data.get("backend"), (data.get("fallback") or {}).get("backend")):
        for key in ("base_url", "max_concurrency", "timeout_s", "expected_tokens_per_s", "transport", "concurrency", "health_check"):
            (backend or {}).pop(key, None)
    data["execution"] = {"shards": cfg.execution.shards}
    data["stages"] = list(stages)
    if input_file is not None:
        data["input_sha256"] = hashlib.sha256(input_file.read_bytes()).hexdigest()
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


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
        return self.shard(rank) / "done.json"

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


def check_fingerprints(layout: ShardLayout, fingerprint: str, world_size: int, force: bool) -> None:
    """Refuse to mix shards made with another config in one folder (``force`` deletes them instead)."""
    if not layout.root.is_dir():
        return
    foreign = []
    for child in sorted(layout.root.iterdir()):
        if not child.is_dir() or not child.name.isdigit():
            continue
        marker = layout.read_marker(int(child.name))
        if marker is not None and (marker["fingerprint"] != fingerprint or marker.get("world_size") != world_size):
            foreign.append(child)
    if not foreign:
        return
    if not force:
        raise ConfigError(
            f"{layout.root}: {len(foreign)} shard(s) were made with a different config or shard count "
            f"(fingerprint {json.loads((foreign[0] / 'done.json').read_text())['fingerprint']} vs {fingerprint}); "
            "use another --output-dir, or --force to discard them"
        )
    for child in foreign:
        log.warning("--force: discarding shard %s made with a different config", child)
        shutil.rmtree(child)


SHARD_FILES = ("questions.csv", "pairs.jsonl", "dropped.csv")


def file_digests(shard_dir: Path) -> dict[str, str]:
    """sha256 of each shard file, recorded in the completion marker."""
    return {name: hashlib.sha256((shard_dir / name).read_bytes()).hexdigest() for name in SHARD_FILES if (shard_dir / name).is_file()}


def changed_files(layout: ShardLayout, rank: int, marker: dict[str, Any]) -> list[str]:
    """Shard files that are missing or differ from the digests in its marker (markers without digests: none)."""
    expected = marker.get("files")
    if not isinstance(expected, dict):
        return []
    actual = file_digests(layout.shard(rank))
    return [name for name, digest in expected.items() if actual.get(name) != digest]


def pending_ranks(layout: ShardLayout, fingerprint: str, world_size: int, verify_files: bool = True) -> list[int]:
    """Shards without a matching completion marker, or (``verify_files``) whose files changed after it was written."""
    pending = []
    for rank in range(world_size):
        marker = layout.read_marker(rank)
        if marker is None or marker["fingerprint"] != fingerprint:
            pending.append(rank)
        elif verify_files and (changed := changed_files(layout, rank, marker)):
            log.warning(
                "shard %d: %s changed after its completion marker was written (damaged or edited); the shard will be redone",
                rank, ", ".join(str(layout.shard(rank) / name) for name in changed),
            )  # fmt: skip
            pending.append(rank)
    return pending


# ------------------------------------------------------------------------------------------ one shard


def input_questions(path: Path) -> list[QuestionRow]:
    """Questions for a responses-only run, with ids from their row index."""
    from generation.pipeline import read_questions_file

    return [
        QuestionRow(row.question, row.source_question, row.modification, row.origin, f"in-{index:07d}")
        for index, row in enumerate(read_questions_file(path))
    ]


async def _generate_shard(
    cfg: RunConfig, client: LLMClient, rank: int, world_size: int, stages: tuple[str, ...],
    seeds: list[str] | None, questions: list[QuestionRow] | None, show_progress: bool,
) -> tuple[list[QuestionRow], list[PairRow], list[DroppedRow], dict[str, Any]]:  # fmt: skip
    stats: dict[str, Any] = {}
    dropped: list[DroppedRow] = []
    pairs: list[PairRow] = []
    await client.check_ready()
    if "questions" in stages:
        assert seeds is not None
        outcome = await generate_questions(seeds, cfg, client, show_progress, rank, world_size)
        questions, stats["questions"] = outcome.rows, outcome.stats
        dropped.extend(outcome.dropped)
    assert questions is not None
    if "responses" in stages:
        result = await generate_responses(questions, cfg, client, show_progress)
        pairs, stats["responses"] = result.pairs, result.stats
        dropped.extend(result.dropped)
    return questions, pairs, dropped, stats


def run_shard(
    cfg: RunConfig,
    out_dir: Path,
    rank: int,
    world_size: int,
    stages: tuple[str, ...] = STAGES,
    questions_file: Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run one shard to completion (or skip it if its marker matches) and return its marker."""
    from generation.pipeline import RunPaths, mirrored_log, open_cache, prepare_seed_questions, primary_endpoint

    layout = ShardLayout(out_dir, stages)
    fingerprint = config_fingerprint(cfg, stages, questions_file)
    existing = layout.read_marker(rank)
    if existing is not None and existing["fingerprint"] == fingerprint and not changed_files(layout, rank, existing):
        log.info("shard %d/%d is already complete; skipping", rank, world_size)
        return existing
    shard_dir = layout.shard(rank)
    paths = RunPaths(shard_dir)
    started = datetime.now(timezone.utc)
    seeds: list[str] | None = None
    questions: list[QuestionRow] | None = None
    if "questions" in stages:
        seeds, input_stats = prepare_seed_questions(cfg)
    else:
        assert questions_file is not None
        all_questions = input_questions(questions_file)
        questions = [q for i, q in enumerate(all_questions) if i % world_size == rank]
        input_stats = {"responses_input": {"file": str(questions_file), "rows": len(all_questions)}}
    shard_dir.mkdir(parents=True, exist_ok=True)
    with mirrored_log(paths.run_log), primary_endpoint(cfg, paths) as base_url, open_cache(cfg, paths) as cache:
        if cache is not None and (finished := len(cache)):
            log.info("shard %d/%d: resuming: %d finished request(s) in %s will not be sent again", rank, world_size, finished, paths.cache)

        async def generate() -> tuple[list[QuestionRow], list[PairRow], list[DroppedRow], dict[str, Any], dict[str, Any]]:
            async with LLMClient(cfg.backend, base_url, cfg.retry, cfg.fallback, cache) as client:
                outcome = await _generate_shard(cfg, client, rank, world_size, stages, seeds, questions, show_progress)
                return (*outcome, client.usage_summary())

        shard_questions, pairs, dropped, stats, usage = asyncio.run(generate())

    write_csv(paths.questions, SHARD_QUESTION_FIELDS, ({**q.as_row(), "qid": q.qid} for q in shard_questions))
    write_jsonl(shard_dir / "pairs.jsonl", ({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "provenance": p.provenance} for p in pairs))
    write_csv(paths.dropped, DroppedRow.FIELDS, (row.as_row() for row in dropped))
    marker = {
        "rank": rank,
        "world_size": world_size,
        "fingerprint": fingerprint,
        "stages": list(stages),
        "rows": {"questions": len(shard_questions), "pairs": len(pairs), "dropped": len(dropped)},
        "files": file_digests(shard_dir),  # gather and reruns check these: damaged files are never trusted
        "input": input_stats,  # the same in every shard: what was loaded and preprocessed
        "stats": stats,
        "usage": usage,
        "fallback_used": any(p.provenance.get("fallback_used") for p in pairs) or "fallback" in usage,
        "endpoint_failure": _read_json(shard_dir / "endpoint_failure.json"),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(layout.marker(rank), marker)  # last: its presence means the shard is complete
    log.info("shard %d/%d complete: %d questions, %d pairs", rank, world_size, len(shard_questions), len(pairs))
    return marker


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# ---------------------------------------------------------------------------------------------- gather


def merge_stats(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum numbers and merge nested mappings across shards (booleans: any)."""
    merged: dict[str, Any] = {}
    for item in items:
        for key, value in item.items():
            if isinstance(value, bool):
                merged[key] = merged.get(key, False) or value
            elif isinstance(value, (int, float)):
                merged[key] = merged.get(key, 0) + value
            elif isinstance(value, dict):
                merged[key] = merge_stats([merged.get(key, {}), value])
            else:
                merged.setdefault(key, value)
    return merged


def _question_order(qid: str) -> tuple[int, str]:
    return (0 if qid.startswith(("seed-", "in-")) else 1, qid)


def gather(cfg: RunConfig, out_dir: Path, stages: tuple[str, ...] = STAGES, questions_file: Path | None = None) -> dict[str, Any]:
    """Merge complete shards into the published files; returns the merged stats and usage.

    Refuses (listing the shards) when any shard lacks a matching completion marker, and refuses to
    publish when a shard's files disagree with its marker or rows would be duplicated.
    """
    from generation.pipeline import RunPaths, write_pairs, write_questions

    world_size = cfg.execution.shards
    layout = ShardLayout(out_dir, stages)
    fingerprint = config_fingerprint(cfg, stages, questions_file)
    missing = pending_ranks(layout, fingerprint, world_size, verify_files=False)
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise ShardsIncompleteError(
            f"{layout.root}: {len(missing)} of {world_size} shard(s) are not complete (no matching completion marker): {shown}"
        )
    markers = [layout.read_marker(rank) for rank in range(world_size)]
    questions: list[QuestionRow] = []
    pairs: list[PairRow] = []
    dropped_rows: list[dict[str, str]] = []
    for rank, marker in enumerate(markers):
        assert marker is not None
        shard_dir = layout.shard(rank)
        changed = changed_files(layout, rank, marker)
        try:
            rows = read_csv_rows(shard_dir / "questions.csv", SHARD_QUESTION_FIELDS, allow_empty=True)
            shard_pairs = [record for _, record in read_jsonl_objects(shard_dir / "pairs.jsonl")]
        except InputDataError as exc:
            if not changed:
                raise
            raise ShardsIncompleteError(
                f"{shard_dir}: {', '.join(changed)} changed after the shard finished ({exc}); rerun the same command to redo the shard"
            ) from None
        if len(rows) != marker["rows"]["questions"] or len(shard_pairs) != marker["rows"]["pairs"]:
            raise ShardsIncompleteError(
                f"{shard_dir}: files hold {len(rows)} questions / {len(shard_pairs)} pairs but the marker says "
                f"{marker['rows']['questions']} / {marker['rows']['pairs']}; delete {layout.marker(rank)} and rerun the shard"
            )
        if changed:
            raise ShardsIncompleteError(
                f"{shard_dir}: {', '.join(changed)} changed after the shard finished (sha256 differs from what the marker says); "
                "rerun the same command to redo the shard"
            )
        questions.extend(QuestionRow(r["question"], r["source_question"], r["modification"], r["origin"], r["qid"]) for r in rows)
        pairs.extend(PairRow(p["prompt"], p["chosen"], p["rejected"], p["provenance"]) for p in shard_pairs)
        dropped_rows.extend(read_csv_rows(shard_dir / "dropped.csv", DroppedRow.FIELDS, allow_empty=True))

    for kind, ids in (("question", [q.qid for q in questions]), ("pair", [p.provenance.get("qid", "") for p in pairs])):
        duplicated = [qid for qid, count in Counter(ids).items() if count > 1]
        if duplicated:
            raise ShardsIncompleteError(f"{layout.root}: {len(duplicated)} {kind} id(s) appear in more than one row (e.g. {duplicated[0]}); refusing to publish duplicates")
    questions.sort(key=lambda q: _question_order(q.qid))
    position = {q.qid: index for index, q in enumerate(questions)}
    if "responses" in stages:
        pairs.sort(key=lambda p: position.get(str(p.provenance.get("qid")), len(position)))

    paths = RunPaths(out_dir)
    if "questions" in stages:
        write_questions(paths, questions)
    if "responses" in stages:
        write_pairs(paths, pairs)
    write_csv(paths.dropped, DroppedRow.FIELDS, dropped_rows)
    stats = merge_stats([m["stats"] for m in markers])  # type: ignore[index]
    usage = merge_stats([m["usage"] for m in markers])  # type: ignore[index]
    return {
        "stats": {**markers[0]["input"], **stats},  # type: ignore[index]
        "usage": usage,
        "fallback_used": any(m["fallback_used"] for m in markers),  # type: ignore[index]
        "shards": world_size,
        "rows": {"questions": len(questions), "pairs": len(pairs), "dropped": len(dropped_rows)},
    }
