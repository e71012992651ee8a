"""Resume cost after a SIGKILL at ~50% of a run: requests sent again, and rows redone after the last chunk.

Starts the embedded model server once (or uses ``--endpoint URL``), behind a counting proxy that counts
every chat request it receives. ``synthgen run`` (request cache on, a chunk every ``--chunk-rows`` rows) is
killed with SIGKILL once the proxy has answered about half of the requests a complete run needs (synthetic
slots plus two answers per question, without retries), then run again to completion. Two figures:

- requests sent again = requests the server received in both runs minus the distinct requests in the final
  request cache (each finished request is stored once); goal: no more than the in-flight limit;
- rows redone = rows the rerun processed again although they had finished before the kill (every reply
  they needed came from the request cache), after the rows its last complete chunk restored; goal: at most
  one chunk (rows that finished out of order, behind an unfinished row, count too).

    .venv/bin/python bench/resume.py [--target 16] [--chunk-rows 4] [--endpoint URL]

Last line: ``resume: <requests sent again / in-flight limit>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

from common import CountingProxy, embedded_server, stop_on_sigterm, synthgen, tail


def cached_requests(out: Path) -> int:
    total = 0
    for path in out.glob("shards/*/cache/requests.sqlite"):
        with sqlite3.connect(path) as db:
            total += db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    return total


def committed_rows(out: Path) -> tuple[int, int]:
    """(complete chunks, rows they hold) from the shards' chunk markers."""
    chunks = rows = 0
    for path in out.glob("shards/*/chunks.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        chunks += data["chunks"]
        rows += data["rows_consumed"]
    return chunks, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=16, help="questions.target of the run")
    parser.add_argument("--chunk-rows", type=int, default=4, help="execution.chunk_rows: rows per chunk")
    parser.add_argument("--concurrency", type=int, help="requests in flight (default: the model file's max_concurrency)")
    parser.add_argument("--endpoint", help="an OpenAI-compatible base URL to use instead of starting the embedded server")
    args = parser.parse_args()
    stop_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        server, cfg = embedded_server(Path(tmp) / "server.log")
        concurrency = args.concurrency or cfg.backend.max_concurrency
        with server if args.endpoint is None else contextlib.nullcontext():
            proxy = CountingProxy(args.endpoint or server.base_url).start()
            common = [
                "-c", "configs/default.yaml", "-o", str(out),
                "--set", "backend.engine=endpoint", "--set", f"backend.base_url={proxy.base_url}",
                "--set", f"backend.max_concurrency={concurrency}", "--set", f"execution.chunk_rows={args.chunk_rows}",
                "--set", f"questions.target={args.target}", "--set", f"questions.seed_questions={args.target // 2}",
                "--set", "evaluation.enabled=false",
            ]  # fmt: skip
            if args.endpoint:
                common += ["--set", f"backend.model={cfg.backend.model}"]
            planned = args.target - args.target // 2 + 2 * args.target  # synthetic slots + chosen/rejected per question
            kill_at = planned // 2
            print(f"in flight: {concurrency}; chunk: {args.chunk_rows} rows; a complete run needs at least {planned} requests; "
                  f"SIGKILL after {kill_at} answers")  # fmt: skip

            log = Path(tmp) / "synthgen.log"
            first = synthgen("run", *common, log=log)
            while len([e for e in proxy.exchanges if not e.probe]) < kill_at:
                if first.poll() is not None:
                    raise SystemExit(f"the run ended before the kill point:\n{tail(log)}")
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait()
            time.sleep(1.0)  # let requests that were in flight finish on the server side
            received_first = proxy.received
            cached_at_kill = cached_requests(out)
            chunks, restored = committed_rows(out)
            print(f"run 1 (killed): server received {received_first} requests, {cached_at_kill} in the request cache; "
                  f"{chunks} complete chunk(s) holding {restored} row(s)")  # fmt: skip

            second = synthgen("run", *common, log=log)
            if second.wait() != 0:
                raise SystemExit(f"the rerun failed ({second.returncode}):\n{tail(log)}")
            received_second = proxy.received - received_first
            distinct = cached_requests(out)
            summary = json.loads((out / "run_summary.json").read_text())
            rows = summary.get("rows", summary.get("stages", {}))
            engine = summary.get("stages", {}).get("engine", {})
            resume = summary.get("stages", {}).get("resume", {})
    redone = received_first + received_second - distinct
    rows_redone = int(engine.get("rows_from_cache", 0))
    print(f"run 2: server received {received_second} requests; the final cache holds {distinct} distinct requests; "
          f"{resume.get('rows_restored', 0)} row(s) restored from chunks, {rows_redone} finished row(s) redone from the cache")  # fmt: skip
    print(f"requests sent again: {redone} ({received_first} + {received_second} - {distinct}); in-flight limit {concurrency}")
    print(f"published: {json.dumps(rows)[:300]}")
    print(f"rows redone after the last chunk: {rows_redone} (chunk: {args.chunk_rows} rows)")
    print(f"resume: {redone / concurrency:.2f}")


if __name__ == "__main__":
    main()
