"""The pipeline: load -> preprocess -> modify questions -> chosen/rejected answers -> write the run folder.

I/O stays here and in :mod:`generation.io`; the stages themselves are functions over rows.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from generation import __version__
from generation.backends.cache import RequestCache
from generation.backends.client import resolve_api_key
from generation.config import RunConfig, dump_config_yaml
from generation.endpoints.embedded import EmbeddedServer, check_server_installed, locate_model_file
from generation.errors import InputDataError, OutputWriteError, RedactSecrets, ServerStartError, redact
from generation.io import guard_csv_file, iter_csv_rows, read_json_object, write_csv, write_json, write_jsonl, write_text
from generation.pii import privacy_summary, scrubber_for
from generation.preprocess import PreprocessReport, iter_preprocess
from generation.publish import PAIR_FIELDS, PAIRS_PARQUET, to_conversational, write_card, write_dataset_files
from generation.executors.base import RunPlan
from generation.run.layout import RunPaths  # noqa: F401 - where callers have always found it
from generation.shards import STAGES, ShardLayout, check_fingerprints, config_fingerprint, gather
from generation.sources import open_questions
from generation.steps.common import derive_seed, render_messages
from generation.steps.questions import QuestionRow
from generation.steps.responses import PairRow

log = logging.getLogger(__name__)


def output_dir_for(cfg: RunConfig, override: str | Path | None = None) -> Path:
    """The run folder: ``-o`` if given, else ``output_dir`` from config, else ``outputs/<config name>``."""
    return Path(override or cfg.output_dir or Path("outputs") / cfg.name)


# ------------------------------------------------------------------------------------ seed questions


def prepare_seed_questions(cfg: RunConfig) -> tuple[list[str], dict[str, Any]]:
    """Load and preprocess the seed questions, then take a seeded sample of ``questions.seed_questions``.

    Streams: rows are read in batches, scrubbed and cleaned one at a time and spooled to a temporary file;
    only the sampled rows are read back. The sample is the first rows of a seeded shuffle of all cleaned rows.
    """
    source = open_questions(cfg.dataset)
    files = f" files {cfg.dataset.data_files}" if cfg.dataset.data_files else ""
    where = f"dataset {cfg.dataset.path}{files} column {cfg.dataset.column!r}"
    max_chars = cfg.dataset.max_question_chars
    scrubber = scrubber_for(cfg.privacy.pii)
    masked: Counter[str] = Counter()

    def scrubbed() -> Iterator[str | None]:
        for index, value in enumerate(source):
            if value is not None and len(value) > max_chars:
                raise InputDataError(
                    f"{where}: row {index}: question is {len(value)} characters, more than dataset.max_question_chars={max_chars}"
                )
            # PII first: lower-casing and punctuation removal would break the patterns; placeholders survive them.
            if scrubber is not None and value is not None:
                value, counts = scrubber.scrub(value)
                masked.update(counts)
            yield value

    report = PreprocessReport()
    with tempfile.TemporaryFile() as spool:
        offsets = array("Q", [0])
        for row in iter_preprocess(scrubbed(), cfg.preprocess.steps, report):
            offsets.append(offsets[-1] + spool.write(row.encode("utf-8", "surrogatepass")))
        if masked:
            log.info("privacy: masked in the input questions: %s", ", ".join(f"{k} {v}" for k, v in sorted(masked.items())))
        if not report.rows_out:
            raise InputDataError(f"dataset {cfg.dataset.path}: no questions left after preprocessing ({report.rows_in} rows read)")
        # Shuffling row numbers gives the same permutation as shuffling the rows themselves.
        order = array("I" if report.rows_out < 2**32 else "Q", range(report.rows_out))
        random.Random(derive_seed(cfg.seed, "seed-order")).shuffle(order)
        limit = min(cfg.questions.seed_questions or report.rows_out, cfg.questions.target)
        seeds = []
        for row_number in order[:limit]:
            spool.seek(offsets[row_number])
            seeds.append(spool.read(offsets[row_number + 1] - offsets[row_number]).decode("utf-8", "surrogatepass"))
    for step, count in report.removed.items():
        log.info("preprocess: %s removed %d row(s)", step, count)
    log.info("seed questions: %d loaded, %d after preprocessing, %d used", report.rows_in, report.rows_out, len(seeds))
    return seeds, {
        "load": {"rows": report.rows_in}, "preprocess": {**report.as_dict(), "steps": list(cfg.preprocess.steps)}, "seeds_used": len(seeds),
        "pii_masked_input": dict(sorted(masked.items())),
    }  # fmt: skip


def iter_questions_file(path: Path, max_chars: int | None = None) -> Iterator[QuestionRow]:
    """Questions for the responses stage from a CSV with a ``question`` column (provenance columns optional), lazily."""
    for index, row in enumerate(iter_csv_rows(path, ["question"])):
        text = row["question"].strip()
        if max_chars is not None and len(row["question"]) > max_chars:
            raise InputDataError(f"{path}: row {index}: question is {len(row['question'])} characters, more than dataset.max_question_chars={max_chars}")
        if not text:
            raise InputDataError(f"{path}: row {index}: empty question")
        yield QuestionRow(text, row.get("source_question") or text, row.get("modification") or "", row.get("origin") or "seed")


def count_questions_file(path: Path, max_chars: int | None = None) -> int:
    """Check every row of a questions file (streaming) and return how many there are; no rows is an error."""
    count = sum(1 for _ in iter_questions_file(path, max_chars))
    if not count:
        raise InputDataError(f"{path}: no data rows")
    return count


def read_questions_file(path: Path, max_chars: int | None = None) -> list[QuestionRow]:
    """All questions of a questions file (small files; runs stream it with :func:`iter_questions_file`)."""
    count_questions_file(path, max_chars)
    return list(iter_questions_file(path, max_chars))


# ------------------------------------------------------------------------------------------ backends


def preflight(cfg: RunConfig) -> None:
    """Checks that need no model call: the embedded model is installed, fallback keys are set."""
    if cfg.backend.engine == "embedded":
        assert cfg.backend.embedded is not None
        check_server_installed(cfg.backend.embedded)
        locate_model_file(cfg.backend.embedded)
    elif cfg.backend.engine == "vllm":
        from generation.endpoints.vllm_server import vllm_python

        vllm_python()
    resolve_api_key(cfg.backend, "primary")
    if cfg.fallback.enabled and cfg.fallback.backend is not None:
        resolve_api_key(cfg.fallback.backend, "fallback")


@contextmanager
def primary_endpoint(cfg: RunConfig, paths: RunPaths) -> Iterator[str | list[str] | None]:
    """Yield the primary backend's base URL(s), starting (and always stopping) its servers if needed.

    For ``engine: swarm``, endpoints that fail to start within the timeout send the run to the fallback
    when it is enabled (an empty list), and are an error otherwise.
    """
    if cfg.backend.engine == "embedded":
        assert cfg.backend.embedded is not None
        with EmbeddedServer(cfg.backend.embedded, cfg.backend.model, paths.server_log) as server:
            yield server.base_url
    elif cfg.backend.engine == "vllm":
        from generation.endpoints.vllm_server import VllmServer

        assert cfg.backend.vllm is not None
        with VllmServer(cfg.backend.vllm, cfg.backend.model, paths.vllm_server_log) as vllm_server:
            yield vllm_server.base_url
    elif cfg.backend.engine == "swarm":
        from generation.endpoints.swarm import swarm_endpoints

        with ExitStack() as stack:
            try:
                urls = stack.enter_context(swarm_endpoints(cfg.backend, paths.root / "swarm"))
            except ServerStartError as exc:
                if not cfg.fallback.enabled:
                    raise
                log.warning("FALLBACK: model endpoints did not start (%s); sending every request to the fallback", exc)
                paths.root.mkdir(parents=True, exist_ok=True)
                write_json(paths.root / "endpoint_failure.json", {"error": str(exc), "fallback": cfg.fallback.model})
                urls = []
            yield urls
    else:
        yield cfg.backend.base_url


class _RunLogHandler(logging.FileHandler):
    """The run folder's log file; a failed write (disk full) drops the record instead of printing a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass  # the same record still reaches stderr; the failing write surfaces as a one-line error elsewhere


@contextmanager
def mirrored_log(path: Path) -> Iterator[None]:
    """Copy log records into the run folder while the run lasts (secret values masked)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.FileHandler = _RunLogHandler(path, encoding="utf-8")
    except OSError as exc:
        raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


@contextmanager
def open_cache(cfg: RunConfig, paths: RunPaths) -> Iterator[RequestCache | None]:
    if not cfg.cache.enabled:
        yield None
        return
    cache = RequestCache(paths.cache, scrubber_for(cfg.privacy.pii))  # replies are stored scrubbed
    try:
        yield cache
    finally:
        cache.close()


# ------------------------------------------------------------------------------------------- writers


def write_questions(paths: RunPaths, rows: Iterable[QuestionRow]) -> None:
    write_csv(paths.questions, QuestionRow.FIELDS, (row.as_row() for row in rows))


def write_pairs(paths: RunPaths, pairs: list[PairRow]) -> None:
    """The DPO files: standard CSV, conversational JSONL and the provenance sidecar, all keyed by row (a small
    list; runs publish through gather, which streams)."""
    write_csv(paths.pairs, PAIR_FIELDS, ({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs))
    write_jsonl(paths.pairs_jsonl, (to_conversational({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) for p in pairs))
    write_jsonl(paths.provenance, ({"row": i, "prompt": p.prompt, **p.provenance} for i, p in enumerate(pairs)))


def read_summary(out_dir: Path) -> dict[str, Any]:
    """The run folder's ``run_summary.json`` ({} when there is none yet)."""
    return read_json_object(RunPaths(out_dir).summary)


# --------------------------------------------------------------------------------------------- runs


def gather_run(cfg: RunConfig, out_dir: Path, stages: tuple[str, ...], summary: dict[str, Any], questions_file: Path | None = None) -> None:
    """Merge the shards into the published files and fold their figures into ``summary``."""
    merged = gather(cfg, out_dir, stages, questions_file)
    summary["stages"].update(merged["stats"])
    summary["usage"] = merged["usage"]
    summary["fallback_used"] = merged["fallback_used"]
    summary["shards"] = merged["shards"]
    summary["rows"] = merged["rows"]
    summary["privacy"] = privacy_summary(cfg.privacy.pii.enabled, summary["stages"])
    questions = merged["stats"].get("questions")
    if questions and questions.get("shortfall"):
        log.warning(
            "SHORTFALL: %d of %d target questions produced (%d short; %d give-ups); see %s",
            questions["rows_out"], questions["target"], questions["shortfall"], questions["give_ups"], RunPaths(out_dir).dropped,
        )  # fmt: skip
    if "responses" in stages:
        from generation.steps.strategies import finish_pair_figures

        pairs = ((row["chosen"], row["rejected"]) for row in iter_csv_rows(RunPaths(out_dir).pairs, PAIR_FIELDS))
        finish_pair_figures(summary["stages"].setdefault("responses", {}), pairs, cfg)
        summary["publish"] = write_dataset_files(out_dir, cfg.publish.test_fraction, cfg.seed)
    if cfg.publish.csv_formula_guard:  # last: Parquet and splits above were built from the verbatim rows
        for csv_path in sorted(out_dir.glob("*.csv")):
            guard_csv_file(csv_path)
        log.info("publish.csv_formula_guard: cells starting with = + - @ in %s/*.csv are prefixed with '", out_dir)
    log.info("published %d questions and %d pairs in %s", merged["rows"]["questions"], merged["rows"]["pairs"], out_dir)


def normalise_stages(stages: tuple[str, ...] | set[str]) -> tuple[str, ...]:
    return tuple(stage for stage in STAGES if stage in set(stages))


def validate_inputs(cfg: RunConfig, out_dir: Path, stages: tuple[str, ...], questions_file: Path | None) -> Path | None:
    """Fail on bad input before anything is written; returns the absolute questions file for answer-only runs."""
    preflight(cfg)
    if "questions" in stages:
        prepare_seed_questions(cfg)
        return None
    questions_file = (questions_file or RunPaths(out_dir).questions).resolve()
    count_questions_file(questions_file, cfg.dataset.max_question_chars)
    return questions_file


@contextmanager
def summary_session(cfg: RunConfig, out_dir: Path, stages: tuple[str, ...], command: str | None) -> Iterator[dict[str, Any]]:
    """Yield the run summary to fill; on exit record status, timing and outputs and save it atomically."""
    paths = RunPaths(out_dir)
    started = time.monotonic()
    summary = read_summary(out_dir) if stages == ("responses",) else {}
    summary.update(
        {
            "synthgen_version": __version__,
            "config_name": cfg.name,
            "seed": cfg.seed,
            "domain": cfg.domain,
            "model": cfg.backend.model,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "status": "running",
            "command": command,
        }
    )
    summary.setdefault("stages", {})
    paths.root.mkdir(parents=True, exist_ok=True)
    write_text(paths.config, dump_config_yaml(cfg))
    try:
        with mirrored_log(paths.run_log):
            yield summary
        summary["status"] = "completed"
    except BaseException as exc:
        summary["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        summary["error"] = redact(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        raise
    finally:
        summary["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        summary["elapsed_s"] = round(time.monotonic() - started, 2)
        summary["outputs"] = {
            name: str(path)
            for name, path in (
                ("questions", paths.questions), ("pairs_csv", paths.pairs), ("pairs_jsonl", paths.pairs_jsonl),
                ("provenance", paths.provenance), ("dropped", paths.dropped), ("config", paths.config),
                ("pairs_parquet", paths.root / PAIRS_PARQUET),
            )
            if path.exists()
        }  # fmt: skip
        try:
            write_json(paths.summary, summary)
        except OutputWriteError as exc:
            if summary["status"] == "completed":
                raise
            log.warning("%s", exc)  # keep the error that stopped the run as the one reported
    if "responses" in stages:
        log.info("wrote the dataset card %s", write_card(paths.root))


def plan_run(cfg: RunConfig, out_dir: Path, stages: tuple[str, ...] | set[str], questions_file: Path | None, force: bool) -> RunPlan:
    """Validate inputs and the run folder's existing shards: another config's shards are refused, unless ``force``
    (then the executor discards them once it owns the folder). Nothing is written."""
    stages = normalise_stages(stages)
    questions_file = validate_inputs(cfg, out_dir, stages, questions_file)
    layout = ShardLayout(out_dir, stages)
    fingerprint = config_fingerprint(cfg, stages, questions_file)
    if not force:
        check_fingerprints(layout, fingerprint, cfg.execution.shards, force=False)
    return RunPlan(stages, questions_file, layout, fingerprint, cfg.execution.shards, force)


def run_pipeline(
    cfg: RunConfig,
    out_dir: Path,
    stages: tuple[str, ...] = STAGES,
    questions_file: Path | None = None,
    show_progress: bool = True,
    command: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run the requested stages into ``out_dir`` with the local executor (every shard in this process, then gather).

    Returns the run summary (also saved as JSON). ``command`` is the secret-free command line recorded
    for the dataset card's *Reproduce* section. After the responses stage the Parquet/split files and
    the dataset card are written too.
    """
    from generation.executors.local import LocalExecutor

    plan = plan_run(cfg, out_dir, stages, questions_file, force)
    executor = LocalExecutor(cfg, out_dir, command, show_progress)
    executor.launch(plan)
    assert executor.summary is not None
    return executor.summary


def gather_shards(
    cfg: RunConfig, out_dir: Path, stages: tuple[str, ...] = STAGES, questions_file: Path | None = None, command: str | None = None
) -> dict[str, Any]:
    """Publish the shards of a run (the Slurm gather job, ``synthgen gather``): the same files, summary and card as
    ``run_pipeline``."""
    stages = normalise_stages(stages)
    with summary_session(cfg, out_dir, stages, command) as summary:
        summary["fingerprint"] = config_fingerprint(cfg, stages, questions_file)  # which shards it published
        gather_run(cfg, out_dir, stages, summary, questions_file)
        from generation.evaluation.hook import evaluate_run

        evaluate_run(cfg, out_dir, stages, summary, progress=False)
    return summary


# ------------------------------------------------------------------------------------------ dry run


def estimate(cfg: RunConfig) -> dict[str, Any]:
    """Validate everything that needs no model call and estimate requests, tokens and time."""
    preflight(cfg)
    seeds, seed_stats = prepare_seed_questions(cfg)
    n_synthetic = max(0, cfg.questions.target - len(seeds))
    n_questions = len(seeds) + n_synthetic
    q_sampling, r_sampling = cfg.questions.sampling, cfg.responses.sampling
    sample_question = max(seeds, key=len)

    def prompt_tokens(messages: list[dict[str, str]]) -> int:
        return sum(len(m["content"]) for m in messages) // 4 + 8 * len(messages)

    q_prompt = prompt_tokens(render_messages(cfg.prompts.modify_question, question=sample_question, modification=cfg.modifications[0]))
    a_prompt = max(prompt_tokens(render_messages(t, question=sample_question)) for t in (cfg.prompts.chosen, cfg.prompts.rejected))
    from generation.steps.strategies import answers_per_question

    answers = answers_per_question(cfg)  # 2 for the default (prompted) strategy
    requests_min = n_synthetic + answers * n_questions
    requests_max = n_synthetic * cfg.questions.max_attempts + answers * n_questions * cfg.responses.max_attempts
    completion_tokens = n_synthetic * q_sampling.max_tokens + answers * n_questions * r_sampling.max_tokens
    prompt_total = n_synthetic * q_prompt + answers * n_questions * a_prompt
    rate = cfg.backend.expected_tokens_per_s
    return {
        **seed_stats,
        "synthetic_questions": n_synthetic,
        "questions_total": n_questions,
        "requests": {"without_retries": requests_min, "at_most": requests_max},
        "prompt_tokens_estimate": prompt_total,
        "completion_tokens_at_most": completion_tokens,
        "expected_tokens_per_s": rate,
        # Prompt processing is roughly ten times faster than generation on the servers we target.
        "time_s_at_most_without_retries": round(completion_tokens / rate + prompt_total / (10 * rate), 1),
        "backend": {"engine": cfg.backend.engine, "model": cfg.backend.model, "base_url": cfg.backend.base_url},
        "fallback": cfg.fallback.backend.model if cfg.fallback.enabled and cfg.fallback.backend else None,
    }
