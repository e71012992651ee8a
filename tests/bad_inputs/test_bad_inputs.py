"""Malformed inputs through the real CLI: each is exit status 2, one line on stderr naming the file,
key or row, and nothing published (no run folder is even created)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import REPO, synthgen, tiny_config


def one_line_error(stderr: str) -> str:
    """The error: exactly one "synthgen: error:" line, the last one, and no traceback (progress logs may precede it)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("synthgen: error: ")]
    assert len(errors) == 1 and stderr.rstrip().splitlines()[-1] == errors[0], stderr
    return errors[0]

BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
name: bomb
"""


def dataset_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


# name -> (how to build the run's arguments, expected fragment of the one-line error)
def case_missing_column(tmp_path, url):
    data = dataset_file(tmp_path, "q.csv", b"text\nwhat causes gout\n")
    return ["run", "-c", str(tiny_config(tmp_path, url, dataset={"data_files": str(data)}))], [str(data), "no column 'question'", "['text']"]


def case_misnamed_column(tmp_path, url):
    data = dataset_file(tmp_path, "q.csv", b"Question\nwhat causes gout\n")
    return ["run", "-c", str(tiny_config(tmp_path, url, dataset={"data_files": str(data)}))], ["no column 'question' (dataset.column)", "['Question']"]


def case_empty_dataset(tmp_path, url):
    data = dataset_file(tmp_path, "q.csv", b"question\n")
    return ["run", "-c", str(tiny_config(tmp_path, url, dataset={"data_files": str(data)}))], [str(data), "empty"]


def case_only_blank_questions(tmp_path, url):
    data = dataset_file(tmp_path, "q.csv", b'question\n"   "\n"?!"\n')
    return ["run", "-c", str(tiny_config(tmp_path, url, dataset={"data_files": str(data)}))], ["no questions left after preprocessing"]


def case_non_utf8(tmp_path, url):
    data = dataset_file(tmp_path, "q.csv", "question\nwhat is a caf\u00e9 au lait spot\n".encode("latin-1"))
    return ["run", "-c", str(tiny_config(tmp_path, url, dataset={"data_files": str(data)}))], [str(data), "not valid UTF-8", "byte 22"]


def case_binary_junk(tmp_path, url):
    junk = bytes(range(256)) * 64  # NULs, control bytes and invalid UTF-8
    data = dataset_file(tmp_path, "q.csv", junk)
    return ["run", "-c", str(tiny_config(tmp_path, url, dataset={"data_files": str(data)}))], [str(data), "not valid UTF-8"]


def case_one_megabyte_question(tmp_path, url):
    data = dataset_file(tmp_path, "q.csv", b"question\nwhat causes gout\n" + b"why " * 262_144 + b"\n")
    return ["run", "-c", str(tiny_config(tmp_path, url, dataset={"data_files": str(data)}))], [
        str(data), "row 1: question is 1048576 characters, more than dataset.max_question_chars=2000"
    ]


def case_one_megabyte_question_for_responses(tmp_path, url):
    data = dataset_file(tmp_path, "mine.csv", b"question\n" + b"a" * 1_048_576 + b"\n")
    return ["responses", "-c", str(tiny_config(tmp_path, url)), "--questions", str(data)], [str(data), "row 0: question is 1048576 characters"]


def case_questions_file_without_question_column(tmp_path, url):
    data = dataset_file(tmp_path, "mine.csv", b"prompt\nwhat causes gout?\n")
    return ["responses", "-c", str(tiny_config(tmp_path, url)), "--questions", str(data)], [str(data), "missing column(s) ['question']"]


def case_yaml_bomb(tmp_path, url):
    config = dataset_file(tmp_path, "bomb.yaml", BOMB.encode())
    return ["run", "-c", str(config)], [str(config), "YAML aliases are not allowed"]


def case_deeply_nested_yaml(tmp_path, url):
    config = dataset_file(tmp_path, "deep.yaml", b"name: deep\nx: " + b"[" * 200_000 + b"]" * 200_000 + b"\n")
    return ["run", "-c", str(config)], [str(config), "nested too deeply"]


def case_huge_config(tmp_path, url):
    config = dataset_file(tmp_path, "huge.yaml", b"name: huge\n" + b"# padding\n" * 120_000)
    return ["run", "-c", str(config)], [str(config), "larger than 1000000 bytes"]


def case_unknown_key_in_config_file(tmp_path, url):
    config = tiny_config(tmp_path, url, questions={"targett": 5})
    return ["run", "-c", str(config)], [f"{config}: questions.targett: unknown key"]


def case_unknown_key_in_model_file(tmp_path, url):
    model = dataset_file(tmp_path, "typo-model.yaml", f"backend: {{engine: endpoint, model: m, base_url: '{url}', max_concurency: 4}}\n".encode())
    config = tiny_config(tmp_path, None, model=str(model))
    return ["run", "-c", str(config)], [f"{model}: backend.max_concurency: unknown key"]


def case_model_file_naming_no_model(tmp_path, url):
    model = dataset_file(tmp_path, "no-model.yaml", f"backend: {{engine: endpoint, base_url: '{url}'}}\n".encode())
    config = tiny_config(tmp_path, None, model=str(model))
    return ["run", "-c", str(config)], ["backend.model: required key is missing"]


def case_model_file_with_empty_model(tmp_path, url):
    model = dataset_file(tmp_path, "empty-model.yaml", f"backend: {{engine: endpoint, model: '', base_url: '{url}'}}\n".encode())
    config = tiny_config(tmp_path, None, model=str(model))
    return ["run", "-c", str(config)], [f"{model}: backend.model: String should have at least 1 character"]


def case_config_that_is_not_utf8(tmp_path, url):
    config = dataset_file(tmp_path, "latin.yaml", "name: caf\u00e9\n".encode("latin-1"))
    return ["run", "-c", str(config)], [str(config), "not UTF-8 text"]


CASES = {name.removeprefix("case_"): func for name, func in sorted(globals().items()) if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_publishes_nothing(case: str, tmp_path: Path, dead_url: str):
    args, fragments = CASES[case](tmp_path, dead_url)
    out = tmp_path / "run"
    result = synthgen(*args, "-o", str(out), timeout=120)
    assert result.returncode == 2, result.stderr
    line = one_line_error(result.stderr)
    for fragment in fragments:
        assert fragment in line, line
    assert len(line) < 600, "the message repeats the input instead of naming it"
    assert not out.exists(), f"{case}: something was written to the run folder: {sorted(os.listdir(out))}"


def test_bad_input_into_an_existing_run_folder_leaves_it_unchanged(tmp_path: Path, dead_url: str):
    """A published folder stays byte-identical when a later command with bad input names it."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "questions_and_responses.csv").write_text("prompt,chosen,rejected\nq?,a.,b.\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    data = dataset_file(tmp_path, "q.csv", b"question\n")
    result = synthgen("run", "-c", str(tiny_config(tmp_path, dead_url, dataset={"data_files": str(data)})), "-o", str(out))
    assert result.returncode == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert REPO.is_dir()
