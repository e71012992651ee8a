"""CSV formula injection: verbatim by default (training data), spreadsheet-safe with publish.csv_formula_guard."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import synthgen, tiny_config
from faulty_endpoint import FaultyEndpoint
from generation.io import write_csv

FORMULAS = ["=HYPERLINK(\"http://example.invalid\",\"click\") is this safe?", "+1 more pill a day, is that ok?", "-2 degrees fever?",
            "@SUM(A1:A2) what is it?", "\tindented question?"]  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_writer_option(tmp_path: Path):
    rows = [{"text": value} for value in [*FORMULAS, "plain?", "a = b?", ""]]
    write_csv(tmp_path / "verbatim.csv", ["text"], rows)
    write_csv(tmp_path / "guarded.csv", ["text"], rows, formula_guard=True)
    assert [r["text"] for r in read_csv(tmp_path / "verbatim.csv")] == [r["text"] for r in rows]
    assert [r["text"] for r in read_csv(tmp_path / "guarded.csv")] == ["'" + v for v in FORMULAS] + ["plain?", "a = b?", ""]


def test_published_csvs_follow_the_config(tmp_path: Path):
    data = tmp_path / "seeds.csv"
    with open(data, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["question"], *[[q] for q in FORMULAS]])
    outs = {}
    with FaultyEndpoint(reply="What are the usual symptoms of a fever in adults?") as endpoint:
        for guard in (False, True):
            config = tiny_config(
                tmp_path, endpoint.base_url, name=f"guard-{guard}", dataset={"data_files": str(data)},
                preprocess={"steps": ["drop_empty"]}, questions={"seed_questions": 5, "target": 5},
                publish={"csv_formula_guard": guard},
            )  # fmt: skip
            outs[guard] = tmp_path / f"run-{guard}"
            result = synthgen("questions", "-c", str(config), "-o", str(outs[guard]))
            assert result.returncode == 0, result.stderr
    verbatim = sorted(q["question"] for q in read_csv(outs[False] / "questions.csv"))
    guarded = sorted(q["question"] for q in read_csv(outs[True] / "questions.csv"))
    assert verbatim == sorted(FORMULAS)
    assert guarded == sorted("'" + q for q in FORMULAS)
