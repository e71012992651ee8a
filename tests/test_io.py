import json
from pathlib import Path

import pytest

from generation.errors import InputDataError
from generation.io import read_csv_rows, write_csv, write_jsonl

TRICKY = [
    {"prompt": "does ibuprofen, or aspirin, thin blood", "chosen": 'He said "yes",\nthen "no".', "rejected": "Ünïcødé — ✓ 💊"},
    {"prompt": "line\r\nbreaks", "chosen": "=1+1", "rejected": "trailing space "},
]


def test_csv_round_trip_survives_commas_quotes_newlines_unicode(tmp_path: Path):
    path = tmp_path / "out.csv"
    assert write_csv(path, ["prompt", "chosen", "rejected"], TRICKY) == 2
    assert read_csv_rows(path, ["prompt", "chosen", "rejected"]) == TRICKY
    import datasets

    loaded = datasets.load_dataset("csv", data_files=str(path), split="train")
    assert loaded.column_names == ["prompt", "chosen", "rejected"]
    assert loaded.to_list() == TRICKY
    assert path.read_bytes().decode("utf-8")  # valid UTF-8
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left


def test_jsonl_loads_with_datasets(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    records = [{"prompt": [{"role": "user", "content": r["prompt"]}], "chosen": [{"role": "assistant", "content": r["chosen"]}]} for r in TRICKY]
    write_jsonl(path, records)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == records
    import datasets

    assert datasets.load_dataset("json", data_files=str(path), split="train").to_list() == records


def test_failed_write_keeps_the_previous_file(tmp_path: Path):
    path = tmp_path / "out.csv"
    write_csv(path, ["a"], [{"a": "old"}])

    def rows():
        yield {"a": "new"}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_csv(path, ["a"], rows())
    assert read_csv_rows(path, ["a"]) == [{"a": "old"}]
    assert list(tmp_path.iterdir()) == [path]


def test_reader_errors_name_file_and_row(tmp_path: Path):
    missing_col = tmp_path / "cols.csv"
    missing_col.write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"cols.csv: missing column\(s\) \['question'\]; columns are \['text'\]"):
        read_csv_rows(missing_col, ["question"])
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputDataError, match="empty.csv: file is empty"):
        read_csv_rows(empty, ["question"])
    header_only = tmp_path / "header.csv"
    header_only.write_text("question\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="header.csv: no data rows"):
        read_csv_rows(header_only, ["question"])
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("question\ncaf\xe9 fever\n".encode("latin-1"))
    with pytest.raises(InputDataError, match="latin1.csv: not valid UTF-8"):
        read_csv_rows(latin, ["question"])
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("question,source\na,b\nc,d,e\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="ragged.csv: row 1 .* has 3 fields, expected 2"):
        read_csv_rows(ragged, ["question"])
    with pytest.raises(InputDataError, match="nothere.csv: file not found"):
        read_csv_rows(tmp_path / "nothere.csv", ["question"])
