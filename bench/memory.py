"""Peak memory of the input path for 10k vs 1M synthetic questions: load, preprocess, seed sample, shard.

Each size runs in its own subprocess (fresh interpreter, empty ``datasets`` cache) that loads a CSV (or
Parquet) file through ``datasets``, streams it through PII scrubbing (off unless ``--pii``: ~0.3 ms a row
here) and preprocessing, samples the seed questions and writes one seed file per shard; it reports its peak RSS.

    .venv/bin/python bench/memory.py [--small 10000] [--large 1000000] [--format csv|parquet] [--pii]

Last line: ``memory: <peak RSS(large) / peak RSS(small)>``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = ["asthma", "gout", "eczema", "migraine", "anaemia", "shingles", "psoriasis", "angina", "sciatica", "tinnitus"]


def write_questions(path: Path, count: int, fmt: str) -> None:
    """``count`` synthetic questions, 1 in 50 a duplicate of an earlier one (after lower-casing)."""

    def rows():
        for i in range(count):
            n = i - 1 if i % 50 == 49 else i
            yield f"What Is The Usual Treatment For {WORDS[n % 10]} Case {n} In Adults?"

    if fmt == "csv":
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("question\n")
            for row in rows():
                handle.write(row + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("question", pa.string())])
        with pq.ParquetWriter(path, schema) as writer:
            batch: list[str] = []
            for row in rows():
                batch.append(row)
                if len(batch) == 100_000:
                    writer.write_table(pa.table({"question": batch}, schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.table({"question": batch}, schema=schema))


def child(data: Path, out: Path, pii: bool, shards: int) -> None:
    from generation.config import load_config
    from generation.io import write_csv
    from generation.pipeline import prepare_seed_questions

    fmt = "parquet" if data.suffix == ".parquet" else "csv"
    overrides = [
        f"dataset.path={fmt}", f"dataset.data_files={data}", "dataset.column=question", "dataset.name=null",
        "questions.seed_questions=null", "questions.target=2000", f"privacy.pii.enabled={str(pii).lower()}",
    ]  # fmt: skip
    cfg = load_config(REPO / "configs/default.yaml", overrides)
    started = time.perf_counter()
    seeds, stats = prepare_seed_questions(cfg)
    for rank in range(shards):  # shard r owns seed i when i % shards == r, as generation.shards does
        write_csv(out / f"shard-{rank:05d}.csv", ["question"], ({"question": q} for q in seeds[rank::shards]))
    print(json.dumps({
        "rows": stats["load"]["rows"], "rows_out": stats["preprocess"]["rows_out"], "seeds": len(seeds),
        "seconds": time.perf_counter() - started, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))  # fmt: skip


def measure(count: int, fmt: str, pii: bool, shards: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / f"questions.{fmt}"
        write_questions(data, count, fmt)
        env = {**os.environ, "HF_DATASETS_CACHE": str(Path(tmp) / "hf-cache"), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, __file__, "--child", str(data), "--out", tmp, "--shards", str(shards)] + (["--pii"] if pii else [])
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise SystemExit(f"child for {count} rows failed:\n{result.stderr[-2000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--pii", action="store_true", help="scrub PII too (slow: ~5 min for 1M rows on 2 cores)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.out, args.pii, args.shards)
        return
    small = measure(args.small, args.format, args.pii, args.shards)
    large = measure(args.large, args.format, args.pii, args.shards)
    for name, item in (("small", small), ("large", large)):
        print(f"{name}: {item['rows']:>9,} rows -> {item['rows_out']:>9,} after preprocessing -> {item['seeds']} seeds "
              f"in {args.shards} shards; {item['seconds']:.1f} s; peak RSS {item['peak_rss_mib']:.0f} MiB")  # fmt: skip
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(f"format {args.format}, PII scrubbing {'on' if args.pii else 'off'}; goal: ratio <= 1.5 and large < 1024 MiB")
    print(f"memory: {ratio:.2f}")


if __name__ == "__main__":
    main()
