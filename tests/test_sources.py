from pathlib import Path

import pytest

from generation.config import DatasetConfig
from generation.errors import InputDataError
from generation.sources import load_questions


def test_loads_a_local_csv_in_order(tmp_path: Path):
    path = tmp_path / "q.csv"
    path.write_text("id,text\n1,can hair loss grow back\n2,\n3,what causes gout\n", encoding="utf-8")
    rows = load_questions(DatasetConfig(path="csv", data_files=str(path), column="text"))
    assert rows == ["can hair loss grow back", None, "what causes gout"]


def test_loads_json_lines_with_another_split_name(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"q": "is eczema contagious"}\n{"q": "what is gout"}\n', encoding="utf-8")
    cfg = DatasetConfig(path="json", data_files={"test": str(path)}["test"], split="train", column="q")
    assert load_questions(cfg) == ["is eczema contagious", "what is gout"]


def test_streams_a_parquet_file_in_order(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from generation.sources import open_questions

    path = tmp_path / "q.parquet"
    rows = [f"question number {i}" for i in range(2500)] + [None]
    pq.write_table(pa.table({"id": list(range(len(rows))), "question": rows}), path)  # one row group
    source = open_questions(DatasetConfig(path="parquet", data_files=str(path)), batch_size=1000)
    assert list(source) == rows and len(source) == len(rows)
    assert max(len(batch) for batch in source._batches()) <= 1000  # never the whole file at once


def test_missing_column_lists_the_columns(tmp_path: Path):
    path = tmp_path / "q.csv"
    path.write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"no column 'question' \(dataset.column\); columns are \['text'\]"):
        load_questions(DatasetConfig(path="csv", data_files=str(path)))


def test_missing_file_and_empty_dataset(tmp_path: Path):
    with pytest.raises(InputDataError, match=r"missing.csv: dataset file not found \(dataset.data_files\)"):
        load_questions(DatasetConfig(path="csv", data_files=str(tmp_path / "missing.csv")))
    empty = tmp_path / "empty.csv"
    empty.write_text("question\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="empty"):
        load_questions(DatasetConfig(path="csv", data_files=str(empty)))


def test_non_utf8_file_is_one_line_error(tmp_path: Path):
    path = tmp_path / "latin.csv"
    path.write_bytes("question\ncaf\xe9 au lait allergy\n".encode("latin-1"))
    with pytest.raises(InputDataError) as err:
        load_questions(DatasetConfig(path="csv", data_files=str(path)))
    assert "\n" not in str(err.value)
    assert "UTF-8" in str(err.value) or "utf-8" in str(err.value)


def test_non_text_column_names_the_row(tmp_path: Path):
    path = tmp_path / "nums.csv"
    path.write_text("question\n1\n2\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"row 0: column 'question' holds int, expected text"):
        load_questions(DatasetConfig(path="csv", data_files=str(path)))


def test_a_carded_folder_edited_or_named_like_another_loads_its_own_rows(tmp_path: Path):
    """A local folder with a dataset card (a run folder, a cloned Hub repo): datasets 5.2 alone keys its cache by the
    folder's name and card, and returned the rows it prepared first."""
    import os

    card = "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: questions.csv\n---\n# questions\n"

    def folder(parent: str, questions: list[str], mtime: int) -> str:
        path = tmp_path / parent / "seeds"
        path.mkdir(parents=True, exist_ok=True)
        (path / "README.md").write_text(card, encoding="utf-8")
        (path / "questions.csv").write_text("question\n" + "".join(f"{q}\n" for q in questions), encoding="utf-8")
        os.utime(path / "questions.csv", (mtime, mtime))
        return str(path)

    first = folder("a", ["what is gout", "is eczema contagious"], 1_700_000_000)
    assert load_questions(DatasetConfig(path=first)) == ["what is gout", "is eczema contagious"]
    folder("a", ["what causes gout", "can hair loss grow back", "is acne genetic"], 1_700_000_100)  # edited in place
    assert load_questions(DatasetConfig(path=first)) == ["what causes gout", "can hair loss grow back", "is acne genetic"]
    other = folder("b", ["what is a migraine"], 1_700_000_200)  # another folder of the same name
    assert load_questions(DatasetConfig(path=other)) == ["what is a migraine"]
    assert load_questions(DatasetConfig(path=first)) == ["what causes gout", "can hair loss grow back", "is acne genetic"]


def test_only_a_real_folder_gets_its_own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from generation.sources import local_folder_cache

    monkeypatch.chdir(tmp_path)
    (tmp_path / "csv").mkdir()  # a folder named like the packaged builder: datasets still reads "csv" as the builder
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "q.csv").write_text("question\nwhat is gout\n", encoding="utf-8")
    assert local_folder_cache("csv", str(tmp_path / "cache")) is None
    assert local_folder_cache("katielink/healthsearchqa", str(tmp_path / "cache")) is None  # a Hub id
    first = local_folder_cache("seeds", str(tmp_path / "cache"))
    assert first is not None and first.startswith(str(tmp_path / "cache"))
    (tmp_path / "seeds" / "q.csv").write_text("question\nwhat is gout\nwhat is lupus\n", encoding="utf-8")
    assert local_folder_cache("seeds", str(tmp_path / "cache")) != first  # the files changed, so does the folder
