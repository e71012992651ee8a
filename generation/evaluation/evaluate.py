"""Score a prompt/chosen/rejected CSV: per-row metrics and flags, the quality gate, dataset figures.

``evaluate_file`` is the whole command: read the input (one-line errors on bad data), score every row,
optionally ask the judge, then write ``scores.csv``, ``summary.json``, ``report.html`` and ``filtered.csv``.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generation.config import EVALUATION_FLAG_CODES, RunConfig
from generation.errors import InputDataError
from generation.evaluation import detectors as det
from generation.evaluation.metrics import Embedder, FluencyChecker, cosine_rows, other_language, shared_embedder
from generation.evaluation.stance import Cue, compare_claims, content_stems, is_polar_question, load_lexicon, numbers, sentences, stem, words
from generation.io import read_csv_rows, read_jsonl_objects, write_csv, write_json

log = logging.getLogger(__name__)

PAIR_FIELDS = ("prompt", "chosen", "rejected")

FLAG_CODES: dict[str, str] = {
    "rejected_agrees": "the rejected answer says the same as the chosen one (no preference to learn)",
    "rejected_self_corrects": "the rejected answer jokes, retracts itself or gives the right answer after all",
    "rejected_self_contradictory": "the rejected answer contradicts itself",
    "chosen_self_contradictory": "the chosen answer contradicts itself",
    "question_not_informational": "the prompt is not an informational question (addressed to the reader, chit-chat, meta text)",
    "off_topic": "an answer does not address the question (low question-answer similarity)",
    "rejected_easy": "the rejected answer is absurd or unrelated: trivially wrong, low value for DPO",
    "chosen_doubtful": "the judge doubts that the chosen answer is correct",
    "duplicate_prompt": "the prompt (near-)duplicates an earlier prompt",
    "pii": "personal data (e-mail, phone, ID numbers...) in the prompt or an answer",
    "prompt_injection": "the prompt carries instructions aimed at the model",
    "contaminated": "the prompt overlaps a reference/benchmark question (n-gram overlap at/above the threshold)",
    "poor_grammar": "an answer has more grammar issues per 100 words than evaluation.thresholds.grammar_max_per_100w",
    "misspelled": "an answer has more spelling issues per 100 words than evaluation.thresholds.spelling_max_per_100w",
}

assert tuple(FLAG_CODES) == EVALUATION_FLAG_CODES  # one list of codes for config validation and scoring

METRIC_COLUMNS = (
    "relevance_chosen", "relevance_rejected", "coherence_chosen", "coherence_rejected", "agreement", "restatement",
    "claim_support", "claim_coverage", "loglik_chosen", "loglik_rejected", "hardness", "grammar_chosen", "grammar_rejected",
    "spelling_chosen", "spelling_rejected", "words_chosen", "words_rejected", "contamination", "duplicate_of",
)  # fmt: skip


@dataclass
class EvalInput:
    """The rows to evaluate, each row's modification ('' if unknown) and the reference questions."""

    path: Path | None
    rows: list[dict[str, str]]
    modifications: list[str]
    reference: list[str]
    reference_source: str
    origins: list[str] | None = None  # "seed", "synthetic" or "" (unknown) per row


def read_pairs(path: Path) -> list[dict[str, str]]:
    """prompt/chosen/rejected rows of a CSV; a missing column, empty file or cell, bad encoding or ragged row is a one-line error."""
    rows = read_csv_rows(path, PAIR_FIELDS)
    for index, row in enumerate(rows):
        for field in PAIR_FIELDS:
            if not row[field].strip():
                raise InputDataError(f"{path}: row {index}: empty {field}")
    return [{field: row[field] for field in PAIR_FIELDS} for row in rows]


def read_provenance(path: Path, rows: list[dict[str, str]]) -> tuple[list[str], list[str]]:
    """Each row's modification and origin ("seed"/"synthetic"; '' if unknown): from ``<stem>.provenance.jsonl``
    beside the input, else ``questions.csv`` beside it, else unknown."""
    provenance = path.with_name(f"{path.stem}.provenance.jsonl")
    if provenance.is_file():
        by_row: dict[int, tuple[str, str]] = {}
        for _, record in read_jsonl_objects(provenance):
            if isinstance(record.get("row"), int):
                by_row[record["row"]] = (str(record.get("modification") or ""), str(record.get("origin") or ""))
        found = [by_row.get(i, ("", "")) for i in range(len(rows))]
        return [m for m, _ in found], [o for _, o in found]
    questions = path.with_name("questions.csv")
    if questions.is_file():
        table = read_csv_rows(questions, ["question"], allow_empty=True)
        by_text = {r["question"]: (r.get("modification") or "", r.get("origin") or "") for r in table}
        found = [by_text.get(row["prompt"], ("", "")) for row in rows]
        return [m for m, _ in found], [o for _, o in found]
    return [""] * len(rows), [""] * len(rows)


def read_reference(path: Path | None) -> tuple[list[str], str]:
    """Benchmark texts for the contamination check: a CSV with a ``question`` column (and an optional ``answer``
    column, whose texts count too). None = no reference: contamination is not computed."""
    if path is None:
        return [], "none"
    table = read_csv_rows(path, ["question"])
    texts = [r["question"] for r in table] + [r["answer"] for r in table if r.get("answer")]
    return texts, str(path)


def load_input(path: Path, reference_file: Path | None = None) -> EvalInput:
    """Read the pairs, their modifications and origins, and the reference (benchmark) texts."""
    rows = read_pairs(path)
    reference, source = read_reference(reference_file)
    modifications, origins = read_provenance(path, rows)
    return EvalInput(path, rows, modifications, reference, source, origins)


# ------------------------------------------------------------------------------------------ scoring


class Scorer:
    """Scores rows with the embedding model, the plausibility model, the fluency checkers and the detectors (no judge)."""

    def __init__(self, cfg: RunConfig, embedder: Embedder | None = None, fluency: FluencyChecker | None = None, plausibility: Any = None):
        self.cfg = cfg
        self.ev = cfg.evaluation
        filters = cfg.questions.filters  # the domain's own question filters count too
        self.patterns = det.load_patterns(self.ev, filters.addressed_to_reader_patterns)
        self.lexicon = load_lexicon(extra=tuple(tuple(p) for p in self.ev.antonyms))
        self.embedder = embedder or shared_embedder()
        self.fluency = fluency or FluencyChecker(self.ev.extra_words)
        if plausibility is None and self.ev.plausibility.model:
            from generation.evaluation.plausibility import shared_scorer

            plausibility = shared_scorer(self.ev.plausibility)
        self.plausibility = plausibility
        self.pii_available = _pii_available()

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one Scorer per evaluation; the cache holds short phrases)
    def similar(self, a: str, b: str) -> float:
        """Cosine similarity of two short texts (words or phrases) under the sentence-embedding model."""
        vectors = self.embedder.encode([a, b])
        return float(vectors[0] @ vectors[1])

    def _vectors(self, part: Sequence[dict[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """Unit embeddings of the prompts, chosen and rejected answers, and of each answer's sentences
        (:func:`stance.sentences`, one array per answer), from one encode call: a one-sentence answer and its
        sentence are encoded once."""
        n = len(part)
        answers = [r["chosen"] for r in part] + [r["rejected"] for r in part]
        split = [sentences(t) or [t] for t in answers]
        texts = [r["prompt"] for r in part] + answers + [s for parts in split for s in parts]
        vectors = self.embedder.encode(texts)
        per_answer, pos = [], 3 * n
        for parts in split:
            per_answer.append(vectors[pos : pos + len(parts)])
            pos += len(parts)
        return vectors[:n], vectors[n : 2 * n], vectors[2 * n : 3 * n], per_answer[:n], per_answer[n:]

    def score(self, data: EvalInput, progress: bool = True, chunk: int = 32) -> list[dict[str, Any]]:
        """One dict per row: metrics, ``flags`` (list of codes) and evidence; the gate is applied later."""
        from rapidfuzz import fuzz
        from tqdm.auto import tqdm

        th = self.ev.thresholds
        rows = data.rows
        origins = data.origins or [""] * len(rows)
        reference = det.ngram_set(data.reference, th.contamination_ngram)
        results: list[dict[str, Any]] = []
        with tqdm(total=len(rows), desc="evaluate", unit="pair", disable=not progress) as bar:
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                q, c, r_, sent_c, sent_r = self._vectors(part)
                rel_c, rel_r, agree = cosine_rows(q, c), cosine_rows(q, r_), cosine_rows(c, r_)
                if self.plausibility is not None:
                    prompts = [r["prompt"] for r in part]
                    ll = self.plausibility.score(prompts * 2, [r["chosen"] for r in part] + [r["rejected"] for r in part])
                    ll_c, ll_r = ll[: len(part)], ll[len(part) :]
                else:
                    ll_c = ll_r = np.full(len(part), np.nan)
                for k, row in enumerate(part):
                    metrics = {
                        "relevance_chosen": float(rel_c[k]), "relevance_rejected": float(rel_r[k]), "agreement": float(agree[k]),
                        "coherence_chosen": _coherence(sent_c[k]), "coherence_rejected": _coherence(sent_r[k]),
                        "loglik_chosen": float(ll_c[k]), "loglik_rejected": float(ll_r[k]),
                    }  # fmt: skip
                    result = self._score_row(row, metrics, sent_r[k] @ sent_c[k].T, fuzz)
                    self._contamination(result, row, origins[start + k], reference, bool(data.reference))
                    results.append(result)
                    bar.update(1)
        clusters = det.near_duplicate_clusters([r["prompt"] for r in rows], th.near_duplicate_jaccard)
        for index, (result, cluster) in enumerate(zip(results, clusters)):
            result["duplicate_of"] = cluster if cluster != index else None
            if cluster != index:
                result["flags"].append("duplicate_prompt")
                result["evidence"]["duplicate_prompt"] = f"row {cluster}: {rows[cluster]['prompt'][:80]}"
        return results

    def _contamination(self, result: dict[str, Any], row: dict[str, str], origin: str, reference: set, has_reference: bool) -> None:
        """Overlap of what is new in the row (a non-seed prompt, the answers) with the benchmark reference."""
        th = self.ev.thresholds
        if not has_reference:
            result["contamination"] = None
            return
        fields = ("chosen", "rejected") if origin == "seed" else ("prompt", "chosen", "rejected")
        overlaps = {f: det.contamination(row[f], reference, th.contamination_ngram) for f in fields}
        field = max(overlaps, key=lambda f: overlaps[f])
        result["contamination"] = round(overlaps[field], 4)
        if overlaps[field] >= th.contamination_max:
            result["evidence"]["contaminated"] = f"{field}: {overlaps[field]:.0%} of its {th.contamination_ngram}-grams are in the reference"
            result["flags"] = [code for code in FLAG_CODES if code in result["evidence"]]

    def _score_row(self, row: dict[str, str], m: dict[str, Any], sentence_similarity: np.ndarray, fuzz: Any) -> dict[str, Any]:
        th, pat = self.ev.thresholds, self.patterns
        prompt, chosen, rejected = row["prompt"], row["chosen"], row["rejected"]
        evidence: dict[str, str] = {}
        restatement = float(fuzz.token_set_ratio(chosen, rejected))
        extra = [Cue("restatement", "agree", f"token-set ratio {restatement:.0f}")] if restatement >= th.restatement_ratio else []
        corrected = det.self_correction(rejected, chosen, pat)
        if corrected:
            evidence["rejected_self_corrects"] = corrected
        # what the rejected answer claims is what it says before it corrects itself ("X. Just kidding, Y")
        claim = det.before_correction(rejected, pat) if corrected else rejected
        if claim != rejected:
            sentence_similarity = sentence_similarity[: len(sentences(claim))]
        claims = compare_claims(
            prompt, chosen, claim, self.lexicon, sentence_similarity, th.claim_similarity_min, th.claim_coverage_min, extra, self.similar
        )  # fmt: skip
        non_answer = not_an_answer(prompt, rejected)
        if claims.agrees and not non_answer:  # a question back or a fragment makes no claim to agree with
            evidence["rejected_agrees"] = f"offline: {claims.evidence()}"
        for field, code in (("rejected", "rejected_self_contradictory"), ("chosen", "chosen_self_contradictory")):
            found = det.self_contradiction(row[field], pat, prompt)
            if found:
                evidence[code] = found
        found = det.not_informational(prompt, pat)
        if found:
            evidence["question_not_informational"] = found
        rel_c, rel_r = m["relevance_chosen"], m["relevance_rejected"]
        # a bare "12 months" has no topic for a similarity to compare: only answers with 4+ content words count
        low = [f"{name} {value:.2f}" for name, value, text in (("chosen", rel_c, chosen), ("rejected", rel_r, rejected))
               if value < th.relevance_min and len(set(content_stems(text))) >= 4]  # fmt: skip
        if low:
            evidence["off_topic"] = f"relevance {', '.join(low)} < {th.relevance_min}"
        absurd = pat.find("absurd", rejected)
        hardness = plausibility_hardness(m["loglik_rejected"], m["loglik_chosen"], absurd is not None)
        foreign = other_language(rejected, self.ev.language, th.other_language_min)
        form = easy_form_evidence(prompt, rejected, absurd, rel_r, th, foreign)
        unlikely = unlikely_evidence(hardness, th)
        if form or unlikely:
            evidence["rejected_easy"] = f"offline: {form or unlikely}"
        found = pat.find("prompt_injection", prompt)
        if found:
            evidence["prompt_injection"] = found
        if self.pii_available:
            kinds = sorted({k for field in PAIR_FIELDS for k in det.pii_kinds(row[field])})
            if kinds:
                evidence["pii"] = ",".join(kinds)
        g_c, s_c, w_c = self.fluency.score(chosen)
        g_r, s_r, w_r = self.fluency.score(rejected)
        if th.grammar_max_per_100w is not None and max(g_c, g_r) > th.grammar_max_per_100w:
            evidence["poor_grammar"] = f"{max(g_c, g_r):.1f} per 100 words"
        if th.spelling_max_per_100w is not None and max(s_c, s_r) > th.spelling_max_per_100w:
            evidence["misspelled"] = f"{max(s_c, s_r):.1f} per 100 words"
        return {
            **{k: _round(v) for k, v in m.items()},
            "restatement": round(restatement, 1), "claim_support": round(claims.support, 4), "claim_coverage": round(claims.coverage, 4), "hardness": _round(hardness),
            "grammar_chosen": round(g_c, 2), "grammar_rejected": round(g_r, 2),
            "spelling_chosen": round(s_c, 2), "spelling_rejected": round(s_r, 2),
            "words_chosen": w_c, "words_rejected": w_r,
            "flags": [code for code in FLAG_CODES if code in evidence], "evidence": evidence,
            "_offline": {"claims": claims, "easy_form": form, "easy_unlikely": unlikely},  # for the judge (apply_judge)
        }  # fmt: skip


def _round(value: Any, digits: int = 4) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value, digits) if isinstance(value, float) else value


def _coherence(vectors: np.ndarray) -> float | None:
    """Mean similarity of adjacent sentences (None for a single sentence)."""
    return float(np.mean(np.einsum("ij,ij->i", vectors[:-1], vectors[1:]))) if len(vectors) > 1 else None


def plausibility_hardness(loglik_rejected: float, loglik_chosen: float, absurd: bool) -> float:
    """:func:`generation.evaluation.plausibility.hardness` (NaN without a plausibility model)."""
    from generation.evaluation.plausibility import hardness

    return hardness(loglik_rejected, loglik_chosen, absurd)


def easy_form_evidence(
    question: str, rejected: str, absurd: str | None, relevance_rejected: float, th: Any, foreign: str | None = None
) -> str | None:  # fmt: skip
    """What any reader sees without knowing the subject: not an answer, written in another language (``foreign``:
    :func:`metrics.other_language`), an absurdity marker, an unrelated answer."""
    found = not_an_answer(question, rejected)
    if found:
        return f"not an answer: {found}"
    if foreign:
        return f"written in another language: {foreign}"
    if absurd:
        return f"absurd: {absurd}"
    if relevance_rejected < th.easy_relevance_max and len(set(content_stems(rejected))) >= 4:  # a bare "12 months" has no topic to compare
        return f"unrelated to the question (relevance {relevance_rejected:.2f})"
    return None


def unlikely_evidence(hardness: float, th: Any) -> str | None:
    """The plausibility language model finds the rejected answer far less likely than the chosen one."""
    if not math.isnan(hardness) and hardness < th.hardness_min:
        return f"hardness {hardness:.2f} < {th.hardness_min} (the rejected answer is much less likely per token than the chosen one)"
    return None


def agreement_verdict(claims: Any, p_same: float | None, capable: bool, th: Any) -> str | None:
    """The ``rejected_agrees`` evidence, or None. A ``judge_capable`` judge's P(same claims) decides (the offline cues
    are quoted beside it); otherwise, or when its reply was unreadable, the offline cues decide."""
    if not capable or p_same is None:
        return f"offline: {claims.evidence()}" if claims.agrees else None
    offline = claims.evidence() if claims.agrees or claims.differs else "no offline cue either way"
    if p_same >= th.judge_same_claims_min:
        return f"judge: P(same claims) {p_same:.2f} >= {th.judge_same_claims_min} (offline: {offline})"
    return None


def easy_verdict(form: str | None, unlikely: str | None, p_plausible: float | None, capable: bool, th: Any) -> str | None:
    """The ``rejected_easy`` evidence, or None. What shows in the form (not an answer, absurd, unrelated) always counts;
    for plausibility a ``judge_capable`` judge's P(a lay reader believes it) replaces the small language model's."""
    if form:
        return f"offline: {form}"
    if not capable or p_plausible is None:
        return f"offline: {unlikely}" if unlikely else None
    if p_plausible < th.judge_plausible_min:
        return f"judge: P(a lay reader believes it) {p_plausible:.2f} < {th.judge_plausible_min}" + (f" (offline: {unlikely})" if unlikely else "")
    return None


_META_STEMS = frozenset(stem(w) for w in ("answer", "question", "correct", "response", "reply"))


def not_an_answer(question: str, text: str) -> str | None:
    """Why ``text`` is no answer to ``question`` (a fragment, a question back, nothing beyond the question), or None."""
    parts = sentences(text)
    tokens = words(text)
    if len(tokens) < 3 or (text.rstrip().endswith(":") and len(tokens) < 8):
        return f"a fragment ({text.strip()[:40]!r})"
    asked = set(content_stems(question))
    if parts and parts[0].rstrip().endswith("?"):
        opening = set(content_stems(parts[0]))
        echo = len(opening) >= 2 and opening <= asked | _META_STEMS and len(parts) > 1  # repeats the question, then answers
        if not echo:
            return f"it opens with a question ({parts[0][:60]!r})"
        text = " ".join(parts[1:])
    new_numbers = numbers(text) - numbers(question)
    new = set(content_stems(text)) - asked - _META_STEMS
    # "Yes, X does Y" answers a yes/no question in its words; "The correct answer is 10" answers with a number
    if len(new) <= 1 and not new_numbers and not is_polar_question(question):
        return "it adds nothing to the question's own words"
    return None


def _pii_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("generation.pii") is None:
        log.warning("generation.pii is not available: the pii flag is not computed")
        return False
    return True


# ---------------------------------------------------------------------------------------- the gate


def apply_judge(results: list[dict[str, Any]], judge_scores: list[dict[str, Any]] | None, cfg: RunConfig, capable: bool = False) -> None:
    """Add judge columns and ``chosen_doubtful`` (P(chosen correct) below the threshold); with a ``judge_capable``
    judge, decide ``rejected_agrees`` and the plausibility part of ``rejected_easy`` from its answers."""
    from generation.evaluation.judge import JUDGE_COLUMNS

    th = cfg.evaluation.thresholds
    for index, result in enumerate(results):
        scores = judge_scores[index] if judge_scores else {}
        for column in JUDGE_COLUMNS:
            value = scores.get(column)
            result[column] = None if value is None else round(float(value), 4)
        evidence = result["evidence"]
        p = result["judge_chosen_correct"]
        if p is not None and p < th.judge_correct_min:
            evidence["chosen_doubtful"] = f"P(correct) {p:.2f}"
        offline = result.get("_offline")
        if judge_scores and capable and offline is not None:
            for code, found in (
                ("rejected_agrees", agreement_verdict(offline["claims"], result["judge_same_claims"], capable, th)),
                ("rejected_easy", easy_verdict(offline["easy_form"], offline["easy_unlikely"], result["judge_rejected_plausible"], capable, th)),
            ):  # fmt: skip
                evidence.pop(code, None)
                if found:
                    evidence[code] = found
        result["flags"] = [code for code in FLAG_CODES if code in evidence]


def apply_gate(results: list[dict[str, Any]], cfg: RunConfig, judge_capable: bool) -> None:
    """Set ``passed``: no flag from ``gate.fail_on_flags`` (and, with a capable judge and
    ``require_chosen_correct``, a judged-correct chosen answer)."""
    gate = cfg.evaluation.gate
    failing = set(gate.fail_on_flags)
    for result in results:
        ok = not failing.intersection(result["flags"])
        if gate.require_chosen_correct and judge_capable:
            p = result.get("judge_chosen_correct")
            ok = ok and p is not None and p >= cfg.evaluation.thresholds.judge_correct_min
        result["passed"] = int(ok)


def score_columns() -> list[str]:
    """The columns of scores.csv, in order."""
    from generation.evaluation.judge import JUDGE_COLUMNS

    return ["row", "prompt", "modification", *METRIC_COLUMNS, *JUDGE_COLUMNS, "flags", "passed", "evidence"]


def score_rows_for_csv(data: EvalInput, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for index, (row, result) in enumerate(zip(data.rows, results)):
        out: dict[str, Any] = {"row": index, "prompt": row["prompt"], "modification": data.modifications[index]}
        for column in score_columns()[3:]:
            value = result.get(column)
            if column == "flags":
                value = ";".join(result["flags"])
            elif column == "evidence":
                value = "; ".join(f"{k}: {v}" for k, v in result["evidence"].items())
            out[column] = "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
        rows.append(out)
    return rows


# ------------------------------------------------------------------------------------------ command


def evaluate_file(
    input_path: Path, out_dir: Path, cfg: RunConfig, reference_file: Path | None = None, progress: bool = True,
    use_judge: bool = True, scorer: Scorer | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Evaluate one pairs CSV into ``out_dir`` (scores.csv, summary.json, report.html, filtered.csv); returns the summary."""
    from generation.evaluation.report import build_summary, write_report

    started = time.monotonic()
    if reference_file is None and cfg.evaluation.contamination.reference:
        reference_file = Path(cfg.evaluation.contamination.reference).expanduser()
    data = load_input(input_path, reference_file)
    scorer = scorer or Scorer(cfg)
    results = scorer.score(data, progress)
    judge_info: dict[str, Any] | None = None
    judge_scores = None
    judge_cfg = cfg.evaluation.judge
    if use_judge and judge_cfg.model and judge_cfg.backend is not None:
        from generation.evaluation.judge import run_judge

        judge_scores, judge_info = run_judge(
            judge_cfg.backend, judge_cfg.rubric, data.rows, cfg.retry, out_dir / "cache" / "requests.sqlite",
            out_dir / "logs" / "judge-server.log", progress, judge_cfg.max_concurrency,
        )  # fmt: skip
        judge_info["name"] = judge_cfg.model
    capable = bool(judge_info and judge_info["judge_capable"])
    apply_judge(results, judge_scores, cfg, capable)
    if cfg.evaluation.gate.require_chosen_correct and not capable:
        log.warning(
            "evaluation.gate.require_chosen_correct is set but %s; the chosen answers' correctness is UNVERIFIED and not gated",
            "no judge is configured" if judge_info is None else f"the judge {judge_info['model']} is not marked judge_capable",
        )
    apply_gate(results, cfg, capable)
    scores = score_rows_for_csv(data, results)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "scores.csv", score_columns(), scores)
    write_csv(out_dir / "filtered.csv", PAIR_FIELDS, (row for row, res in zip(data.rows, results) if res["passed"]))
    summary = build_summary(data, results, cfg, judge_info, time.monotonic() - started)
    summary["outputs"] = {name: str(out_dir / name) for name in ("scores.csv", "summary.json", "report.html", "filtered.csv")}
    write_json(out_dir / "summary.json", summary)
    write_report(out_dir / "report.html", data, results, summary, cfg)
    log.info("evaluated %d pairs in %.1f s: %d passed the gate; %s", len(results), summary["elapsed_s"], summary["passed"], out_dir)
    return summary
