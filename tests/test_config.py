import textwrap
from pathlib import Path

import pytest

from generation.config import BUNDLED_CONFIGS, load_config, parse_overrides
from generation.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    """A config folder with its own domain pack and model file (found beside the run config)."""
    write(tmp_path / "domains/demo.yaml", """
        modifications: [asks about costs]
        prompts:
          modify_question: {user: "Q: {question} M: {modification}"}
          chosen: {user: "Answer {question}"}
          rejected: {user: "Wrongly answer {question}"}
        questions: {target: 10, max_attempts: 7}
        responses: {max_words: 50}
    """)
    write(tmp_path / "models/demo-model.yaml", """
        backend: {engine: endpoint, model: demo, base_url: "http://127.0.0.1:9/v1"}
        questions: {target: 20}
        responses: {max_words: 60}
    """)
    return write(tmp_path / "run.yaml", """
        name: layered
        domain: demo
        model: demo-model
        dataset: {data_files: data/q.csv}
        questions: {target: 30, seed_questions: 5}
    """)


def test_default_config_loads():
    cfg = load_config()
    assert cfg.name == "default"
    assert cfg.backend.engine == "embedded" and cfg.backend.embedded is not None
    assert len(cfg.modifications) >= 10
    for focus in ("key medical term", "common treatments", "daily life", "usual symptoms", "not treated", "prevent"):
        assert any(focus in m for m in cfg.modifications), focus
    assert cfg.fallback.enabled is False
    assert Path(cfg.dataset.data_files).is_file()


def test_every_shipped_config_and_model_file_is_valid():
    for run_config in BUNDLED_CONFIGS.glob("*.yaml"):
        load_config(run_config)
    for model_file in (BUNDLED_CONFIGS / "models").glob("*.yaml"):
        cfg = load_config(None, [f"model={model_file}"])
        assert cfg.backend.model


def test_layer_precedence(layered: Path):
    cfg = load_config(layered, ["questions.target=40"])
    assert cfg.questions.target == 40  # --set beats the run config
    assert load_config(layered).questions.target == 30  # run config beats model file and domain
    assert cfg.responses.max_words == 60  # model file beats domain pack
    assert cfg.questions.max_attempts == 7  # domain pack fills what nobody else sets
    assert cfg.backend.model == "demo"
    assert cfg.dataset.data_files == str(layered.parent / "data/q.csv")  # relative to the declaring file


def test_unknown_key_names_file_and_key(layered: Path):
    with pytest.raises(ConfigError) as err:
        load_config(layered, ["questions.targett=3"])
    assert str(err.value) == "--set: questions.targett: unknown key"
    write(layered.parent / "domains/demo.yaml", (layered.parent / "domains/demo.yaml").read_text() + "bogus: 1\n")
    with pytest.raises(ConfigError, match=r"domains/demo.yaml: bogus: unknown key"):
        load_config(layered)


def test_wrong_type_names_file_and_key(layered: Path):
    text = layered.read_text().replace("target: 30", "target: lots")
    layered.write_text(text)
    with pytest.raises(ConfigError, match=r"run.yaml: questions.target: Input should be a valid integer"):
        load_config(layered)


def test_missing_files(tmp_path: Path, layered: Path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="no domain named 'atlantis'"):
        load_config(layered, ["domain=atlantis"])


def test_model_file_without_model(layered: Path):
    write(layered.parent / "models/empty.yaml", "backend: {engine: endpoint, base_url: 'http://127.0.0.1:9/v1'}\n")
    with pytest.raises(ConfigError, match=r"models/empty.yaml: backend.model: required key is missing"):
        load_config(layered, ["model=empty"])


def test_yaml_aliases_are_refused(tmp_path: Path):
    bomb = write(tmp_path / "bomb.yaml", """
        a: &a ["x", "x", "x"]
        b: &b [*a, *a, *a]
        c: [*b, *b, *b]
    """)
    with pytest.raises(ConfigError, match="bomb.yaml: invalid YAML .*aliases are not allowed"):
        load_config(bomb)


def test_not_a_mapping_and_bad_yaml(tmp_path: Path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path / "list.yaml", "- a\n- b\n"))
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML \(line 2\)"):
        load_config(write(tmp_path / "broken.yaml", "a: [1\nb: 2\n"))


def test_template_placeholders_are_checked(layered: Path):
    with pytest.raises(ConfigError, match=r"prompts.chosen.user: unknown placeholder\(s\) \['answer'\]"):
        load_config(layered, ["prompts.chosen.user=Answer {question} with {answer}"])


def test_invalid_regex_is_a_config_error(layered: Path):
    with pytest.raises(ConfigError, match=r"responses.self_correction_patterns: .*invalid regular expression"):
        load_config(layered, ["responses.self_correction_patterns=['(unclosed']"])


def test_fallback_enabled_needs_a_model_file(layered: Path):
    with pytest.raises(ConfigError, match="fallback is enabled but names no model file"):
        load_config(layered, ["fallback.enabled=true"])
    cfg = load_config(layered, ["fallback.enabled=true", "fallback.model=openai-gpt-4o-mini"])
    assert cfg.fallback.backend.model == "gpt-4o-mini"
    assert cfg.fallback.backend.api_key_env == "OPENAI_API_KEY"


def test_parse_overrides():
    assert parse_overrides(["a.b=1", "a.c=x y", "d=[1, 2]", "e=null"]) == {"a": {"b": 1, "c": "x y"}, "d": [1, 2], "e": None}
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        parse_overrides(["novalue"])
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        parse_overrides(["a..b=1"])
