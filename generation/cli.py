"""The ``synthgen`` command line: parse, load config, call one function."""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from generation import __version__
from generation.config import DEFAULT_CONFIG, RunConfig, dump_config_yaml, load_config
from generation.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_SHORTFALL, SynthgenError

log = logging.getLogger("generation")

EXIT_CODES_HELP = """\b
Exit codes:
  0    success
  1    the run failed while working (backend unavailable, I/O error)
  2    bad command line, config or input data (nothing was run)
  3    --strict and fewer questions than the target were produced
  130  interrupted (Ctrl-C or SIGTERM)
"""

NOISY_LOGGERS = ("httpx", "httpx2", "httpcore", "huggingface_hub", "datasets", "filelock", "urllib3", "openai", "fsspec")


def _setup_logging(verbosity: int) -> None:
    level = logging.INFO if verbosity == 0 else logging.DEBUG if verbosity > 0 else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if verbosity <= 0 else logging.INFO)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def handle_errors(func: Callable[..., int | None]) -> Callable[..., None]:
    """Turn our errors into one line on stderr and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        verbose = (ctx.find_root().obj or {}).get("verbosity", 0) > 0
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            code = func(*args, **kwargs) or EXIT_OK
        except SynthgenError as exc:
            click.echo(f"synthgen: error: {exc}", err=True)
            code = exc.exit_code
        except KeyboardInterrupt:
            click.echo("synthgen: interrupted; finished requests are cached in the run folder, rerun to resume", err=True)
            code = EXIT_INTERRUPTED
        except Exception as exc:  # an unexpected bug: still one line, the traceback with -v
            if verbose:
                traceback.print_exc()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"synthgen: error: unexpected {type(exc).__name__}: {first} (rerun with -v for details)", err=True)
            code = EXIT_FAILURE
        ctx.exit(code)

    return wrapper


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
        help="Override any config key (repeatable), e.g. --set questions.target=300.",
    )(func)  # fmt: skip
    func = click.option(
        "-c", "--config", "config_path", type=click.Path(path_type=Path), default=None,
        help=f"Run config YAML (default: {DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parent.parent)}).",
    )(func)  # fmt: skip
    return func


def output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-o", "--output-dir", type=click.Path(path_type=Path), default=None,
        help="Run folder (default: output_dir from config, else outputs/<config name>/).",
    )(func)  # fmt: skip


def _load(config_path: Path | None, overrides: tuple[str, ...], strict: bool = False) -> RunConfig:
    extra = ("strict=true",) if strict else ()
    return load_config(config_path, (*overrides, *extra))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "--version", prog_name="synthgen")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for library logs too).")
@click.option("-q", "--quiet", count=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Make synthetic preference (DPO) datasets: modify seed questions with an LLM, then generate a
    correct (chosen) and a plausible but incorrect (rejected) answer for each question.

    Start with `synthgen run` (the whole pipeline on the embedded model) or `synthgen run --dry-run`.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbose - quiet
    _setup_logging(verbose - quiet)


def _print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    stages = summary.get("stages", {})
    lines = ["", "Run summary"]
    if "preprocess" in stages:
        pre = stages["preprocess"]
        lines.append(f"  seed questions   {pre['rows_in']} read -> {pre['rows_out']} after preprocessing -> {stages.get('seeds_used')} used")
    if "questions" in stages:
        q = stages["questions"]
        lines.append(
            f"  questions        {q['rows_out']}/{q['target']} ({q['synthetic_accepted']} synthetic, "
            f"{sum(q['rejected_candidates'].values())} candidates rejected, {q['give_ups']} give-ups)"
        )
        if q["shortfall"]:
            lines.append(f"  SHORTFALL        {q['shortfall']} question(s) short of the target")
    if "responses" in stages:
        r = stages["responses"]
        lines.append(f"  pairs            {r['rows_out']}/{r['rows_in']} ({sum(r['rejected_candidates'].values())} answers rejected)")
    for role, usage in summary.get("usage", {}).items():
        total = usage["total"]
        lines.append(
            f"  {role:<16} {usage['model']}: {total['requests']} requests, {total['cache_hits']} cached, "
            f"{total['retries']} retries, {total['prompt_tokens']} prompt + {total['completion_tokens']} completion tokens"
        )
    lines.append(f"  elapsed          {summary.get('elapsed_s', 0):.1f} s")
    lines.append(f"  output           {out_dir}/")
    click.echo("\n".join(lines), err=True)


def _run_stages(cfg: RunConfig, output_dir: Path | None, stages: tuple[str, ...], questions_file: Path | None = None) -> int:
    from generation.pipeline import output_dir_for, run_pipeline

    out_dir = output_dir_for(cfg, output_dir)
    quiet = click.get_current_context().find_root().obj["verbosity"] < 0
    summary = run_pipeline(cfg, out_dir, stages, questions_file, show_progress=not quiet)
    _print_summary(summary, out_dir)
    shortfall = summary.get("stages", {}).get("questions", {}).get("shortfall", 0)
    if shortfall and cfg.strict:
        click.echo(f"synthgen: error: --strict: {shortfall} question(s) short of the target", err=True)
        return EXIT_SHORTFALL
    return EXIT_OK


@cli.command()
@config_options
@output_option
@click.option("--dry-run", is_flag=True, help="Validate config and data, estimate requests/tokens/time; no model calls.")
@click.option("--strict", is_flag=True, help="Exit with status 3 if fewer questions than the target were produced.")
@handle_errors
def run(config_path: Path | None, overrides: tuple[str, ...], output_dir: Path | None, dry_run: bool, strict: bool) -> int:
    """Run the whole pipeline: questions.csv, then questions_and_responses.csv (+ .jsonl)."""
    cfg = _load(config_path, overrides, strict)
    if dry_run:
        from generation.pipeline import estimate, output_dir_for

        report = estimate(cfg)
        report["output_dir"] = str(output_dir_for(cfg, output_dir))
        click.echo(json.dumps(report, indent=2))
        return EXIT_OK
    return _run_stages(cfg, output_dir, ("questions", "responses"))


@cli.command()
@config_options
@output_option
@click.option("--strict", is_flag=True, help="Exit with status 3 if fewer questions than the target were produced.")
@handle_errors
def questions(config_path: Path | None, overrides: tuple[str, ...], output_dir: Path | None, strict: bool) -> int:
    """Only the question stage: load, preprocess and modify seed questions into questions.csv."""
    return _run_stages(_load(config_path, overrides, strict), output_dir, ("questions",))


@cli.command()
@config_options
@output_option
@click.option(
    "--questions", "questions_file", type=click.Path(path_type=Path), default=None,
    help="CSV with a 'question' column (default: questions.csv in the run folder).",
)  # fmt: skip
@handle_errors
def responses(config_path: Path | None, overrides: tuple[str, ...], output_dir: Path | None, questions_file: Path | None) -> int:
    """Only the answer stage: chosen/rejected answers for an existing questions CSV."""
    return _run_stages(_load(config_path, overrides), output_dir, ("responses",), questions_file)


@cli.command("serve-local")
@config_options
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 (default: a free one).")
@handle_errors
def serve_local(config_path: Path | None, overrides: tuple[str, ...], port: int | None) -> int:
    """Start the embedded model server in the foreground (Ctrl-C stops it)."""
    import time

    from generation.endpoints.embedded import EmbeddedServer

    cfg = _load(config_path, overrides)
    if cfg.backend.engine != "embedded" or cfg.backend.embedded is None:
        raise SynthgenError(f"backend.engine is {cfg.backend.engine!r}; serve-local serves only the embedded model")
    server_cfg = cfg.backend.embedded.model_copy(update={"port": port} if port else {})
    with EmbeddedServer(server_cfg, cfg.backend.model) as server:
        click.echo(f"serving {cfg.backend.model} at {server.base_url} (OpenAI chat API); Ctrl-C to stop")
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
    raise SynthgenError("the embedded model server exited")


@cli.group("config")
def config_group() -> None:
    """Inspect configs."""


@config_group.command("show")
@config_options
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@handle_errors
def config_show(config_path: Path | None, overrides: tuple[str, ...], fmt: str) -> int:
    """Print the effective config (domain pack < model file < run config < --set). It holds no secrets."""
    cfg = _load(config_path, overrides)
    click.echo(json.dumps(cfg.public_dict(), indent=2) if fmt == "json" else dump_config_yaml(cfg), nl=False)
    return EXIT_OK


def main() -> None:
    cli(prog_name="synthgen")


if __name__ == "__main__":
    main()
