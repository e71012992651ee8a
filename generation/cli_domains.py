"""Domain commands: ``synthgen domain init``, ``synthgen mine-modifications`` and ``synthgen modifications stats``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click
import yaml

from generation.cli import EXIT_OK, _load, cli, config_options, handle_errors
from generation.errors import ConfigError


@cli.command("mine-modifications")
@config_options
@click.option("--sample", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV with a 'question' column (default: the domain pack's own sample).")  # fmt: skip
@click.option("--output", "output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where the reviewable YAML list goes, e.g. modifications.yaml.")  # fmt: skip
@click.option("--no-llm", is_flag=True, help="Only the NLP pass (no model is started).")
@handle_errors
def mine_modifications(config_path: Path | None, overrides: tuple[str, ...], sample: Path | None, output: Path, no_llm: bool) -> int:
    """Mine a candidate modification list from domain questions (NLP pass + LLM pass), for expert review.

    Every entry is written with status: proposed; runs use only entries an expert set to approved.
    The model comes from the run config (-c, default configs/default.yaml) and --domain picks the pack.
    """
    from generation.domains import load_domain_pack
    from generation.mining import mine

    cfg = _load(config_path, overrides)
    pack = load_domain_pack(cfg.domain)
    if sample is None:
        if pack.sample is None:
            raise ConfigError(f"{pack.path}: sample: the domain pack names no seed sample; pass --sample FILE")
        sample = pack.sample
    document = mine(cfg, sample, output, use_llm=not no_llm, existing=cfg.modifications)
    entries = document["modifications"]
    by_source: dict[str, int] = {}
    for entry in entries:
        by_source[entry["evidence"]["source"]] = by_source.get(entry["evidence"]["source"], 0) + 1
    sources = ", ".join(f"{n} {s}" for s, n in sorted(by_source.items())) or "none"
    for role, usage in document["usage"].items():
        total = usage["total"]
        click.echo(f"LLM pass ({role}, {usage['model']}): {total['requests']} request(s), {total['completion_tokens']} completion tokens", err=True)
    click.echo(f"{len(entries)} proposed modification(s) from {document['questions']} questions ({sources}) -> {output}", err=True)
    click.echo("review them (status: approved|rejected, reviewer, note) before a run uses them", err=True)
    return EXIT_OK


@cli.group("modifications")
def modifications_group() -> None:
    """Per-modification quality across runs (continuous learning)."""


@modifications_group.command("stats")
@click.argument("stats_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--add", "folders", multiple=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Import an evaluation (a run folder or its eval/ folder with scores.csv, feedback.csv); repeatable.")  # fmt: skip
@click.option("--min-count", type=click.IntRange(min=1), default=None, help="Observations before a modification can be retired.")
@click.option("--retire-below", type=click.FloatRange(0, 1), default=None, help="Retire when the posterior mean stays below this.")
@click.option("--prior", nargs=2, type=click.FloatRange(min=0, min_open=True), default=None, metavar="ALPHA BETA",
              help="Beta prior of the success rate (default 1 1).")  # fmt: skip
@click.option("--feedback-weight", type=click.FloatRange(min=0, min_open=True), default=None,
              help="How many pairs one user feedback counts as (default 1).")  # fmt: skip
@config_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def modifications_stats(
    stats_file: Path, folders: tuple[Path, ...], min_count: int | None, retire_below: float | None,
    prior: tuple[float, float] | None, feedback_weight: float | None, config_path: Path | None,
    overrides: tuple[str, ...], as_json: bool,
) -> int:  # fmt: skip
    """Update (--add) and print the stats file and the sampling weights it gives.

    With -c/--domain, only that run's modifications are listed (unseen ones at the prior weight). A run
    samples with these weights with --set questions.modification_weights=STATS_FILE.
    """
    from generation.modification_stats import _check_settings, compute_weights, format_table, import_evaluation, load_stats, save_stats

    changes = {
        key: value
        for key, value in (("min_count", min_count), ("retire_below", retire_below), ("feedback_weight", feedback_weight))
        if value is not None
    }
    if prior is not None:
        changes.update(prior_alpha=prior[0], prior_beta=prior[1])
    stats = load_stats(stats_file, create=bool(folders or changes))
    imported = [import_evaluation(stats, folder) for folder in folders]
    if changes:
        stats["settings"] = _check_settings({**stats["settings"], **changes}, str(stats_file))
    if folders or changes:
        save_stats(stats_file, stats)
    for record in imported:
        what = record.get("skipped") or f"{record['pairs']} pair(s), {record['feedback']} feedback row(s)"
        click.echo(f"imported {record['path']}: {what}", err=True)
    ctx = click.get_current_context()
    modifications = _load(config_path, overrides).modifications if (config_path or overrides or ctx.meta.get("domain")) else None
    if as_json:
        figures = compute_weights(stats)
        click.echo(json.dumps({"settings": stats["settings"], "sources": stats["sources"], "modifications": figures}, indent=2))
    else:
        click.echo(format_table(stats, modifications))
    return EXIT_OK


PACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@cli.group("domain")
def domain_group() -> None:
    """Domain packs: start a new one from a sample of questions."""


@domain_group.command("init")
@click.argument("name")
@click.option("--sample", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="CSV with a 'question' column: questions people ask in the new domain.")  # fmt: skip
@click.option("--description", default=None, help='What the domain is, e.g. "beekeeping and hive health" (default: NAME).')
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Run config whose mining and privacy settings apply (default: the bundled default.yaml).")  # fmt: skip
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override any config key (repeatable).")
@handle_errors
def domain_init(name: str, sample: Path, description: str | None, config_path: Path | None, overrides: tuple[str, ...]) -> int:
    """Write ./NAME.yaml, a minimal domain pack for SAMPLE, and ./NAME-modifications.yaml, the modifications
    the NLP mining pass proposes for it (status: proposed, for review). Never overwrites a file.

    Every key the pack does not set comes from the generic base pack; "{domain}" in its prompts becomes the
    description. After review (set status: approved): synthgen run --domain ./NAME.yaml
    """
    from generation.config import load_config
    from generation.mining import mine, read_sample

    if not PACK_NAME.fullmatch(name) or name.endswith((".yaml", ".yml")):
        raise ConfigError(f"domain init: NAME {name!r}: use letters, digits, '-', '_' or '.' (no path, no .yaml), e.g. beekeeping")
    if description is not None and not description.strip():
        raise ConfigError("domain init: --description: must not be empty")
    if not sample.is_file():
        raise ConfigError(f"domain init: --sample: file not found: {sample}")
    here = Path.cwd()
    pack, review = here / f"{name}.yaml", here / f"{name}-modifications.yaml"
    for path in (pack, review):
        if path.exists():
            raise ConfigError(f"domain init: {path} already exists; choose another NAME or move it away (nothing was written)")
    read_sample(sample)  # a bad sample is an input error before anything is written
    sample_ref = os.path.relpath(sample.resolve(), here) if sample.resolve().is_relative_to(here) else str(sample.resolve())
    text = (
        "# Domain pack written by `synthgen domain init` (see docs/domains.md). Keys not set here come from the\n"
        "# generic base pack; set any key (prompts, questions.filters, evaluation, ...) here to override it.\n"
        + yaml.safe_dump({"name": name, "description": " ".join((description or name).split()), "sample": sample_ref},
                         sort_keys=False, allow_unicode=True, width=1000)  # fmt: skip
        + f"modifications: {review.name}   # proposed by the NLP mining pass: review them before a run\n"
    )
    try:
        with open(pack, "x", encoding="utf-8") as handle:  # "x": never overwrite, even in a race
            handle.write(text)
    except FileExistsError:
        raise ConfigError(f"domain init: {pack} already exists (nothing was written)") from None
    try:
        # The new pack's effective config supplies the mining settings and the PII policy; its modifications
        # are what is being proposed, so a placeholder stands in for them here.
        cfg = load_config(config_path, (*overrides, f"domain={pack}", "modifications=[placeholder]"))
        document = mine(cfg, sample, review, use_llm=False, existing=[])
    except BaseException:
        pack.unlink(missing_ok=True)
        review.unlink(missing_ok=True)
        raise
    count = len(document["modifications"])
    click.echo(f"wrote {pack} (the pack) and {review} ({count} proposed modification(s) from {document['questions']} questions)", err=True)
    if count == 0:
        click.echo(f"the sample showed no shared question type or key phrase: write modifications into {review.name} by hand", err=True)
    click.echo(f"review {review.name} (status: approved|rejected, reviewer, note); the LLM pass can add more: "
               f"synthgen mine-modifications --domain ./{pack.name} --output more.yaml", err=True)  # fmt: skip
    click.echo(f"try the unreviewed list: synthgen run --domain ./{pack.name} --set modifications_include=[approved,proposed]", err=True)
    click.echo(f"--domain ./{pack.name}")
    return EXIT_OK
