"""Shards: the unit of work that every executor runs (in this process, or as a Slurm array task).

Shard ``rank`` of ``world_size`` owns seed question ``i`` when ``i % world_size == rank`` and synthetic
slot ``j`` when ``j % world_size == rank``; request seeds derive from the run seed and the global index,
so a rerun of one shard reproduces its choices. A shard streams its rows through the steps with the one
runner (:mod:`generation.run.runner`), appends finished rows to its files under
``OUTDIR/<shards dir>/<rank>/`` in chunks (:mod:`generation.run.chunks`: a killed shard resumes after its last
complete chunk) and then, last, writes a completion marker carrying the config fingerprint, its row counts
and the sha256 of its files (datatrove style). Reruns skip shards whose marker matches; gather
(:mod:`generation.run.gather`) merges complete shards into the published files and refuses when one is
missing or its files disagree with its marker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

from generation.backends.client import LLMClient
from generation.backends.routing import judge_route
from generation.config import RunConfig
from generation.errors import ConfigError, OutputWriteError, SynthgenError
from generation.io import file_sha256, iter_csv_rows, write_json
from generation.run.chunks import SHARD_QUESTION_FIELDS, ChunkState, ShardWriter
from generation.run.layout import (  # noqa: F401 - re-exported for executors
    ENDPOINT_FAILURE, SHARD_CHUNKS, SHARD_FILES, SHARD_MARKER, SHARD_QUESTIONS, STAGES, RunPaths, ShardLayout, shards_dir_name,
)
from generation.run.runner import Runner, StepStats
from generation.steps.base import Row, Step
from generation.steps.strategies import LENGTH_REASON, is_plain_prompted, pair_provenance, strategy_stats

log = logging.getLogger(__name__)


class ShardsIncompleteError(SynthgenError):
    """Gather was asked to publish while shards are missing or inconsistent."""


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
    # a prompt that only another pair strategy uses decides nothing (base packs gained prompts.corrupt later)
    if cfg.responses.strategy != "corrupt":
        data["prompts"].pop("corrupt", None)
    if not is_plain_prompted(cfg):  # these strategies decide with the evaluator's checks, scorer and judge
        ev = cfg.evaluation
        data["responses_checks"] = {
            "thresholds": ev.thresholds.model_dump(mode="json"), "patterns": ev.patterns.model_dump(mode="json"), "antonyms": ev.antonyms,
            "plausibility": ev.plausibility.model_dump(mode="json"), "judge": {"model": ev.judge.model, "rubric": ev.judge.rubric and ev.judge.rubric.model_dump()},
        }  # fmt: skip
    data["execution"] = {"shards": cfg.execution.shards}
    data["stages"] = list(stages)
    if input_file is not None:
        data["input_sha256"] = hashlib.sha256(input_file.read_bytes()).hexdigest()
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


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


def file_digests(shard_dir: Path) -> dict[str, str]:
    """sha256 of each shard file, recorded in the completion marker."""
    return {name: file_sha256(shard_dir / name) for name in SHARD_FILES if (shard_dir / name).is_file()}


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


def input_question_rows(path: Path, rank: int, world_size: int, scrubber: Any, skip: int = 0) -> Iterator[dict[str, Any]]:
    """Rows of a responses-only run (questions from a file, ids from their row index), PII-scrubbed, lazily."""
    from generation.pipeline import iter_questions_file

    owned = ((index, row) for index, row in enumerate(iter_questions_file(path)) if index % world_size == rank)
    for index, question in islice(owned, skip, None):
        fields: dict[str, Any] = {"qid": f"in-{index:07d}", "origin": question.origin, "question": question.question,
                                  "source_question": question.source_question, "modification": question.modification}  # fmt: skip
        if scrubber is not None:  # questions from a user's file were never scrubbed
            fields["question"], counts = scrubber.scrub(question.question)
            fields["source_question"], source_counts = scrubber.scrub(question.source_question)
            fields["masked_input"] = counts if question.source_question == question.question else counts + source_counts
        yield fields


class ShardRun:
    """One shard's rows, steps, output and figures; :meth:`run` does the work (resuming after a chunk)."""

    def __init__(self, cfg: RunConfig, rank: int, world_size: int, stages: tuple[str, ...], questions_file: Path | None):
        from generation.pii import scrubber_for

        self.cfg, self.rank, self.world_size, self.stages = cfg, rank, world_size, stages
        self.questions_file = questions_file
        self.scrubber = scrubber_for(cfg.privacy.pii)
        self.counters: Counter[str] = Counter()
        self.masked_input: Counter[str] = Counter()
        self.steps: list[Step] = []
        self.index = None
        if "questions" in stages:
            from generation.dedup import NearDuplicateIndex
            from generation.pipeline import prepare_seed_questions
            from generation.steps.questions import QuestionStep, question_rows

            self.seeds, self.input_stats = prepare_seed_questions(cfg)
            self.index = NearDuplicateIndex(cfg.questions.filters.near_duplicate_ratio)
            n_seeds, n_slots, _ = question_rows(self.seeds, cfg, rank, world_size)
            self.planned = {"seed_questions": n_seeds, "synthetic_requested": n_slots}
            self.total = n_seeds + n_slots
            self.steps.append(QuestionStep(cfg, self.index))
            self.input_fields: tuple[str, ...] = ("qid", "origin", "question", "source_question", "modification", "slot", "modifications")
        else:
            from generation.pipeline import count_questions_file

            assert questions_file is not None
            rows = count_questions_file(questions_file)
            self.input_stats = {"responses_input": {"file": str(questions_file), "rows": rows}}
            self.total = len(range(rank, rows, world_size))
            self.planned = {}
            self.input_fields = ("qid", "origin", "question", "source_question", "modification")
        if "responses" in stages:
            from generation.steps.strategies import response_steps

            self.steps += response_steps(cfg)

    def rows(self, skip: int) -> Iterator[dict[str, Any]]:
        if "questions" in self.stages:
            from generation.steps.questions import question_rows

            return islice(question_rows(self.seeds, self.cfg, self.rank, self.world_size)[2], skip, None)
        assert self.questions_file is not None
        return input_question_rows(self.questions_file, self.rank, self.world_size, self.scrubber, skip)

    def restore(self, resumed: ChunkState, shard_dir: Path) -> dict[str, Any]:
        """Figures of the rows before the last complete chunk; the near-duplicate index gets their questions."""
        state = resumed.state
        self.counters.update(state.get("counters") or {})
        self.masked_input.update(state.get("masked_input") or {})
        if self.index is not None:
            for seed in self.seeds:
                self.index.add(seed)
            for row in iter_csv_rows(shard_dir / SHARD_QUESTIONS, SHARD_QUESTION_FIELDS):
                if row["origin"] == "synthetic":
                    self.index.add(row["question"])
        return state

    def emit(self, writer: ShardWriter, row: Row) -> None:
        """Write one finished row: its question (if it passed the question step), its pair, its dropped candidates."""
        fields = row.fields
        self.counters[f"rows_{fields['origin']}"] += 1
        if "masked_input" in fields:
            self.masked_input.update(fields["masked_input"])
        question = None
        if "question" in fields and row.failed != "questions":
            question = {name: fields.get(name, "") for name in SHARD_QUESTION_FIELDS}
            self.counters["questions"] += 1
        pair = None
        if "responses" in self.stages and row.failed is None:
            chosen, rejected = fields["chosen_meta"], fields["rejected_meta"]
            fallback = "fallback" in (chosen["backend"], rejected["backend"])
            self.counters["fallback_pairs"] += fallback
            self.counters["pairs"] += 1
            pair = {
                "prompt": fields["question"], "chosen": fields["chosen"], "rejected": fields["rejected"],
                "provenance": {
                    "qid": fields["qid"], "origin": fields["origin"], "source_question": fields["source_question"],
                    "modification": fields.get("modification", ""), "chosen_model": chosen["model"], "rejected_model": rejected["model"],
                    "chosen_backend": chosen["backend"], "rejected_backend": rejected["backend"], "endpoint": chosen["endpoint"],
                    "fallback_used": fallback, "chosen_seed": chosen["seed"], "rejected_seed": rejected["seed"], "run_seed": self.cfg.seed,
                },
            }  # fmt: skip
            how = pair_provenance(self.cfg, fields)
            if how is not None:
                pair["provenance"]["pair"] = how
            self.counters["length_fixed"] += any(d.reason.endswith(LENGTH_REASON) for d in row.dropped)
        elif "responses" in self.stages and row.failed is not None and (row.failed_reason or "") == LENGTH_REASON:
            self.counters["length_dropped"] += 1
        writer.write(question, pair, row.dropped)

    def stage_stats(self, runner: Runner) -> dict[str, Any]:
        """The figures per stage that summaries and the dataset card show, from the step stats and counters."""
        steps = runner.stats_dict()
        stats: dict[str, Any] = {"steps": steps}
        if "questions" in self.stages:
            q = steps["questions"]
            seeds, slots = self.planned["seed_questions"], self.planned["synthetic_requested"]
            rows_out = seeds + q["rows_out"]
            stats["questions"] = {
                "seed_questions": seeds, "target": seeds + slots, "synthetic_requested": slots, "synthetic_accepted": q["rows_out"],
                "rejected_candidates": q["rejected_candidates"], "give_ups": sum(q["gave_up"].values()), "rows_out": rows_out,
                "shortfall": max(0, seeds + slots - rows_out), "pii_masked": q["pii_masked"],
                "near_duplicate_s": q.get("near_duplicate_s", 0.0), "near_duplicate_checks": q.get("near_duplicate_checks", 0),
            }  # fmt: skip
        if "responses" in self.stages:
            answer_steps = [StepStats.from_dict(steps[step.name]) for step in self.steps if step.stage == "responses"]
            rows_in, pairs = self.counters["questions"], self.counters["pairs"]
            stats["responses"] = {
                "rows_in": rows_in, "rows_out": pairs, "questions_dropped": rows_in - pairs,
                "rejected_candidates": dict(sorted(sum((s.rejected_candidates for s in answer_steps), Counter()).items())),
                "fallback_pairs": self.counters["fallback_pairs"],
                "pii_masked": dict(sorted(sum((s.pii_masked for s in answer_steps), Counter()).items())),
                "pii_masked_input": dict(sorted(self.masked_input.items())),
            }  # fmt: skip
            stats["responses"].update(strategy_stats(self.cfg, answer_steps, self.counters))
        stats["engine"] = dict(runner.engine)
        return stats

    async def run(self, client: Any, writer: ShardWriter, resumed: ChunkState | None, show_progress: bool) -> dict[str, Any]:
        skip = resumed.rows_consumed if resumed else 0
        earlier = self.restore(resumed, writer.dir) if resumed else {}
        if resumed is None and self.index is not None:
            for seed in self.seeds:
                self.index.add(seed)
        runner = Runner(
            self.steps, client, scrubber=self.scrubber, input_fields=self.input_fields, progress="rows" if show_progress else None,
            total=self.total, initial=skip, stats=earlier.get("steps"),
        )  # fmt: skip
        writer.snapshot = lambda: {
            "steps": {name: stats.as_dict() for name, stats in runner.stats.items()}, "counters": dict(self.counters),
            "masked_input": dict(self.masked_input), "usage": client.usage_summary(),
        }  # fmt: skip
        names = " -> ".join(step.name for step in self.steps)
        log.info("shard %d/%d: %d row(s) through %s%s", self.rank, self.world_size, self.total - skip, names,
                 f" (resuming after chunk {resumed.chunks}: {skip} row(s) already written)" if resumed else "")  # fmt: skip
        await client.check_ready()
        try:
            await runner.run(self.rows(skip), lambda row: self.emit(writer, row))
        except (SynthgenError, KeyboardInterrupt, asyncio.CancelledError) as exc:
            if not isinstance(exc, OutputWriteError):  # keep the rows that did finish
                try:
                    writer.commit()
                except OutputWriteError:
                    pass
            raise
        writer.commit()
        stats = self.stage_stats(runner)
        if resumed:
            stats["resume"] = {"chunks": resumed.chunks, "rows_restored": skip}
        return {"stats": stats, "usage": client.usage_summary(), "usage_before_resume": earlier.get("usage")}


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
    from generation.pipeline import mirrored_log, open_cache, primary_endpoint

    layout = ShardLayout(out_dir, stages)
    fingerprint = config_fingerprint(cfg, stages, questions_file)
    existing = layout.read_marker(rank)
    if existing is not None and existing["fingerprint"] == fingerprint and not changed_files(layout, rank, existing):
        log.info("shard %d/%d is already complete; skipping", rank, world_size)
        return existing
    shard_dir = layout.shard(rank)
    paths = RunPaths(shard_dir)
    started = datetime.now(timezone.utc)
    work = ShardRun(cfg, rank, world_size, stages, questions_file)
    shard_dir.mkdir(parents=True, exist_ok=True)
    layout.marker(rank).unlink(missing_ok=True)  # a stale or damaged marker must not survive a redo
    purposes = {step.name for step in work.steps}
    with mirrored_log(paths.run_log), primary_endpoint(cfg, paths) as base_url, open_cache(cfg, paths) as cache, \
            judge_route(cfg, shard_dir, purposes) as routed:
        if cache is not None and (finished := len(cache)):
            log.info("shard %d/%d: resuming: %d finished request(s) in %s will not be sent again", rank, world_size, finished, paths.cache)
        writer = ShardWriter(shard_dir, fingerprint, cfg.execution.chunk_rows, cfg.execution.chunk_seconds)
        resumed = writer.open()

        async def generate() -> dict[str, Any]:
            async with LLMClient(cfg.backend, base_url, cfg.retry, cfg.fallback, cache) as client:
                if routed is None:
                    return await work.run(client, writer, resumed, show_progress)
                async with routed(client) as both:  # the ranked strategy's judge requests go to the judge
                    return await work.run(both, writer, resumed, show_progress)

        try:
            outcome = asyncio.run(generate())
            writer.finish()
        except BaseException:
            writer.close()
            raise
    usage = outcome["usage"]
    marker = {
        "rank": rank,
        "world_size": world_size,
        "fingerprint": fingerprint,
        "stages": list(stages),
        "rows": {name: writer.rows(file) for name, file in (("questions", SHARD_QUESTIONS), ("pairs", "pairs.jsonl"), ("dropped", "dropped.csv"))},
        "files": file_digests(shard_dir),  # gather and reruns check these: damaged files are never trusted
        "input": work.input_stats,  # the same in every shard: what was loaded and preprocessed
        "stats": outcome["stats"],
        "usage": usage,
        "usage_before_resume": outcome["usage_before_resume"],
        "fallback_used": work.counters["fallback_pairs"] > 0 or "fallback" in usage,
        "endpoint_failure": _read_json(shard_dir / ENDPOINT_FAILURE),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(layout.marker(rank), marker)  # last: its presence means the shard is complete
    writer.discard_marker()
    log.info("shard %d/%d complete: %d questions, %d pairs", rank, world_size, marker["rows"]["questions"], marker["rows"]["pairs"])
    return marker


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def gather(cfg: RunConfig, out_dir: Path, stages: tuple[str, ...] = STAGES, questions_file: Path | None = None) -> dict[str, Any]:
    """Merge complete shards into the published files (see :func:`generation.run.gather.gather`)."""
    from generation.run.gather import gather as gather_shards

    return gather_shards(cfg, out_dir, stages, questions_file)
