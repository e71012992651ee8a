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
from typing import TYPE_CHECKING, Any

import click

from generation import __version__
from generation.config import DEFAULT_CONFIG, RunConfig, dump_config_yaml, load_config, load_saved_config
from generation.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_SHORTFALL, ConfigError, RedactSecrets, SynthgenError, redact
from generation.executors import EXECUTORS

if TYPE_CHECKING:
    from generation.executors.base import RunPlan
    from generation.executors.slurm import SlurmExecutor

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
    handler.addFilter(RedactSecrets())  # API key values never reach the terminal or a job log
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
            first = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
            click.echo(f"synthgen: error: unexpected {type(exc).__name__}: {first} (rerun with -v for details)", err=True)
            code = EXIT_FAILURE
        ctx.exit(code)

    return wrapper


def _remember_domain(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.meta["domain"] = value
    return value


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--domain", metavar="NAME|PACK.yaml", expose_value=False, callback=_remember_domain,
        help="Domain pack: a name in configs/domains/ (law, finance, ...) or a pack file; its seed sample is the "
        "dataset unless the config names one.",
    )(func)  # fmt: skip
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


def _domain_override() -> tuple[str, ...]:
    """``--domain`` as a ``domain=`` override (a pack path made absolute: relative to the current directory)."""
    from generation.domains import is_path_reference

    ctx = click.get_current_context(silent=True)
    domain = ctx.meta.get("domain") if ctx is not None else None
    if not domain:
        return ()
    return (f"domain={Path(domain).resolve() if is_path_reference(domain) else domain}",)


def _load(config_path: Path | None, overrides: tuple[str, ...], strict: bool = False) -> RunConfig:
    extra = ("strict=true",) if strict else ()
    return load_config(config_path, (*_domain_override(), *overrides, *extra))


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


def _command_line(*args: str | Path | None, overrides: tuple[str, ...] = ()) -> str:
    """The secret-free command line of this invocation, recorded for the dataset card."""
    from generation.publish import public_command

    ctx = click.get_current_context()
    argv = ["synthgen", ctx.info_name or ""]
    if ctx.meta.get("domain"):
        argv += ["--domain", str(ctx.meta["domain"])]
    flags = iter(args)
    for flag, value in zip(flags, flags):
        if value:
            argv += [str(flag)] if value is True else [str(flag), str(value)]
    for override in overrides:
        argv += ["--set", override]
    return public_command(argv)


def _remember_force(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta["force"] = value
    return value


force_option = click.option(
    "--force", is_flag=True, expose_value=False, callback=_remember_force,
    help="Discard shards in the run folder that were made with a different config.",
)  # fmt: skip


def _remember_executor(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.meta["executor"] = value
    return value


executor_option = click.option(
    "--executor", type=click.Choice(EXECUTORS), default="local", show_default=True, expose_value=False, callback=_remember_executor,
    help="Where the shards run: local (one after another in this process) or slurm (a Submitit job array and a gather "
    "job, followed until they end; like submit --wait).",
)  # fmt: skip


def _run_stages(
    cfg: RunConfig, output_dir: Path | None, stages: tuple[str, ...], questions_file: Path | None = None, command: str | None = None
) -> int:  # fmt: skip
    from generation.pipeline import output_dir_for, plan_run, run_pipeline

    ctx = click.get_current_context()
    out_dir = output_dir_for(cfg, output_dir)
    quiet = ctx.find_root().obj["verbosity"] < 0
    force = bool(ctx.meta.get("force"))
    if ctx.meta.get("executor") == "slurm":
        from generation.executors.slurm import SlurmExecutor
        from generation.pipeline import read_summary

        out_dir = out_dir.resolve()  # the jobs may start in another directory
        plan = plan_run(cfg, out_dir, stages, questions_file, force)
        if not _submit_and_follow(SlurmExecutor(cfg, out_dir, command), plan, wait=True):
            return EXIT_FAILURE
        summary = read_summary(out_dir)
    else:
        summary = run_pipeline(cfg, out_dir, stages, questions_file, show_progress=not quiet, command=command, force=force)
    _print_summary(summary, out_dir)
    shortfall = summary.get("stages", {}).get("questions", {}).get("shortfall", 0)
    if shortfall and cfg.strict:
        click.echo(f"synthgen: error: --strict: {shortfall} question(s) short of the target", err=True)
        return EXIT_SHORTFALL
    return EXIT_OK


def _submit_and_follow(executor: SlurmExecutor, plan: RunPlan, wait: bool) -> bool:
    """Submit a plan with the Slurm executor, print where its jobs are and, with ``wait``, follow them; True when
    every job completed (or, without ``wait``, once submitted)."""
    executor.launch(plan)
    submission, out_dir = executor.submission, plan.out_dir
    assert submission is not None
    ranks = ",".join(map(str, submission.shard_jobs)) or "none"
    click.echo(f"array job   {submission.array_job_id or '-'} (shards {ranks} of {plan.world_size})")
    click.echo(f"gather job  {submission.gather_job_id}")
    click.echo(f"logs        {submission.log_folder}/")
    click.echo(f"follow with synthgen status -o {out_dir}   (or squeue -j {submission.array_job_id or submission.gather_job_id})")
    if not wait:
        return True
    try:
        ok = executor.wait(plan, echo=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        jobs = " ".join(filter(None, (submission.array_job_id, submission.gather_job_id)))
        click.echo(f"synthgen: stopped following; the jobs keep running (synthgen status -o {out_dir}; scancel {jobs} stops them)", err=True)
        raise
    if ok:
        click.echo(f"done: {out_dir}/", err=True)
    else:
        click.echo(f"synthgen: error: some jobs did not complete; see synthgen status -o {out_dir} and {submission.log_folder}/", err=True)
    return ok


@cli.command()
@config_options
@output_option
@click.option("--dry-run", is_flag=True, help="Validate config and data, estimate requests/tokens/time; no model calls.")
@click.option("--strict", is_flag=True, help="Exit with status 3 if fewer questions than the target were produced.")
@click.option("--push-to-hub", "push_repo", metavar="ORG/NAME", default=None, help="Upload the run folder to this Hub dataset repo at the end.")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repo as private.")
@executor_option
@force_option
@handle_errors
def run(
    config_path: Path | None, overrides: tuple[str, ...], output_dir: Path | None, dry_run: bool, strict: bool,
    push_repo: str | None, private: bool,
) -> int:  # fmt: skip
    """Run the whole pipeline: questions.csv, then questions_and_responses.csv (+ .jsonl, .parquet, README.md card)."""
    cfg = _load(config_path, overrides, strict)
    if push_repo:
        from generation.publish import check_repo_id

        check_repo_id(push_repo)
    if dry_run:
        from generation.pipeline import estimate, output_dir_for

        report = estimate(cfg)
        report["output_dir"] = str(output_dir_for(cfg, output_dir))
        click.echo(json.dumps(report, indent=2))
        return EXIT_OK
    command = _command_line("-c", config_path, "-o", output_dir, "--strict", strict, overrides=overrides)
    code = _run_stages(cfg, output_dir, ("questions", "responses"), command=command)
    if push_repo and code != EXIT_OK:
        log.warning("not pushed to %s: the run did not succeed", push_repo)
    elif push_repo:
        from generation.pipeline import output_dir_for
        from generation.publish import push_to_hub

        click.echo(f"pushed to {push_to_hub(output_dir_for(cfg, output_dir), push_repo, private)}", err=True)
    return code


@cli.command()
@config_options
@output_option
@click.option("--strict", is_flag=True, help="Exit with status 3 if fewer questions than the target were produced.")
@executor_option
@force_option
@handle_errors
def questions(config_path: Path | None, overrides: tuple[str, ...], output_dir: Path | None, strict: bool) -> int:
    """Only the question stage: load, preprocess and modify seed questions into questions.csv."""
    command = _command_line("-c", config_path, "-o", output_dir, "--strict", strict, overrides=overrides)
    return _run_stages(_load(config_path, overrides, strict), output_dir, ("questions",), command=command)


@cli.command()
@config_options
@output_option
@click.option(
    "--questions", "questions_file", type=click.Path(path_type=Path), default=None,
    help="CSV with a 'question' column (default: questions.csv in the run folder).",
)  # fmt: skip
@executor_option
@force_option
@handle_errors
def responses(config_path: Path | None, overrides: tuple[str, ...], output_dir: Path | None, questions_file: Path | None) -> int:
    """Only the answer stage: chosen/rejected answers for an existing questions CSV."""
    command = _command_line("-c", config_path, "-o", output_dir, "--questions", questions_file, overrides=overrides)
    return _run_stages(_load(config_path, overrides), output_dir, ("responses",), questions_file, command)


def _run_folder_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-o", "--output-dir", type=click.Path(path_type=Path, file_okay=False), required=True, help="The run folder.",
    )(func)  # fmt: skip


@cli.command()
@_run_folder_option
@click.option("--repo-id", required=True, metavar="ORG/NAME", help="Hub dataset repo (created if missing).")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@handle_errors
def push(output_dir: Path, repo_id: str, private: bool) -> int:
    """Upload a run folder's published files (card, pairs, provenance, config, summary) to the Hugging Face Hub.

    The token comes from HF_TOKEN or `hf auth login`; cache/ and logs/ are never uploaded.
    """
    from generation.publish import push_to_hub

    click.echo(f"pushed to {push_to_hub(output_dir, repo_id, private)}", err=True)
    return EXIT_OK


@cli.command()
@_run_folder_option
@handle_errors
def card(output_dir: Path) -> int:
    """Rewrite the dataset card (README.md) of a run folder, e.g. after an evaluation added eval/summary.json."""
    from generation.publish import write_card

    click.echo(str(write_card(output_dir)))
    return EXIT_OK


@cli.command("dpo-check")
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path, exists=True))
@click.option("-o", "--output-dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Where dpo_check.json and dpo_check.png (with --compare: dpo_compare.json/.png) go; also the default place of the data.")  # fmt: skip
@click.option("--compare", is_flag=True,
              help="Compare RUNS (run folders or pair files): the same model, held-out topics and seeds for each; which moved the held-out margin most.")  # fmt: skip
@click.option("--data", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="prompt/chosen/rejected CSV or conversational JSONL (default: OUTDIR/questions_and_responses.csv).")  # fmt: skip
@click.option("--model", "model_ref", default=None, metavar="CONFIG",
              help="DPO model YAML, or a name in configs/models/dpo/ (default: smollm2-135m, the embedded model).")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), default=15, show_default=True, help="DPO training steps per seed.")
@click.option("--eval-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.3, show_default=True,
              help="Fraction of topics held out for evaluation.")  # fmt: skip
@click.option("--seeds", type=click.IntRange(min=1), default=2, show_default=True, help="Repeats, each with its own split and training order.")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=5e-5, show_default=True)
@click.option("--beta", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True, help="DPO beta.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@handle_errors
def dpo_check(
    runs: tuple[Path, ...], output_dir: Path, compare: bool, data: Path | None, model_ref: str | None, steps: int, eval_fraction: float,
    seeds: int, seed: int, batch_size: int, learning_rate: float, beta: float, device: str,
) -> int:  # fmt: skip
    """Check whether the pairs carry a learnable preference: held-out preference before and after a short DPO run.

    With --compare RUN_A RUN_B [...]: train on each run's pairs and say which moved the held-out margin most."""
    from generation.dpo_check import CheckSettings, load_dpo_model_config, run_check

    settings = CheckSettings(
        steps=steps, eval_fraction=eval_fraction, seeds=seeds, seed=seed, batch_size=batch_size,
        learning_rate=learning_rate, beta=beta, device=device,  # type: ignore[arg-type]
    )  # fmt: skip
    if runs and not compare:
        raise ConfigError(f"unexpected argument(s) {' '.join(map(str, runs))}: run folders are given with --compare")
    if compare:
        if data is not None:
            raise ConfigError("--data and --compare exclude each other: give the runs (folders or pair files) as arguments")
        return _dpo_compare(list(runs), output_dir, load_dpo_model_config(model_ref), settings)
    report = run_check(data or output_dir / "questions_and_responses.csv", output_dir, load_dpo_model_config(model_ref), settings)
    figures = report["figures"]
    lines = ["", f"DPO check on {report['pairs']} pairs ({report['topics']} topics), {seeds} seed(s), {steps} steps"]
    for key, label in (("preference_accuracy", "accuracy"), ("margin_length_normalised", "margin/token")):
        f = figures[key]
        lines.append(
            f"  held-out {label:<13} {f['before']['estimate']:.3f} -> {f['after']['estimate']:.3f}  "
            f"change {f['delta']['estimate']:+.3f} (95% CI {f['delta']['ci_low']:+.3f} .. {f['delta']['ci_high']:+.3f})"
        )
    reward = figures["implicit_reward_accuracy"]
    lines.append(f"  implicit reward accuracy {reward['estimate']:.3f} (95% CI {reward['ci_low']:.3f} .. {reward['ci_high']:.3f})")
    lines.append(f"  {report['verdict']}")
    lines.append(f"  elapsed {report['elapsed_s']:.0f} s, peak RSS {report['peak_rss_mb']:.0f} MB; {output_dir}/dpo_check.json")
    click.echo("\n".join(lines), err=True)
    return EXIT_OK


def _dpo_compare(runs: list[Path], output_dir: Path, model_cfg: Any, settings: Any) -> int:
    """``dpo-check --compare``: the side-by-side table, the differences and the statement."""
    from generation.dpo_compare import COMPARE_JSON, compare_runs

    report = compare_runs(runs, output_dir, model_cfg, settings)

    def cell(f: dict[str, Any]) -> str:
        return f"{f['estimate']:+.3f} [{f['ci_low']:+.3f}, {f['ci_high']:+.3f}]"

    lines = ["", f"DPO compare: {len(report['runs'])} runs, {report['shared_topics']} shared topics, {settings.seeds} seed(s), {settings.steps} steps",
             "  common held-out pairs per seed: " + ", ".join(str(s["common_held_out_pairs"]) for s in report["splits"]),
             f"  {'run':<24} {'accuracy before -> after':<26} {'accuracy change (95% CI)':<27} {'margin/token change (95% CI)':<29} reward accuracy"]  # fmt: skip
    for run in report["runs"]:
        f = run["figures"]
        acc, norm, reward = f["preference_accuracy"], f["margin_length_normalised"], f["implicit_reward_accuracy"]
        lines.append(
            f"  {run['name'][:24]:<24} {acc['before']['estimate']:.3f} -> {acc['after']['estimate']:.3f}{'':<12} {cell(acc['delta']):<27} "
            f"{cell(norm['delta']):<29} {reward['estimate']:.3f} [{reward['ci_low']:.3f}, {reward['ci_high']:.3f}]"
        )
    for diff in report["differences"]:
        a, b = diff["runs"]
        lines.append(f"  {a} - {b}: margin/token change {cell(diff['margin_per_token_change'])}, accuracy after {cell(diff['accuracy_after'])}")
    lines.append(f"  {report['statement']}")
    lines.append(f"  elapsed {report['elapsed_s']:.0f} s, peak RSS {report['peak_rss_mb']:.0f} MB; {output_dir / COMPARE_JSON}")
    click.echo("\n".join(lines), err=True)
    return EXIT_OK


@cli.command("serve-local")
@config_options
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 (default: a free one).")
@handle_errors
def serve_local(config_path: Path | None, overrides: tuple[str, ...], port: int | None) -> int:
    """Start the model file's local server (engine embedded or vllm) in the foreground (Ctrl-C stops it)."""
    import time

    from generation.endpoints.embedded import EmbeddedServer
    from generation.endpoints.process import LocalServer
    from generation.endpoints.vllm_server import VllmServer

    cfg = _load(config_path, overrides)
    backend = cfg.backend
    update = {"port": port} if port else {}
    server: LocalServer
    if backend.engine == "embedded" and backend.embedded is not None:
        server = EmbeddedServer(backend.embedded.model_copy(update=update), backend.model)
    elif backend.engine == "vllm" and backend.vllm is not None:
        server = VllmServer(backend.vllm.model_copy(update=update), backend.model)
    else:
        raise SynthgenError(f"backend.engine is {backend.engine!r}; serve-local serves the embedded and vllm engines")
    with server:
        click.echo(f"serving {backend.model} at {server.base_url} (OpenAI chat API); Ctrl-C to stop")
        while server.alive():
            time.sleep(0.5)
    raise SynthgenError(f"the {server.label} exited")


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


def _load_for_run_folder(config_path: Path | None, overrides: tuple[str, ...], output_dir: Path) -> RunConfig:
    """``-c`` if given, else the effective config the run saved in its folder."""
    if config_path is not None:
        return _load(config_path, overrides)
    saved = output_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{saved}: no saved config in the run folder; pass -c CONFIG")
    return load_saved_config(saved, overrides)


@cli.command()
@config_options
@output_option
@click.option("--shards", type=click.IntRange(1), default=None, help="Number of array tasks (default: execution.shards).")
@click.option("--wait", "wait_for_jobs", is_flag=True, help="Block, show progress per shard, exit non-zero if a job failed.")
@force_option
@handle_errors
def submit(config_path: Path | None, overrides: tuple[str, ...], output_dir: Path | None, shards: int | None, wait_for_jobs: bool) -> int:
    """Submit the run to Slurm: a Submitit array of shard tasks, then a gather job (afterok). The shortcut for
    `synthgen run --executor slurm` without waiting (unless --wait).

    Submitting again into the same folder resubmits only the shards without a completion marker.
    """
    from generation.executors.slurm import SlurmExecutor
    from generation.pipeline import output_dir_for, plan_run

    extra = (f"execution.shards={shards}",) if shards else ()
    cfg = _load(config_path, (*overrides, *extra))
    out_dir = output_dir_for(cfg, output_dir).resolve()
    command = _command_line("-c", config_path, "-o", out_dir, overrides=(*overrides, *extra))
    force = bool(click.get_current_context().meta.get("force"))
    plan = plan_run(cfg, out_dir, ("questions", "responses"), None, force)
    return EXIT_OK if _submit_and_follow(SlurmExecutor(cfg, out_dir, command), plan, wait_for_jobs) else EXIT_FAILURE


@cli.command()
@config_options
@click.option("-o", "--output-dir", type=click.Path(path_type=Path, file_okay=False), required=True, help="The run folder.")
@handle_errors
def gather(config_path: Path | None, overrides: tuple[str, ...], output_dir: Path) -> int:
    """Merge complete shards into the published files; refuses while a shard is incomplete (any run folder, local or
    Slurm; refused while a local run works in it)."""
    from generation.executors.base import read_plan
    from generation.executors.local import LocalExecutor

    cfg = _load_for_run_folder(config_path, overrides, output_dir)
    plan, _ = read_plan(output_dir, cfg if config_path is not None else None)
    summary = LocalExecutor(cfg, output_dir).gather(plan)
    _print_summary(summary, output_dir)
    return EXIT_OK


@cli.command()
@click.option("-o", "--output-dir", type=click.Path(path_type=Path, file_okay=False), required=True, help="The run folder.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status(output_dir: Path, as_json: bool) -> int:
    """Which shards of a run are done, partial, running, failed or pending, and the gather (local or Slurm runs)."""
    from generation.executors.base import run_status

    report = run_status(output_dir)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else "\n".join(report.lines()))
    return EXIT_OK


# Commands defined in their own modules register here, one line each (keeps this file thin).
# (evaluation commands)
from generation import cli_evaluate  # noqa: E402,F401 - registers evaluate, review export/import, feedback import
# (domain commands)
from generation import cli_domains  # noqa: E402,F401 - registers mine-modifications and modifications


def main() -> None:
    cli(prog_name="synthgen")


if __name__ == "__main__":
    main()
