"""`synthgen evaluate`, `synthgen review export|import` and `synthgen feedback import`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from generation.cli import EXIT_OK, _load, cli, config_options, handle_errors


@cli.command()
@click.argument("input_csv", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output-dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Where scores.csv, summary.json, report.html and filtered.csv go.")  # fmt: skip
@config_options
@click.option("--reference", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV with a 'question' (and optional 'answer') column: the benchmark that new questions and answers "
                   "must not copy (default: evaluation.contamination.reference; none = no contamination check).")  # fmt: skip
@click.option("--no-judge", is_flag=True, help="Skip the LLM judge even if evaluation.judge.model is set.")
@handle_errors
def evaluate(input_csv: Path, output_dir: Path, config_path: Path | None, overrides: tuple[str, ...], reference: Path | None, no_judge: bool) -> int:
    """Score a prompt/chosen/rejected CSV: per-row metrics and flags, quality gate, report.

    Writes OUTDIR/scores.csv, summary.json, report.html and filtered.csv (the pairs that pass the gate).
    """
    from generation.evaluation.evaluate import evaluate_file

    cfg = _load(config_path, overrides)
    quiet = click.get_current_context().find_root().obj["verbosity"] < 0
    summary = evaluate_file(input_csv, output_dir, cfg, reference, progress=not quiet, use_judge=not no_judge)
    flags = ", ".join(f"{k} {v}" for k, v in summary["flag_counts"].items() if v) or "none"
    lines = [
        "", f"Evaluated {summary['rows']} pairs in {summary['elapsed_s']:.0f} s: {summary['passed']} passed the quality gate",
        f"  flags: {flags}", f"  {summary['misinformation_note']}", f"  report: {output_dir / 'report.html'}",
    ]  # fmt: skip
    click.echo("\n".join(lines), err=True)
    return EXIT_OK


@cli.group("review")
def review_group() -> None:
    """Expert review sheets: export a stratified sample, import the ratings."""


@review_group.command("export")
@click.option("--eval-dir", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder of a synthgen evaluate run.")
@click.option("--pairs", type=click.Path(path_type=Path, dir_okay=False), default=None, help="The evaluated CSV (default: the input recorded in summary.json).")
@click.option("-n", "--size", type=click.IntRange(1), default=40, show_default=True, help="Rows in the sheet.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="Default: EVAL_DIR/review/.")
@handle_errors
def review_export(eval_dir: Path, pairs: Path | None, size: int, seed: int, output_dir: Path | None) -> int:
    """Write review_sheet.csv (rating columns to fill) and review_sheet.html, stratified by flag and modification."""
    from generation.evaluation.review import export_review

    csv_path, html_path = export_review(eval_dir, pairs, size, seed, output_dir)
    click.echo(f"{csv_path}\n{html_path}")
    return EXIT_OK


@review_group.command("import")
@click.argument("sheets", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--eval-dir", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder of the evaluation the sheets came from.")
@handle_errors
def review_import(sheets: tuple[Path, ...], eval_dir: Path) -> int:
    """Read rated sheets; print agreement of experts with the automated scores and between experts."""
    from generation.evaluation.review import import_review

    report = import_review(list(sheets), eval_dir)
    click.echo(json.dumps({k: report[k] for k in ("ratings", "reviewers", "experts_vs_automated", "between_experts")}, indent=2))
    return EXIT_OK


@cli.group("feedback")
def feedback_group() -> None:
    """End-user feedback on published pairs."""


@feedback_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--eval-dir", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder of the evaluation (scores.csv, summary.json).")
@click.option("--replace", is_flag=True, help="Replace feedback.csv instead of appending to it.")
@handle_errors
def feedback_import(file: Path, eval_dir: Path, replace: bool) -> int:
    """Normalise FILE (columns row, rating, comment) into EVAL_DIR/feedback.csv; per-modification figures go to summary.json."""
    from generation.evaluation.review import import_feedback

    figures = import_feedback(file, eval_dir, replace)
    click.echo(json.dumps(figures, indent=2))
    return EXIT_OK
