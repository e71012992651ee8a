"""Publishing a run folder: Parquet and train/test split files, the dataset card, and the Hub upload.

Everything here reads the files a run wrote (``run_summary.json``, ``config.yaml``, the pair files and,
when an evaluation has been run, ``eval/summary.json``), so a card states only what those files show.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import re
import shlex
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from generation import __version__
from generation.errors import ConfigError, InputDataError, SynthgenError
from generation.io import atomic_write, iter_csv_rows, write_parquet, write_text
from generation.run.layout import (  # noqa: F401 - the names publishing has always exported
    CARD, CONFIG, EVAL_SUMMARY, PAIRS_CHAT_PARQUET, PAIRS_CSV, PAIRS_JSONL, PAIRS_PARQUET, PAIRS_STEM, PROVENANCE, QUESTIONS, SPLIT_FORMATS,
    SPLITS, SUMMARY, split_file,
)
from generation.steps.common import derive_seed

log = logging.getLogger(__name__)

PAIR_FIELDS = ("prompt", "chosen", "rejected")

# The Hugging Face size_categories buckets, by upper bound.
_SIZE_BUCKETS = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
]  # fmt: skip
_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|credential)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


class PublishError(SynthgenError):
    """The upload to the Hugging Face Hub failed (network, authentication, permissions)."""


def _features(conversational: bool) -> Any:
    import datasets

    text = datasets.Value("string")
    if conversational:
        messages = datasets.List({"role": text, "content": text})
        return datasets.Features({name: messages for name in PAIR_FIELDS})
    return datasets.Features({name: text for name in PAIR_FIELDS})


def to_conversational(row: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """One pair in TRL's conversational preference format."""
    return {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": [{"role": "assistant", "content": row["chosen"]}],
        "rejected": [{"role": "assistant", "content": row["rejected"]}],
    }


def size_category(n: int) -> str:
    """Hugging Face's ``size_categories`` bucket for ``n`` rows."""
    for bound, label in _SIZE_BUCKETS:
        if n < bound:
            return label
    return "n>1B"


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train/test row indices (each sorted); no test rows when the fraction is 0 or n < 2."""
    test = test_rows(n, test_fraction, seed)
    return [i for i in range(n) if not test[i]], [i for i in range(n) if test[i]]


def test_rows(n: int, test_fraction: float, seed: int) -> bytearray:
    """Per row index, 1 if it goes to the test split: ``round(n * test_fraction)`` rows (at least one, and at
    least one train row), the first ones of a shuffle of the row numbers seeded from the run seed. An array of
    row numbers and a byte per row, so a million rows take a few MB."""
    test = bytearray(n)
    if test_fraction <= 0 or n < 2:
        return test
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    order = array("I" if n < 2**32 else "Q", range(n))
    random.Random(derive_seed(seed, "test-split")).shuffle(order)
    for index in order[:n_test]:
        test[index] = 1
    return test


def public_command(argv: Iterable[str]) -> str:
    """A shell command line with credentials in URLs and values of secret-looking ``--set`` keys masked."""
    masked = []
    for arg in argv:
        key, sep, _ = arg.partition("=")
        if sep and _SECRET_KEY.search(key):
            arg = f"{key}=***"
        masked.append(_URL_CREDENTIALS.sub(r"\1***@", arg))
    return shlex.join(masked)


# ----------------------------------------------------------------------------------- dataset files


def _pair_rows(root: Path, test: bytearray | None = None, want: int | None = None) -> Iterator[dict[str, str]]:
    """The pairs CSV's rows, streaming; with ``test``, only the rows whose flag equals ``want``."""
    for index, row in enumerate(iter_csv_rows(root / PAIRS_CSV, PAIR_FIELDS)):
        if test is None or test[index] == want:
            yield {name: row[name] for name in PAIR_FIELDS}


def _write_text_forms(root: Path, name: Any, rows: Iterable[dict[str, str]]) -> int:
    """One set of rows as CSV and conversational JSONL at once, streaming; returns rows."""
    count = 0
    with ExitStack() as stack:
        table = csv.writer(stack.enter_context(atomic_write(root / name("csv"), newline="")), lineterminator="\n")
        chat = stack.enter_context(atomic_write(root / name("jsonl")))
        table.writerow(PAIR_FIELDS)
        for row in rows:
            table.writerow([row[field] for field in PAIR_FIELDS])
            chat.write(json.dumps(to_conversational(row), ensure_ascii=False) + "\n")
            count += 1
    return count


def _write_parquet_forms(root: Path, name: Any, rows: Any) -> None:
    """Standard and conversational Parquet of the same rows; ``rows()`` streams them (once per file)."""
    write_parquet(root / name("parquet"), rows(), _features(conversational=False))
    write_parquet(root / name("conversational.parquet"), (to_conversational(row) for row in rows()), _features(conversational=True))


def write_dataset_files(root: Path, test_fraction: float, seed: int) -> dict[str, Any]:
    """Write the Parquet copies of the pairs CSV (standard and conversational) and, if ``test_fraction`` > 0,
    the train/test split files in every format; returns a report for the run summary. Streams: the CSV is
    read again for each file written, never held in memory."""
    n = sum(1 for _ in iter_csv_rows(root / PAIRS_CSV, PAIR_FIELDS))
    _write_parquet_forms(root, lambda ext: f"{PAIRS_STEM}.{ext}", lambda: _pair_rows(root))
    test = test_rows(n, test_fraction, seed)
    n_test = sum(test)
    for split in SPLITS:
        for ext in SPLIT_FORMATS:
            stale = root / split_file(split, ext)
            if stale.exists() and not n_test:
                stale.unlink()  # from an earlier run with a split; it no longer matches the pairs
    report: dict[str, Any] = {"rows": n, "test_fraction": test_fraction, "splits": None}
    if n_test:
        for split, flag in (("train", 0), ("test", 1)):
            name = lambda ext, split=split: split_file(split, ext)  # noqa: E731
            _write_text_forms(root, name, _pair_rows(root, test, flag))
            _write_parquet_forms(root, name, lambda flag=flag: _pair_rows(root, test, flag))
        report["splits"] = {"train": n - n_test, "test": n_test}
        report["test_rows"] = [index for index in range(n) if test[index]]
        log.info("split %d pairs into %d train / %d test (seed %d)", n, n - n_test, n_test, seed)
    elif test_fraction > 0:
        log.warning("publish.test_fraction=%s but only %d pair(s): no test split written", test_fraction, n)
    return report


def published_files(present: Iterable[str], has_splits: bool) -> list[str]:
    """The files of a run folder that are published (relative POSIX paths), from the folder's listing.

    An allow-list: the card, the pair files, provenance, questions, run summary, effective config and the
    evaluation summary. Never ``cache/``, ``logs/``, ``dropped.csv``, temporary files or anything else.
    """
    allowed = [CARD, PAIRS_CSV, PAIRS_JSONL, PAIRS_PARQUET, PAIRS_CHAT_PARQUET, PROVENANCE, QUESTIONS, SUMMARY, CONFIG, EVAL_SUMMARY]
    if has_splits:
        allowed += [split_file(split, ext) for split in SPLITS for ext in SPLIT_FORMATS]
    present = set(present)
    return sorted(name for name in allowed if name in present)


# ------------------------------------------------------------------------------------ dataset card


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        items: list[tuple[str, Any]] = []
        for key, value in data.items():
            items += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return items
    if isinstance(data, list):
        return [(prefix, json.dumps(data, ensure_ascii=False)[:200])]
    return [(prefix, data)]


def _describe_files(value: Any) -> str:
    """Data file names without local directories (the card is public)."""
    if value is None:
        return ""
    files = value if isinstance(value, list) else [value]
    return ", ".join(Path(f).name if "://" not in str(f) else str(f) for f in files)


def _judge_model(eval_summary: dict[str, Any] | None) -> str | None:
    if not eval_summary:
        return None
    judge = eval_summary.get("judge_model") or eval_summary.get("judge")
    if isinstance(judge, dict):
        judge = judge.get("model")
    return str(judge) if judge else None


def _configs(files: set[str], has_splits: bool) -> list[dict[str, Any]]:
    # Parquet for both: `datasets` picks one builder for all of a repo's configs, so CSV + JSONL configs cannot coexist.
    configs = []
    for name, ext, main in (("default", "parquet", PAIRS_PARQUET), ("conversational", "conversational.parquet", PAIRS_CHAT_PARQUET)):
        if has_splits:
            data_files = [{"split": s, "path": split_file(s, ext)} for s in SPLITS if split_file(s, ext) in files]
        else:
            data_files = [{"split": "train", "path": main}] if main in files else []
        if data_files:
            configs.append({"config_name": name, "data_files": data_files})
    return configs


def build_card(
    summary: dict[str, Any],
    config: dict[str, Any],
    files: Iterable[str],
    eval_summary: dict[str, Any] | None = None,
    modification_counts: Mapping[str, int] | None = None,
) -> Any:
    """The dataset card (a ``huggingface_hub.DatasetCard``) for a run, from its summary, config and file list."""
    from huggingface_hub import DatasetCard, DatasetCardData

    files = set(files)
    stages = summary.get("stages", {})
    publish_report = summary.get("publish") or {}
    splits = publish_report.get("splits")
    publish_cfg = config.get("publish") or {}
    n_pairs = stages.get("responses", {}).get("rows_out", publish_report.get("rows", 0))
    dataset = config.get("dataset") or {}
    domain = config.get("domain", "")
    pack_name = (config.get("domain_pack") or {}).get("name") or (domain if domain and "/" not in domain else "")
    backend = config.get("backend") or {}
    fallback = config.get("fallback") or {}
    judge = _judge_model(eval_summary)
    hub_source = dataset.get("path") not in {"csv", "json", "parquet", "text"} and not Path(str(dataset.get("path"))).exists()

    card_data = DatasetCardData(
        license=publish_cfg.get("license", "unknown"),
        language=publish_cfg.get("language", ["en"]),
        task_categories=["text-generation"],
        size_categories=[size_category(n_pairs)],
        source_datasets=[str(dataset["path"])] if hub_source else None,
        pretty_name=publish_cfg.get("pretty_name") or f"synthgen {config.get('name', '')} preference pairs",
        tags=["dpo", "synthetic", "preference", "synthgen", *([pack_name] if pack_name else [])],
        configs=_configs(files, bool(splits)),
    )

    out: list[str] = [f"# {card_data.pretty_name}", ""]
    responses_cfg = config.get("responses") or {}
    strategy = responses_cfg.get("strategy") or "prompted"
    out.append(
        f"Synthetic preference (DPO) pairs made by synthgen {summary.get('synthgen_version', __version__)}"
        f" (run `{summary.get('config_name', config.get('name'))}`, status `{summary.get('status')}`,"
        f" finished {summary.get('finished_at', 'unknown')}). Each row is a question (`prompt`), {STRATEGY_TEXT[strategy]}"
        f" {n_pairs} pair(s)."
    )
    out += ["", "## Files", ""]
    forms = {"csv": "standard, CSV", "jsonl": "conversational, JSONL", "parquet": "standard, Parquet", "conversational.parquet": "conversational, Parquet"}
    described = [
        (PAIRS_CSV, "`prompt, chosen, rejected` strings (TRL standard preference format)"),
        (PAIRS_JSONL, "the same rows, conversational: `prompt` a user message list, `chosen`/`rejected` assistant message lists"),
        (PAIRS_PARQUET, "the same rows as the CSV, Parquet" + ("" if splits else "; config `default`")),
        (PAIRS_CHAT_PARQUET, "the same rows as the JSONL, Parquet" + ("" if splits else "; config `conversational`")),
        *((split_file(s, e), f"{s} split ({forms[e]})" + ("; config `default`" if e == "parquet" else "; config `conversational`" if e == "conversational.parquet" else ""))
          for s in SPLITS for e in SPLIT_FORMATS),
        (PROVENANCE, "per row (`row` = index into the CSV): origin, source question, modification, models, seeds"),
        (QUESTIONS, "all questions with their source question and modification"),
        (SUMMARY, "row counts per stage, rejection reasons, requests and tokens"),
        (CONFIG, "the effective run config"),
        (EVAL_SUMMARY, "evaluation summary"),
    ]
    out.append(_table(["file", "content"], ((f"`{name}`", text) for name, text in described if name in files)))
    out += [
        "",
        "```python",
        "from datasets import load_dataset",
        'pairs = load_dataset(REPO_ID)                    # prompt/chosen/rejected strings',
        'chat = load_dataset(REPO_ID, "conversational")   # message lists, for chat templates',
        '# a local copy: load_dataset("csv", data_files="questions_and_responses.csv", split="train")',
        '#               load_dataset("json", data_files="questions_and_responses.jsonl", split="train")',
        "```",
    ]

    preprocess = stages.get("preprocess", {})
    out += ["", "## Source data and preprocessing", ""]
    if "load" in stages:
        loader = f'datasets.load_dataset("{dataset.get("path")}"'
        loader += f', "{dataset["name"]}"' if dataset.get("name") else ""
        loader += f', split="{dataset.get("split")}"'
        loader += f', data_files="{_describe_files(dataset.get("data_files"))}"' if dataset.get("data_files") else ""
        loader += f', revision="{dataset["revision"]}"' if dataset.get("revision") else ""
        out.append(f"Seed questions: `{loader})`, column `{dataset.get('column')}`: {stages['load'].get('rows')} rows.")
        steps = preprocess.get("steps") or []
        removed = preprocess.get("removed") or {}
        out.append(
            f"Preprocessing steps, in order: {', '.join(f'`{s}`' for s in steps) or 'none'}"
            f" ({', '.join(f'{k} removed {v}' for k, v in removed.items()) or 'no rows removed'});"
            f" {preprocess.get('rows_in')} → {preprocess.get('rows_out')} rows."
            f" A shuffle seeded from the run seed ({config.get('seed')}) picked {stages.get('seeds_used')} seed question(s)."
        )
    elif "responses_input" in stages:
        out.append(f"Questions were read from a user-supplied file (`{Path(str(stages['responses_input'].get('file'))).name}`,"
                   f" {stages['responses_input'].get('rows')} rows); no seed dataset or preprocessing was involved.")  # fmt: skip

    modifications = config.get("modifications") or []
    list_version = hashlib.sha256(json.dumps(modifications).encode("utf-8")).hexdigest()[:12]
    out += ["", "## Domain and modifications", ""]
    description = (config.get("domain_pack") or {}).get("description")
    out.append(
        f"Domain pack `{domain}`{f' ({description})' if description else ''}; modification list version `{list_version}` (SHA-256 of the list), {len(modifications)} entries."
        " Status: how many accepted synthetic questions used each modification (from `questions.csv`)."
    )
    out.append("")
    counts = modification_counts or {}
    out.append(_table(["#", "modification", "status"], (
        (i + 1, m, f"used by {counts[m]} question(s)" if counts.get(m) else ("not used" if modification_counts is not None else "unknown"))
        for i, m in enumerate(modifications)
    )))  # fmt: skip

    out += ["", "## Models", ""]
    model_rows = []
    for role, section in (("question rewriting", "questions"), ("chosen/rejected answers", "responses")):
        sampling = (config.get(section) or {}).get("sampling") or {}
        model_rows.append((role, backend.get("model"), backend.get("engine"), sampling.get("temperature"), sampling.get("top_p"), sampling.get("max_tokens")))
    out.append(_table(["role", "model", "engine", "temperature", "top_p", "max_tokens"], model_rows))
    out.append("")
    fallback_model = ((fallback.get("backend") or {}).get("model")) if fallback.get("enabled") else None
    if fallback_model:
        used = stages.get("responses", {}).get("fallback_pairs", 0)
        out.append(f"Fallback model (enabled): `{fallback_model}`; it wrote answers for {used} pair(s)"
                   f" (fallback used in this run: {bool(summary.get('fallback_used'))}; see provenance).")  # fmt: skip
    else:
        out.append("Fallback: disabled; every request went to the model above.")
    if judge:
        out.append(f"Judge model: `{judge}` (from `{EVAL_SUMMARY}`).")
    else:
        out.append("Judge model: none. No judge or reviewer checked the answers; their factual correctness is unverified.")

    out += ["", "## Row counts per stage", ""]
    count_rows = []
    if "load" in stages:
        count_rows.append(("load", "", stages["load"].get("rows"), ""))
    if preprocess:
        count_rows.append(("preprocess", preprocess.get("rows_in"), preprocess.get("rows_out"), ""))
    if "seeds_used" in stages:
        count_rows.append(("seed sample", preprocess.get("rows_out", ""), stages["seeds_used"], ""))
    q = stages.get("questions")
    if q:
        note = f"target {q.get('target')}; {q.get('synthetic_accepted')} synthetic accepted, {sum((q.get('rejected_candidates') or {}).values())} candidates rejected, {q.get('give_ups')} give-ups"
        count_rows.append(("questions", q.get("seed_questions"), q.get("rows_out"), note + (f"; SHORTFALL {q['shortfall']}" if q.get("shortfall") else "")))
    r = stages.get("responses")
    if r:
        reasons = ", ".join(f"{k} {v}" for k, v in (r.get("rejected_candidates") or {}).items()) or "none"
        count_rows.append(("answers", r.get("rows_in"), r.get("rows_out"), f"{r.get('questions_dropped')} question(s) dropped; rejected answers: {reasons}"))
    if splits:
        count_rows.append(("train/test split", n_pairs, f"{splits['train']} / {splits['test']}",
                           f"test_fraction {publish_report.get('test_fraction')}, seeded from the run seed"))  # fmt: skip
    out.append(_table(["stage", "rows in", "rows out", "notes"], count_rows))

    out += ["", "## Pair construction and length", ""]
    out += pair_section(strategy, responses_cfg, stages.get("responses") or {})

    out += ["", "## Quality", ""]
    if eval_summary:
        out.append(f"From `{EVAL_SUMMARY}`:")
        out.append("")
        out.append(_table(["metric", "value"], _flatten(eval_summary)[:60]))
    else:
        out.append("Not evaluated: the run folder has no evaluation summary (`eval/summary.json`), so nothing is claimed"
                   " about the quality of the pairs beyond the automatic filters listed above.")  # fmt: skip

    out += ["", "## Known limitations", ""]
    limits = [
        "Synthetic data: questions and answers were written by a language model, not by people, and were not reviewed by domain experts.",
        "`rejected` answers are meant to be wrong; never use them as facts." if strategy != "ranked" else
        "`rejected` answers were scored lower than `chosen` by the ranking score, which is not a correctness check; never use them as facts.",
    ]
    if not judge:
        limits.append("No judge model was used: whether `chosen` answers are actually correct, and `rejected` ones actually incorrect, is unverified.")
    if "135M" in str(backend.get("model")):
        limits.append("Generated by a 135M-parameter model: expect poor, often wrong answers. This run shows the pipeline works, not that the data is good.")
    if q and q.get("shortfall"):
        limits.append(f"Shortfall: {q['shortfall']} question(s) fewer than the target of {q.get('target')} passed the filters.")
    if summary.get("fallback_used"):
        limits.append("Some answers came from the fallback model, so rows mix two models (see the provenance file).")
    if domain == "healthcare":
        limits.append("Health content: not medical advice.")
    out += [f"- {item}" for item in limits]

    out += ["", "## Reproduce", ""]
    command = summary.get("command")
    if command:
        out.append("The command that made this run (publishing options left out):")
        out += ["", "```bash", command, "```", ""]
    out.append(f"Or from the saved effective config (`{CONFIG}`, which holds every setting and no secrets):")
    out += ["", "```bash", f"synthgen run -c {CONFIG} -o OUTDIR", "```", ""]
    out.append("Same config and seed give the same seed order and modification choices; model outputs repeat exactly only"
               " with the same model build and server (sampling is seeded per request).")  # fmt: skip
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(out) + "\n")


STRATEGY_TEXT = {
    "prompted": "an answer generated with the *correct answer* prompt (`chosen`) and one generated with the *plausible but"
    " incorrect answer* prompt (`rejected`).",
    "corrupt": "an answer generated with the *correct answer* prompt (`chosen`) and a minimal rewrite of it with one or two"
    " facts made wrong (`rejected`, strategy `corrupt`).",
    "ranked": "the best-scored of several answers generated with the *correct answer* prompt (`chosen`) and a lower-scored one"
    " of them (`rejected`, strategy `ranked`).",
}


def pair_section(strategy: str, responses_cfg: dict[str, Any], responses: dict[str, Any]) -> list[str]:
    """The card's lines on how pairs were built, what they cost, and the chosen/rejected length ratio."""
    lines = [f"Strategy `{strategy}` (`responses.strategy`; see the `pair` record of each row in the provenance file)."]
    ranked = responses_cfg.get("ranked") or {}
    if strategy == "ranked":
        lines[0] += (f" {ranked.get('k', 4)} answers per question, scored; pick rule `{ranked.get('pick', 'sweet_spot')}`,"
                     f" minimum score margin {ranked.get('margin', 0.1)}.")  # fmt: skip
    consistency = (responses_cfg.get("self_consistency") or {}).get("k", 1)
    if consistency > 1:
        lines[0] += f" Chosen answers: the one of {consistency} samples that the majority of the others do not contradict."
    per_pair = responses.get("per_kept_pair")
    if per_pair:
        lines.append(f"Cost per published pair (answer steps, rows kept and dropped): {per_pair['requests']} requests,"
                     f" {per_pair['prompt_tokens']} prompt and {per_pair['completion_tokens']} completion tokens.")  # fmt: skip
    length = responses.get("length") or {}
    if length.get("pairs"):
        band = length["band"]
        lines += ["", f"Chosen/rejected word-count ratio over {length['pairs']} pairs (DPO amplifies length differences): median"
                  f" {length['median']}, 10th-90th percentile {length['p10']}-{length['p90']}; {length['inside_band_share']:.0%}"
                  f" inside [{band[0]}, {band[1]}].", ""]  # fmt: skip
        lines.append(_table(["ratio", *length["buckets"]], [["pairs", *length["buckets"].values()]]))
    control = responses.get("length_control")
    if control:
        lines += ["", f"Length control on (`responses.length_control`, band {control['band']}): {control['resampled']} rejected"
                  f" answer(s) asked again for length, {control['pairs_fixed']} pair(s) brought into the band,"
                  f" {control['questions_dropped']} question(s) dropped because no answer fitted (`dropped.csv`, reason"
                  " `length_ratio`)."]  # fmt: skip
    else:
        lines += ["", "Length control off: nothing kept the ratio inside a band."]
    return lines


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputDataError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputDataError(f"{path}: expected a JSON object")
    return data


def folder_listing(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files under ``root``."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def write_card(root: Path) -> Path:
    """(Re)write ``README.md`` in a run folder from the files the run left there; returns its path."""
    summary = _read_json(root / SUMMARY)
    if summary is None:
        raise InputDataError(f"{root / SUMMARY}: file not found (is {root} a synthgen run folder?)")
    config_path = root / CONFIG
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputDataError(f"{config_path}: file not found") from None
    except yaml.YAMLError as exc:
        raise InputDataError(f"{config_path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    eval_summary = _read_json(root / EVAL_SUMMARY)
    pairs = root / PAIRS_CSV
    if eval_summary is not None and pairs.exists() and (root / EVAL_SUMMARY).stat().st_mtime < pairs.stat().st_mtime:
        log.warning("%s is older than %s: it describes earlier pairs and is left out of the card", EVAL_SUMMARY, PAIRS_CSV)
        eval_summary = None
    counts = None
    if (root / QUESTIONS).is_file():
        questions = iter_csv_rows(root / QUESTIONS, ["question"])
        counts = Counter(row.get("modification") for row in questions if row.get("origin") == "synthetic")
    listing = set(folder_listing(root)) | {CARD}
    card = build_card(summary, config, published_files(listing, bool((summary.get("publish") or {}).get("splits"))), eval_summary, counts)
    write_text(root / CARD, str(card))
    return root / CARD


# ------------------------------------------------------------------------------------------- upload


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` as the Hub accepts it, else a one-line :class:`ConfigError`."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"--repo-id {repo_id!r}: {str(exc).splitlines()[0]}") from None
    if repo_id.count("/") != 1:
        raise ConfigError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    return repo_id


def push_to_hub(root: Path, repo_id: str, private: bool = False) -> str:
    """Upload the published files of a run folder to a Hub dataset repo; returns the repo URL.

    The token comes from ``HF_TOKEN`` or the standard ``hf auth login``; nothing in the folder is changed.
    """
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HTTPError

    check_repo_id(repo_id)
    for name in (CARD, PAIRS_CSV):
        if not (root / name).is_file():
            hint = f" (rebuild it with: synthgen card -o {root})" if name == CARD else ""
            raise InputDataError(f"{root / name}: file not found; nothing to publish{hint}")
    summary = _read_json(root / SUMMARY) or {}
    files = published_files(folder_listing(root), bool((summary.get("publish") or {}).get("splits")))
    log.info("pushing %d file(s) from %s to dataset %s: %s", len(files), root, repo_id, ", ".join(files))
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=root, allow_patterns=files,
            commit_message=f"synthgen {summary.get('synthgen_version', __version__)}: {summary.get('config_name', root.name)}",
        )  # fmt: skip
    except (HTTPError, OSError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        token = get_token()
        if token:
            detail = detail.replace(token, "***")
        raise PublishError(
            f"push to {constants.ENDPOINT} dataset {repo_id} failed: {type(exc).__name__}: {detail}; the run folder {root} is unchanged"
        ) from None
    log.info("pushed to %s", url)
    return str(url)
