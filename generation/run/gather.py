"""Gather: merge complete shards into the published files, streaming.

Shards hold their rows sorted by question id (seeds, then synthetic slots), so the published files are a
k-way merge (``heapq.merge``) of the shard files read line by line, never all rows at once. While it merges,
gather checks what the shards cannot see: a question id in two shards (refused) and, when questions were
generated in more than one shard, near-duplicates across shards (the same rule as the question filter;
the later question and its pair are dropped into ``dropped.csv`` with reason
``near_duplicate_across_shards``). Every shard file is hashed as it is read; a shard whose files disagree
with its completion marker (row counts, sha256) is refused, and nothing is published: the output files are
written to temporary files and renamed into place only when everything checked out.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from generation.config import RunConfig
from generation.errors import InputDataError
from generation.io import atomic_write, iter_csv_rows, iter_jsonl_objects
from generation.run.chunks import SHARD_QUESTION_FIELDS
from generation.run.layout import SHARD_DROPPED, SHARD_PAIRS, SHARD_QUESTIONS, STAGES, RunPaths, ShardLayout
from generation.shards import ShardsIncompleteError, changed_files, config_fingerprint, pending_ranks
from generation.steps.common import DroppedRow
from generation.steps.questions import QuestionRow

log = logging.getLogger(__name__)

PAIR_FIELDS = ("prompt", "chosen", "rejected")
CROSS_SHARD_REASON = "near_duplicate_across_shards"


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


def question_order(qid: str) -> tuple[int, str]:
    """Published order: seed (and input) questions first, then synthetic ones, each by id."""
    return (0 if qid.startswith(("seed-", "in-")) else 1, qid)


class _Hashing(io.RawIOBase):
    """A raw binary reader that hashes every byte read through it."""

    def __init__(self, path: Path):
        self.raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count or 0

    def finish(self) -> str:
        """Read what is left (so the digest covers the whole file) and return the hex digest."""
        while block := self.raw.read(1 << 20):
            self.digest.update(block)
        return self.digest.hexdigest()

    def close(self) -> None:
        self.raw.close()
        super().close()


class _ShardReader:
    """One complete shard's files, read lazily and hashed on the way."""

    def __init__(self, layout: ShardLayout, rank: int, marker: dict[str, Any]):
        self.layout, self.rank, self.marker = layout, rank, marker
        self.dir = layout.shard(rank)
        self.counts = {"questions": 0, "pairs": 0, "dropped": 0}
        self.digests: dict[str, str] = {}
        self._open: list[tuple[str, _Hashing, IO[str]]] = []

    def _text(self, name: str) -> tuple[_Hashing, IO[str]]:
        path = self.dir / name
        if not path.is_file():
            raise self.refuse(InputDataError(f"{path}: file not found"))
        raw = _Hashing(path)
        text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", newline="")
        self._open.append((name, raw, text))
        return raw, text

    def refuse(self, exc: InputDataError) -> Exception:
        """A shard file that cannot be read: the shard changed after it finished, or it is bad input."""
        changed = changed_files(self.layout, self.rank, self.marker)
        if not changed:
            return exc
        return ShardsIncompleteError(
            f"{self.dir}: {', '.join(changed)} changed after the shard finished ({exc}); rerun the same command to redo the shard"
        )

    def _csv(self, name: str, required: tuple[str, ...]) -> Iterator[dict[str, str]]:
        raw, text = self._text(name)
        try:
            yield from iter_csv_rows(self.dir / name, required, text)
        except InputDataError as exc:
            raise self.refuse(exc) from None
        self.digests[name] = raw.finish()

    def questions(self) -> Iterator[tuple[tuple[int, str], dict[str, str]]]:
        for row in self._csv(SHARD_QUESTIONS, SHARD_QUESTION_FIELDS):
            self.counts["questions"] += 1
            yield question_order(row["qid"]), row

    def pairs(self) -> Iterator[tuple[tuple[int, str], dict[str, Any]]]:
        raw, text = self._text(SHARD_PAIRS)
        try:
            for number, record in iter_jsonl_objects(self.dir / SHARD_PAIRS, text):
                if not isinstance(record.get("provenance"), dict):
                    raise InputDataError(f"{self.dir / SHARD_PAIRS}: line {number}: expected a pair with its provenance")
                self.counts["pairs"] += 1
                yield question_order(str(record["provenance"].get("qid", ""))), record
        except InputDataError as exc:
            raise self.refuse(exc) from None
        self.digests[SHARD_PAIRS] = raw.finish()

    def dropped(self) -> Iterator[dict[str, str]]:
        for row in self._csv(SHARD_DROPPED, DroppedRow.FIELDS):
            self.counts["dropped"] += 1
            yield row

    def verify(self) -> None:
        """After reading: counts and digests must match the marker (the order of checks is the old one)."""
        rows = self.marker["rows"]
        if self.counts["questions"] != rows["questions"] or self.counts["pairs"] != rows["pairs"]:
            raise ShardsIncompleteError(
                f"{self.dir}: files hold {self.counts['questions']} questions / {self.counts['pairs']} pairs but the marker says "
                f"{rows['questions']} / {rows['pairs']}; delete {self.layout.marker(self.rank)} and rerun the shard"
            )
        expected = self.marker.get("files")
        if isinstance(expected, dict):
            changed = [name for name, digest in expected.items() if self.digests.get(name) != digest]
            if changed:
                raise ShardsIncompleteError(
                    f"{self.dir}: {', '.join(changed)} changed after the shard finished (sha256 differs from what the marker says); "
                    "rerun the same command to redo the shard"
                )

    def close(self) -> None:
        for _, raw, text in self._open:
            text.close()
            raw.close()


def gather(cfg: RunConfig, out_dir: Path, stages: tuple[str, ...] = STAGES, questions_file: Path | None = None) -> dict[str, Any]:
    """Merge complete shards into the published files; returns the merged stats and usage.

    Refuses (listing the shards) when any shard lacks a matching completion marker, and refuses to publish
    when a shard's files disagree with its marker or rows would be duplicated.
    """
    from generation.dedup import NearDuplicateIndex
    from generation.publish import to_conversational

    world_size = cfg.execution.shards
    layout = ShardLayout(out_dir, stages)
    fingerprint = config_fingerprint(cfg, stages, questions_file)
    missing = pending_ranks(layout, fingerprint, world_size, verify_files=False)
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise ShardsIncompleteError(
            f"{layout.root}: {len(missing)} of {world_size} shard(s) are not complete (no matching completion marker): {shown}"
        )
    markers: list[dict[str, Any]] = [layout.read_marker(rank) for rank in range(world_size)]  # type: ignore[misc]
    _allow_open_files(2 * world_size + 64)  # the merge reads every shard's questions and pairs at once
    readers = [_ShardReader(layout, rank, marker) for rank, marker in enumerate(markers)]
    paths = RunPaths(out_dir)
    with_questions, with_pairs = "questions" in stages, "responses" in stages
    index = NearDuplicateIndex(cfg.questions.filters.near_duplicate_ratio) if with_questions and world_size > 1 else None
    duplicated: dict[str, str] = {}
    counts = {"questions": 0, "pairs": 0, "dropped": 0}
    dropped_here = {"questions": 0, "pairs": 0}
    try:
        with ExitStack() as stack:
            questions_out = csv.writer(stack.enter_context(atomic_write(paths.questions, newline="")), lineterminator="\n") if with_questions else None
            if questions_out is not None:
                questions_out.writerow(QuestionRow.FIELDS)
            if with_pairs:
                pairs_out = csv.writer(stack.enter_context(atomic_write(paths.pairs, newline="")), lineterminator="\n")
                pairs_out.writerow(PAIR_FIELDS)
                chat_out = stack.enter_context(atomic_write(paths.pairs_jsonl))
                provenance_out = stack.enter_context(atomic_write(paths.provenance))
            dropped_out = csv.writer(stack.enter_context(atomic_write(paths.dropped, newline="")), lineterminator="\n")
            dropped_out.writerow(DroppedRow.FIELDS)
            gather_drops: list[list[Any]] = []

            pairs = heapq.merge(*(reader.pairs() for reader in readers), key=lambda item: item[0])
            next_pair = next(pairs, None)
            last_qid = last_pair_qid = None
            for _, question in heapq.merge(*(reader.questions() for reader in readers), key=lambda item: item[0]):
                qid = question["qid"]
                if qid == last_qid:
                    duplicated.setdefault("question", qid)
                last_qid = qid
                pair = None
                while next_pair is not None and question_order(str(next_pair[1]["provenance"].get("qid"))) <= question_order(qid):
                    pair_qid = str(next_pair[1]["provenance"].get("qid"))
                    if pair_qid == last_pair_qid:
                        duplicated.setdefault("pair", pair_qid)
                    last_pair_qid = pair_qid
                    if pair_qid == qid and pair is None:
                        pair = next_pair[1]
                    next_pair = next(pairs, None)
                if index is not None:
                    if question["origin"] == "synthetic" and (twin := index.find(question["question"])) is not None:
                        gather_drops.append(["gather", CROSS_SHARD_REASON, question["question"], question["source_question"],
                                             question["modification"], 0, f"similar to: {twin}"])  # fmt: skip
                        dropped_here["questions"] += 1
                        dropped_here["pairs"] += pair is not None
                        continue
                    index.add(question["question"])
                if questions_out is not None:
                    questions_out.writerow([question[name] for name in QuestionRow.FIELDS])
                counts["questions"] += 1
                if with_pairs and pair is not None:
                    row = {name: pair[name] for name in PAIR_FIELDS}
                    pairs_out.writerow([row[name] for name in PAIR_FIELDS])
                    chat_out.write(json.dumps(to_conversational(row), ensure_ascii=False) + "\n")
                    provenance_out.write(json.dumps({"row": counts["pairs"], "prompt": row["prompt"], **pair["provenance"]}, ensure_ascii=False) + "\n")
                    counts["pairs"] += 1
            while next_pair is not None:  # pairs without a question (only in damaged shards): counted, then refused
                next_pair = next(pairs, None)
            for reader in readers:
                for row in reader.dropped():
                    dropped_out.writerow([row[name] for name in DroppedRow.FIELDS])
                    counts["dropped"] += 1
            for values in gather_drops:
                dropped_out.writerow(values)
                counts["dropped"] += 1
            for reader in readers:
                reader.verify()
            for kind, qid in duplicated.items():
                raise ShardsIncompleteError(f"{layout.root}: {kind} id(s) appear in more than one row (e.g. {qid}); refusing to publish duplicates")
    finally:
        for reader in readers:
            reader.close()
    if dropped_here["questions"]:
        log.warning("gather: %d question(s) near-duplicate a question of another shard; dropped (%d pair(s)), see %s",
                    dropped_here["questions"], dropped_here["pairs"], paths.dropped)  # fmt: skip
    stats = merge_stats([m["stats"] for m in markers])
    usage = merge_stats([m["usage"] for m in markers])
    _fold_gather_drops(stats, dropped_here, index)
    return {
        "stats": {**markers[0]["input"], **stats},
        "usage": usage,
        "fallback_used": any(m["fallback_used"] for m in markers),
        "shards": world_size,
        "rows": counts,
    }


def _allow_open_files(needed: int) -> None:
    """Raise the soft limit on open files when a merge of many shards needs more (up to the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning("gather: %d shards need ~%d open files but the limit is %d; raise it with ulimit -n", needed // 2, needed, hard)


def _fold_gather_drops(stats: dict[str, Any], dropped: dict[str, int], index: Any) -> None:
    """Keep the stage figures true to the published files after gather dropped rows."""
    if index is None:
        return
    stats["gather"] = {"near_duplicates_dropped": dropped["questions"], "pairs_dropped": dropped["pairs"],
                       "near_duplicate_s": round(index.seconds, 3)}  # fmt: skip
    questions, responses = stats.get("questions"), stats.get("responses")
    if questions and dropped["questions"]:
        questions["rows_out"] -= dropped["questions"]
        questions["synthetic_accepted"] -= dropped["questions"]
        questions["shortfall"] = max(0, questions["target"] - questions["rows_out"])
        questions.setdefault("rejected_candidates", {})
        questions["rejected_candidates"][CROSS_SHARD_REASON] = dropped["questions"]
    if responses and dropped["questions"]:
        responses["rows_in"] -= dropped["questions"]
        responses["rows_out"] -= dropped["pairs"]
        responses["questions_dropped"] = responses["rows_in"] - responses["rows_out"]
