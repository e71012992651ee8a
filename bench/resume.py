"""Resume cost: requests redone after a SIGKILL at ~50% of a run, divided by the in-flight limit.

Starts the embedded model server once, behind a counting proxy that counts every chat request it
receives. ``synthgen run`` (request cache on) is killed with SIGKILL once the proxy has answered about
half of the requests a complete run needs (synthetic slots plus two answers per question, without retries), then run
again to completion. Requests redone = requests the server received in both runs minus the distinct
requests in the final request cache (each finished request is stored once).

    .venv/bin/python bench/resume.py [--target 16]

Last line: ``resume: <requests redone / backend.max_concurrency>``.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=16, help="questions.target of the run")
    parser.add_argument("--concurrency", type=int, help="requests in flight (default: the model file's max_concurrency)")
    args = parser.parse_args()
    stop_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        server, cfg = embedded_server(Path(tmp) / "server.log")
        concurrency = args.concurrency or cfg.backend.max_concurrency
        with server:
            proxy = CountingProxy(server.base_url).start()
            common = [
                "-c", "configs/default.yaml", "-o", str(out),
                "--set", "backend.engine=endpoint", "--set", f"backend.base_url={proxy.base_url}",
                "--set", f"backend.max_concurrency={concurrency}",
                "--set", f"questions.target={args.target}", "--set", f"questions.seed_questions={args.target // 2}",
            ]  # fmt: skip
            planned = args.target - args.target // 2 + 2 * args.target  # synthetic slots + chosen/rejected per question
            kill_at = planned // 2
            print(f"in flight: {concurrency}; a complete run needs at least {planned} requests; SIGKILL after {kill_at} answers")

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
            print(f"run 1 (killed): server received {received_first} requests, {cached_at_kill} in the request cache")

            second = synthgen("run", *common, log=log)
            if second.wait() != 0:
                raise SystemExit(f"the rerun failed ({second.returncode}):\n{tail(log)}")
            received_second = proxy.received - received_first
            distinct = cached_requests(out)
            summary = json.loads((out / "run_summary.json").read_text())
            rows = summary.get("rows", summary.get("stages", {}))
    redone = received_first + received_second - distinct
    print(f"run 2: server received {received_second} requests; the final cache holds {distinct} distinct requests")
    print(f"redone: {redone} requests ({received_first} + {received_second} - {distinct}); in-flight limit {concurrency}")
    print(f"published: {json.dumps(rows)[:300]}")
    print(f"resume: {redone / concurrency:.2f}")


if __name__ == "__main__":
    main()
