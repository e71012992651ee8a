"""Domain packs: resolution by name or path, seed samples, reviewed modification lists, new domains end to end."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import MODEL_ALIAS, REPO, synthgen
from generation.config import BUNDLED_CONFIGS, load_config, load_saved_config
from generation.domains import load_domain_pack, select_modifications
from generation.errors import ConfigError

SHIPPED = ("healthcare", "law", "finance", "engineering")
PROMPTS = """
prompts:
  modify_question: {user: "Rewrite <question>{question}</question> so that it {modification}. Reply with one question."}
  chosen: {user: "Answer correctly in one sentence: <question>{question}</question>"}
  rejected: {user: "Answer incorrectly but plausibly in one sentence: <question>{question}</question>"}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def sample_questions(name: str) -> list[str]:
    return [row["question"] for row in read_csv(BUNDLED_CONFIGS / "samples" / f"{name}.csv")]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pack_uses_its_own_sample(name: str):
    cfg = load_config(None, [f"domain={name}"])  # configs/default.yaml names no dataset
    pack = load_domain_pack(name)
    assert cfg.domain == name
    assert pack.sample == BUNDLED_CONFIGS / "samples" / f"{name}.csv"
    assert cfg.dataset.path == "csv" and cfg.dataset.data_files == str(pack.sample)
    questions = sample_questions(name)
    assert len(questions) >= 48 and len(set(questions)) == len(questions)
    assert all(q.strip() for q in questions)
    assert len(cfg.modifications) >= 12 and len(set(cfg.modifications)) == len(cfg.modifications)
    # the prompts are the pack's own, not another domain's
    word = {"healthcare": "health", "law": "legal", "finance": "finance", "engineering": "engineering"}[name]
    for template in (cfg.prompts.modify_question, cfg.prompts.chosen, cfg.prompts.rejected):
        assert word in (template.system or "").lower() + template.user.lower()
    if name != "healthcare":
        assert "medical" not in cfg.prompts.chosen.system.lower()


def test_domain_modification_lists_fit_the_domain():
    law = " ".join(load_config(None, ["domain=law"]).modifications)
    for focus in ("jurisdiction", "statute of limitations", "documents"):
        assert focus in law
    finance = " ".join(load_config(None, ["domain=finance"]).modifications)
    for focus in ("tax implications", "risks", "regulations"):
        assert focus in finance
    engineering = " ".join(load_config(None, ["domain=engineering"]).modifications)
    for focus in ("codes or standards", "safety factor", "failure modes"):
        assert focus in engineering


def test_strict_domains_require_the_judge_gate():
    for name, strict in (("law", True), ("finance", True), ("engineering", False), ("healthcare", False)):
        cfg = load_config(None, [f"domain={name}"])
        assert cfg.evaluation.gate.require_chosen_correct is strict, name
    assert load_config(None, ["domain=law"]).evaluation.judge.rubric is not None


def test_run_config_dataset_beats_the_pack_sample():
    cfg = load_config(BUNDLED_CONFIGS / "healthsearchqa.yaml", ["domain=law"])
    assert cfg.dataset.path == "katielink/healthsearchqa"
    assert cfg.modifications == load_config(None, ["domain=law"]).modifications
    own = load_config(None, ["domain=law", "dataset.data_files=configs/samples/finance.csv"])
    assert own.dataset.data_files == str(REPO / "configs/samples/finance.csv")


def new_pack(folder: Path, sample_name: str = "questions.csv") -> Path:
    """A never-seen domain: a YAML pack plus a sample, nothing else."""
    write(folder / sample_name, "question\nhow do i repot a cactus\nwhen should i water succulents\nwhy are my tomato leaves yellow\n"
          "how much sun does basil need\nwhat soil is best for roses\n")  # fmt: skip
    return write(folder / "gardening.yaml", f"""
        sample: {sample_name}
        modifications:
          - asks about the best season for this gardening task
          - asks which tools are needed for this gardening task
        {textwrap.indent(PROMPTS, "        ").strip()}
        questions:
          filters: {{min_words: 3, max_words: 30}}
        responses: {{min_words: 2}}
    """)


def test_pack_by_path_from_config_and_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pack = new_pack(tmp_path / "packs")
    run = write(tmp_path / "runs/run.yaml", "name: garden\ndomain: ../packs/gardening.yaml\n")
    cfg = load_config(run)  # relative to the run config
    assert cfg.domain == str(pack) and cfg.dataset.data_files == str(tmp_path / "packs/questions.csv")
    assert cfg.modifications[0] == "asks about the best season for this gardening task"
    monkeypatch.chdir(tmp_path)
    assert load_config(None, ["domain=packs/gardening.yaml"]).domain == str(pack)  # --set: relative to the cwd
    with pytest.raises(ConfigError, match="domain pack file not found: packs/nope.yaml"):
        load_config(None, ["domain=packs/nope.yaml"])
    with pytest.raises(ConfigError, match=r"no domain named 'atlantis'.*known: engineering, finance, healthcare, law"):
        load_config(None, ["domain=atlantis"])


BEES = """
name: beekeeping
description: beekeeping and hive health
modifications:
  - asks about the season when this hive task is best done
  - asks which protective equipment a beekeeper needs for this task
  - asks how this affects the health of the colony
sample: bees.csv
"""
BEE_QUESTIONS = ["how do i treat varroa mites in my hives", "when should i add a super to a hive", "why are my bees swarming",
                 "how much honey should i leave for winter", "how do i find the queen in a hive", "what causes chalkbrood"]  # fmt: skip


def bee_pack(folder: Path, text: str = BEES) -> Path:
    """A made-up domain none of the shipped packs covers, in the smallest form: name, description,
    modifications and a sample; everything else comes from the base pack."""
    write(folder / "bees.csv", "question\n" + "\n".join(BEE_QUESTIONS) + "\n")
    return write(folder / "beekeeping.yaml", text)


def test_a_four_key_pack_gets_everything_else_from_the_base_pack(tmp_path: Path):
    pack = bee_pack(tmp_path)
    assert len(pack.read_text().strip().splitlines()) <= 10
    cfg = load_config(None, [f"domain={pack}"])
    assert cfg.domain_pack.name == "beekeeping" and cfg.domain_pack.description == "beekeeping and hive health"
    default = load_config(None)
    assert (cfg.name, cfg.description) == (default.name, default.description)  # the run's own, not the pack's
    for template in (cfg.prompts.modify_question, cfg.prompts.chosen, cfg.prompts.rejected):
        assert "beekeeping and hive health" in template.system and "{domain}" not in template.system + template.user
        for other in ("health question", "legal", "medical", "finance", "engineering"):
            assert other not in (template.system + template.user).lower(), other
    assert "beekeeping and hive health" in cfg.evaluation.judge.rubric.system
    assert "{question}" in cfg.evaluation.judge.rubric.truthfulness  # the scoring templates: configs/eval/defaults.yaml
    assert cfg.questions.filters.preamble_patterns and cfg.responses.self_correction_patterns
    assert cfg.dataset.data_files == str(tmp_path / "bees.csv") and cfg.modifications[0].startswith("asks about the season")
    # no description: {domain} is the pack's name
    unnamed = bee_pack(tmp_path / "b", BEES.replace("name: beekeeping\ndescription: beekeeping and hive health\n", ""))
    plain = load_config(None, [f"domain={unnamed}"])
    assert plain.domain_pack.model_dump() == {"name": "beekeeping", "description": None}
    assert "questions about beekeeping that" in plain.prompts.modify_question.system


def test_any_base_key_can_be_overridden_by_the_pack_the_run_config_or_set(tmp_path: Path):
    pack = bee_pack(tmp_path, BEES + "prompts:\n  chosen:\n    system: You keep bees for a living; answer about {domain}.\n")
    cfg = load_config(None, [f"domain={pack}", "questions.filters.max_words=25"])
    assert cfg.prompts.chosen.system == "You keep bees for a living; answer about beekeeping and hive health."
    assert cfg.prompts.chosen.user.startswith("Answer this question about beekeeping and hive health")  # still the base's
    assert cfg.questions.filters.max_words == 25
    run = write(tmp_path / "run.yaml", "name: bees-run\ndescription: my run\ndomain: beekeeping.yaml\n"
                "prompts: {rejected: {system: 'Be wrong about {domain}.'}}\n")  # fmt: skip
    over = load_config(run)
    assert over.prompts.rejected.system == "Be wrong about beekeeping and hive health."
    assert (over.name, over.description, over.domain_pack.name) == ("bees-run", "my run", "beekeeping")


def test_inline_sample_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SYNTHGEN_CACHE_DIR", str(tmp_path / "cache"))
    inline = "sample:\n" + "".join(f"  - {q}\n" for q in BEE_QUESTIONS)
    pack = write(tmp_path / "inline.yaml", BEES.replace("sample: bees.csv\n", inline))
    cfg = load_config(None, [f"domain={pack}"])
    sample = Path(cfg.dataset.data_files)
    assert sample.parent == tmp_path / "cache" / "samples" and [r["question"] for r in read_csv(sample)] == BEE_QUESTIONS
    assert load_config(None, [f"domain={pack}"]).dataset.data_files == str(sample)  # same questions, same file
    for bad, message in (("sample: []\n", r"inline.yaml: sample: the list of sample questions is empty"),
                         ("sample: ['ok?', '']\n", r"inline.yaml: sample\[1\]: must be a non-empty question")):  # fmt: skip
        write(pack, BEES.replace("sample: bees.csv\n", bad))
        with pytest.raises(ConfigError, match=message):
            load_config(None, [f"domain={pack}"])


def test_pack_metadata_is_not_in_the_shard_fingerprint(tmp_path: Path):
    from generation.shards import STAGES, config_fingerprint

    pack = bee_pack(tmp_path)
    base = config_fingerprint(load_config(None, [f"domain={pack}"]), STAGES)
    write(pack, BEES.replace("name: beekeeping", "name: apiculture"))
    assert config_fingerprint(load_config(None, [f"domain={pack}"]), STAGES) == base  # metadata only
    # ... but a description that fills the base prompts changes what is generated, so the fingerprint
    write(pack, BEES.replace("beekeeping and hive health", "urban beekeeping"))
    assert config_fingerprint(load_config(None, [f"domain={pack}"]), STAGES) != base


def test_errors_of_a_minimal_pack_name_the_pack_and_the_key(tmp_path: Path):
    pack = bee_pack(tmp_path, "name: beekeeping\nsample: bees.csv\n")
    with pytest.raises(ConfigError, match=rf"^{pack}: modifications: required key is missing$"):
        load_config(None, [f"domain={pack}"])
    write(pack, BEES.replace("description: beekeeping and hive health", "description: [a, b]"))
    with pytest.raises(ConfigError, match=rf"^{pack}: description: must be a non-empty text$"):
        load_config(None, [f"domain={pack}"])
    write(pack, BEES + "prompts: {chosen: {user: 'no placeholder'}}\n")
    with pytest.raises(ConfigError, match=rf"^{pack}: prompts: prompts.chosen.user: must contain {{question}}$"):
        load_config(None, [f"domain={pack}"])
    write(pack, BEES + "questions: {filters: {max_words: many}}\n")
    with pytest.raises(ConfigError, match=rf"^{pack}: questions.filters.max_words: "):
        load_config(None, [f"domain={pack}"])
    with pytest.raises(ConfigError, match=r"no domain named '_base'"):
        load_config(None, ["domain=_base"])  # the base pack is not a domain


def test_no_prompt_filter_or_rubric_block_is_repeated_across_the_shipped_packs():
    """A text or list the packs share belongs in the base pack, written once; a pack that only repeats the
    base is a copy that drifts."""
    from generation.domains import BASE_PACK, known_domains

    def blocks(node: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
        if isinstance(node, dict):
            return [b for key, value in node.items() for b in blocks(value, (*path, str(key)))]
        if isinstance(node, list) and path and path[0] != "modifications":
            return [(path, json.dumps(node))]
        if isinstance(node, str) and len(node) > 40:  # texts: prompts, rubric templates, single patterns
            return [(path, node)]
        return []

    checked = ("prompts", "questions", "responses", "evaluation", "mining")
    files = {name: yaml.safe_load((BUNDLED_CONFIGS / "domains" / f"{name}.yaml").read_text()) for name in (*known_domains(), BASE_PACK)}
    assert set(SHIPPED) <= set(files)
    seen: dict[str, str] = {}
    for name, data in files.items():
        for path, text in blocks({k: v for k, v in data.items() if k in checked}):
            where = f"{name}: {'.'.join(path)}"
            assert text not in seen, f"{where} repeats {seen[text]} verbatim"
            seen[text] = where


def test_pack_errors_name_the_file_and_key(tmp_path: Path):
    pack = new_pack(tmp_path)
    pack.write_text(pack.read_text().replace("sample: questions.csv", "sample: missing.csv"))
    with pytest.raises(ConfigError, match=r"gardening.yaml: sample: file not found"):
        load_config(None, [f"domain={pack}"])
    pack.write_text(pack.read_text().replace("sample: missing.csv", "sample: questions.csv\nmodel: x"))
    with pytest.raises(ConfigError, match=r"gardening.yaml: model: not allowed in a domain file"):
        load_config(None, [f"domain={pack}"])


REVIEWED = """
modifications:
  - text: asks about the deadline for this claim
    status: approved
    reviewer: J. Doe
    note: common in the sample
    evidence: {source: nlp, count: 6, questions: [when is the deadline]}
  - text: asks about the weather
    status: rejected
    reviewer: J. Doe
    note: off topic
  - text: asks who pays the court fees
    status: proposed
    reviewer: null
    note: null
"""


def test_reviewed_list_runs_approved_entries_only(tmp_path: Path):
    pack = new_pack(tmp_path)
    write(tmp_path / "review/law-mods.yaml", REVIEWED)
    text = pack.read_text()
    start, end = text.index("modifications:"), text.index("prompts:")
    pack.write_text(text[:start] + "modifications: review/law-mods.yaml\n" + text[end:])  # a path, relative to the pack
    cfg = load_config(None, [f"domain={pack}"])
    assert cfg.modifications == ["asks about the deadline for this claim"]
    both = load_config(None, [f"domain={pack}", "modifications_include=[approved,proposed]"])
    assert both.modifications == ["asks about the deadline for this claim", "asks who pays the court fees"]
    # the saved effective config holds the plain list the run used and reloads as is
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(both.public_dict()))
    assert load_saved_config(saved).modifications == both.modifications
    # inline reviewed entries mixed with plain strings (plain strings are hand-written: approved)
    entries = yaml.safe_load(REVIEWED)["modifications"] + ["asks about costs"]
    assert select_modifications(entries, ["approved"], "x") == ["asks about the deadline for this claim", "asks about costs"]


def test_reviewed_list_errors(tmp_path: Path):
    nothing_approved = [{"text": "asks a", "status": "proposed"}, {"text": "asks b", "status": "rejected"}]
    with pytest.raises(ConfigError, match=r"pack.yaml: modifications: no entry with status approved \(1 proposed, 0 approved, 1 rejected\)"):
        select_modifications(nothing_approved, ["approved"], "pack.yaml")
    with pytest.raises(ConfigError, match=r"pack.yaml: modifications\[1\].status: must be one of proposed, approved, rejected, got 'maybe'"):
        select_modifications(["asks a", {"text": "asks b", "status": "maybe"}], ["approved"], "pack.yaml")
    with pytest.raises(ConfigError, match=r"modifications\[0\].txt: unknown key"):
        select_modifications([{"txt": "asks a", "status": "approved"}], ["approved"], "pack.yaml")
    with pytest.raises(ConfigError, match=r"modifications\[0\].text: required non-empty string"):
        select_modifications([{"text": " ", "status": "approved"}], ["approved"], "pack.yaml")
    pack = new_pack(tmp_path)
    with pytest.raises(ConfigError, match=r"--set: modifications: no entry with status approved"):
        load_config(None, [f"domain={pack}", 'modifications=[{text: "asks a", status: proposed}]'])


def test_cli_domain_option(tmp_path: Path):
    result = synthgen("config", "show", "--domain", "finance", "--format", "json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["domain"] == "finance" and shown["dataset"]["data_files"].endswith("configs/samples/finance.csv")
    assert shown["evaluation"]["gate"]["require_chosen_correct"] is True
    dry = synthgen("run", "--domain", "law", "--dry-run", "--set", "questions.seed_questions=null", "--set", "questions.target=80")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["seeds_used"] == len(set(q.lower().strip() for q in sample_questions("law")))
    bad = synthgen("questions", "--domain", "atlantis")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no domain named 'atlantis'" in bad.stderr


def tiny_domain_config(tmp_path: Path, base_url: str, **questions: int) -> Path:
    """A tiny run config that names no dataset (so the pack's sample is used)."""
    config = {
        "name": "tiny-domain",
        "seed": 3,
        "model": "smollm2-embedded",
        "backend": {"engine": "endpoint", "base_url": base_url, "model": MODEL_ALIAS},
        "questions": {"seed_questions": 2, "target": 4, "max_attempts": 2, "sampling": {"max_tokens": 40}, **questions},
        "responses": {"max_attempts": 2, "max_words": 40, "sampling": {"max_tokens": 40}},
        "retry": {"max_retries": 2, "backoff_initial_s": 0.1, "backoff_max_s": 0.5},
    }
    path = tmp_path / "tiny-domain.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def check_domain_run(out: Path, sample: list[str], modifications: list[str]) -> None:
    questions = read_csv(out / "questions.csv")
    normalised = {" ".join(q.lower().replace("?", "").split()) for q in sample}
    seeds = [row for row in questions if row["origin"] == "seed"]
    assert seeds and all(row["question"] in normalised for row in seeds), "seeds must come from the pack's sample"
    for row in questions:
        if row["origin"] == "synthetic":
            assert row["modification"] in modifications
    pairs = read_csv(out / "questions_and_responses.csv")
    assert pairs and {p["prompt"] for p in pairs} <= {q["question"] for q in questions}
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "completed"


@pytest.mark.model
def test_never_seen_domain_runs_end_to_end(model_server: str, tmp_path: Path):
    """A made-up domain from a pack of four keys, on the real model; the run folder, the card and the
    evaluation say which domain and description were used."""
    pack = bee_pack(tmp_path / "beekeeping")
    config = tiny_domain_config(tmp_path, model_server)
    out = tmp_path / "out"
    result = synthgen("run", "-c", str(config), "--domain", str(pack), "-o", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["domain"] == str(pack.resolve())
    assert cfg["domain_pack"] == {"name": "beekeeping", "description": "beekeeping and hive health"}
    assert cfg["name"] == "tiny-domain" and "beekeeping" in cfg["prompts"]["chosen"]["system"]
    check_domain_run(out, BEE_QUESTIONS, cfg["modifications"])
    assert cfg["modifications"] == yaml.safe_load(BEES)["modifications"]
    card = (out / "README.md").read_text()
    assert "--domain" in card and "(beekeeping and hive health)" in card and "- beekeeping" in card  # text and tags
    evaluation = json.loads((out / "eval" / "summary.json").read_text())
    assert evaluation["domain"] == {"pack": str(pack.resolve()), "name": "beekeeping", "description": "beekeeping and hive health"}
    assert "beekeeping and hive health" in (out / "eval" / "report.html").read_text()
    # continuous learning from this run's own evaluation (eval/scores.csv written at the end of the run)
    stats = tmp_path / "stats.json"
    learned = synthgen("modifications", "stats", str(stats), "--add", str(out), "--json")
    assert learned.returncode == 0, learned.stderr
    synthetic = [row for row in read_csv(out / "questions.csv") if row["origin"] == "synthetic"]
    pairs = {p["prompt"] for p in read_csv(out / "questions_and_responses.csv")}
    counted = json.loads(learned.stdout)["modifications"]
    assert sum(m["pairs"] for m in counted.values()) == sum(1 for row in synthetic if row["question"] in pairs)
    assert set(counted) <= set(cfg["modifications"])


@pytest.mark.model
@pytest.mark.parametrize("name", ["law", "finance", "engineering"])
def test_shipped_domain_runs_end_to_end(model_server: str, tmp_path: Path, name: str):
    config = tiny_domain_config(tmp_path, model_server, seed_questions=2, target=3)
    out = tmp_path / name
    result = synthgen("run", "-c", str(config), "--domain", name, "-o", str(out))
    assert result.returncode == 0, result.stderr
    check_domain_run(out, sample_questions(name), load_config(None, [f"domain={name}"]).modifications)
    assert yaml.safe_load((out / "config.yaml").read_text())["domain"] == name


def test_domain_init_writes_a_minimal_pack_and_its_proposed_modifications(tmp_path: Path):
    sample = write(tmp_path / "data" / "bees.csv", "question\n" + "\n".join(BEE_QUESTIONS) + "\nis a healthy hive noisy\nwhy is my hive healthy\n")
    work = tmp_path / "work"
    work.mkdir()
    args = ("domain", "init", "beekeeping", "--sample", str(sample), "--description", "beekeeping and hive health")
    result = synthgen(*args, cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "--domain ./beekeeping.yaml\n"
    pack, review = work / "beekeeping.yaml", work / "beekeeping-modifications.yaml"
    assert {p.name for p in work.iterdir()} == {pack.name, review.name}
    assert len(pack.read_text().strip().splitlines()) <= 10
    data = yaml.safe_load(pack.read_text())
    assert data == {"name": "beekeeping", "description": "beekeeping and hive health", "sample": str(sample), "modifications": review.name}
    entries = yaml.safe_load(review.read_text())["modifications"]
    assert entries and all(e["status"] == "proposed" and e["reviewer"] is None for e in entries)
    texts = [e["text"] for e in entries]
    assert sum("hive" in t for t in texts) == 1 and not any("healthy" in t for t in texts), texts
    # nothing is approved yet: a run says so; the unreviewed list can be tried explicitly
    with pytest.raises(ConfigError, match=r"beekeeping-modifications.yaml: modifications: no entry with status approved"):
        load_config(None, [f"domain={pack}"])
    cfg = load_config(None, [f"domain={pack}", "modifications_include=[approved,proposed]"])
    assert cfg.modifications == texts and "beekeeping and hive health" in cfg.prompts.chosen.system
    # never overwrites: the pack or the review file already there is a one-line error, nothing changes
    before = {p.name: p.read_text() for p in (pack, review)}
    again = synthgen(*args, cwd=work)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    pack.unlink()
    assert synthgen(*args, cwd=work).returncode == 2 and not pack.exists() and review.read_text() == before[review.name]
    # a sample inside the working folder is written relative to the pack
    inside = work / "samples" / "bees.csv"
    inside.parent.mkdir()
    inside.write_text(sample.read_text())
    assert synthgen("domain", "init", "bees2", "--sample", "samples/bees.csv", cwd=work).returncode == 0
    assert yaml.safe_load((work / "bees2.yaml").read_text())["sample"] == "samples/bees.csv"
    assert load_config(None, [f"domain={work / 'bees2.yaml'}", "modifications_include=[proposed]"]).domain_pack.description == "bees2"


@pytest.mark.parametrize(
    ("args", "message"),
    [(["../escape", "--sample", "s.csv"], "NAME '../escape'"), (["x.yaml", "--sample", "s.csv"], "NAME 'x.yaml'"),
     (["ok", "--sample", "missing.csv"], "--sample: file not found: missing.csv"),
     (["ok", "--sample", "one.csv"], "need at least 2 distinct questions")],
)  # fmt: skip
def test_domain_init_bad_input_writes_nothing(tmp_path: Path, args: list[str], message: str):
    write(tmp_path / "s.csv", "question\nhow do i a\nhow do i b\n")
    write(tmp_path / "one.csv", "question\nhow do i a\n")
    before = set(tmp_path.iterdir())
    result = synthgen("domain", "init", *args, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert set(tmp_path.iterdir()) == before
