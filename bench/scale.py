"""Scale: the real ``synthgen run`` against a simulated continuous-batching endpoint, per size and in-flight limit.

For each size (seeds) and each in-flight setting (requests in flight : mean latency in seconds) it writes a
deterministic CSV of distinct, varied seed questions, starts ``bench/sim_endpoint.py`` in its own process
(latency drawn per request; replies valid for synthgen's filters), and runs ``synthgen run`` in a subprocess
(engine ``endpoint``, ``backend.max_concurrency`` = in flight, target = 2 x seeds questions, request cache
and PII scrubbing on, evaluation off). It prints, per run:

- ideal makespan: requests x mean drawn latency / in flight (the endpoint's own counters);
- actual makespan: the endpoint's first request to its last answer (the readiness probe excluded);
- their ratio (goal >= 0.95), CPU ms per request (synthgen's process CPU incl. children / requests;
  goal <= 1.0), peak RSS of the synthgen process tree (sampled every 0.5 s, and the kernel's ru_maxrss),
  and the time spent in near-duplicate checks (``stages.questions.near_duplicate_s`` of run_summary.json;
  "n/a" when the engine does not record it).

    .venv/bin/python bench/scale.py [--sizes 10000,100000] [--full] [--in-flight 512:1,5000:10]
        [--latency-dist uniform|lognormal|fixed] [--work-dir DIR --keep] [--profile DIR] [--memory]

``--full`` adds 1,000,000 seeds. Last line: ``scale: <ratio at 100k seeds, 512 in flight>`` (when that run was
not made: the largest size run at the first in-flight setting, named on the line before).

``--memory`` measures memory only: 500,000 seeds (1M questions, 1M pairs) against an endpoint that answers in
5 ms, so the run takes its CPU time rather than the 1M makespan, then ``synthgen gather`` again in a fresh
process over the finished shards; last line: ``memory: <the larger peak RSS of the two, MiB>``. ``--profile DIR``
samples each run with py-spy into ``DIR/profile-SEEDS-INFLIGHT.txt`` (collapsed stacks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import REPO, stop_on_sigterm, synthgen, tail

# ------------------------------------------------------------------------------------------ seed sets

FRAMES = [
    "What is the usual treatment for {c} in {g} {x}?", "How long does {c} last in {g} {x}?",
    "Can {c} come back after treatment in {g} {x}?", "What are the first signs of {c} in {g} {x}?",
    "Is {c} serious for {g} {x}?", "Which tests confirm {c} in {g} {x}?",
    "How do doctors tell {c} apart from a cold in {g} {x}?", "What foods make {c} worse for {g} {x}?",
    "Should {g} with {c} avoid exercise {x}?", "How fast does {c} spread among {g} {x}?",
    "When does {c} need a hospital visit for {g} {x}?", "Does {c} run in families of {g} {x}?",
    "What home remedies ease {c} in {g} {x}?", "Why is {c} more common in {g} {x}?",
    "Can stress trigger {c} in {g} {x}?", "How is {c} prevented in {g} {x}?",
    "What medicines help {c} in {g} {x}?", "Is {c} contagious between {g} {x}?",
    "What complications can {c} cause in {g} {x}?", "How should {g} sleep with {c} {x}?",
    "Can {g} with {c} keep working {x}?", "What does a flare of {c} feel like for {g} {x}?",
    "Is surgery ever needed for {c} in {g} {x}?", "How much water should {g} with {c} drink {x}?",
    "Which vitamins matter for {g} with {c} {x}?", "What makes {c} hard to diagnose in {g} {x}?",
    "Can {c} affect memory in {g} {x}?", "How do {g} manage pain from {c} {x}?",
    "Does weather change {c} symptoms in {g} {x}?", "Is {c} linked to diet in {g} {x}?",
    "What should {g} pack for {c} when travelling {x}?", "How often should {g} with {c} see a specialist {x}?",
]  # fmt: skip
CONDITIONS = [word.replace("-", " ") for word in (
    "asthma gout eczema migraine anaemia shingles psoriasis angina sciatica tinnitus bronchitis sinusitis "
    "tonsillitis gastritis colitis cystitis dermatitis arthritis osteoporosis hypertension hypothyroidism "
    "hyperthyroidism diabetes pneumonia influenza measles mumps chickenpox rubella scabies impetigo ringworm "
    "conjunctivitis glaucoma cataracts vertigo insomnia narcolepsy epilepsy dementia parkinsonism lupus "
    "fibromyalgia endometriosis appendicitis pancreatitis hepatitis cirrhosis gallstones hemorrhoids "
    "diverticulitis celiac-disease lactose-intolerance acid-reflux peptic-ulcers kidney-stones "
    "urinary-infections prostatitis rosacea acne alopecia vitiligo warts cold-sores athletes-foot "
    "plantar-fasciitis tendinitis bursitis carpal-tunnel frozen-shoulder tennis-elbow back-pain neck-pain "
    "whiplash concussion anxiety depression panic-attacks bipolar-disorder adhd autism dyslexia stuttering "
    "sleep-apnea snoring restless-legs cluster-headaches tension-headaches bells-palsy neuralgia "
    "multiple-sclerosis motor-neurone-disease muscular-dystrophy scoliosis osteoarthritis heart-failure "
    "atrial-fibrillation varicose-veins deep-vein-thrombosis anaphylaxis hay-fever food-allergies "
    "hives nosebleeds earwax-buildup ear-infections glue-ear laryngitis croup whooping-cough tuberculosis "
    "malaria dengue lyme-disease salmonella norovirus e-coli-infection thrush bacterial-vaginosis "
    "menopause-symptoms heavy-periods pcos morning-sickness pre-eclampsia postnatal-depression "
    "colic teething jaundice rickets scurvy iron-overload low-blood-pressure fainting palpitations "
    "high-cholesterol obesity malnutrition dehydration heatstroke hypothermia frostbite sunburn "
    "burns blisters bunions ingrown-toenails gum-disease tooth-decay mouth-ulcers dry-eye styes "
    "color-blindness macular-degeneration hearing-loss motion-sickness altitude-sickness jet-lag "
    "chronic-fatigue long-covid sarcoidosis gout-flares kidney-disease bladder-weakness"
).split()]  # fmt: skip
GROUPS = [
    "toddlers", "teenagers", "young adults", "older adults", "pregnant women", "new mothers", "athletes",
    "office workers", "night-shift workers", "smokers", "vegetarians", "students", "pensioners",
    "people with diabetes", "people over eighty", "infants", "twins", "shift nurses", "long-haul pilots",
    "farm workers", "swimmers", "runners", "cyclists", "divers", "musicians", "teachers", "drivers",
    "soldiers", "miners", "bakers", "painters", "welders", "gardeners", "chefs", "cleaners", "builders",
    "people with asthma", "people on blood thinners", "heavy drinkers", "people who fast",
]  # fmt: skip
CONTEXTS = [
    "during winter", "in hot weather", "after surgery", "after a long flight", "at high altitude",
    "during pregnancy", "after childbirth", "while travelling", "during exams", "after a bad cold",
    "on a low budget", "living alone", "in rural areas", "in big cities", "after retirement",
    "during ramadan", "after a vaccine", "while dieting", "after antibiotics", "during hay fever season",
    "at night", "in the morning", "after exercise", "after moving abroad", "during a heatwave",
    "in damp homes", "with pets", "after a fall", "in care homes", "at school", "at work", "on holiday",
    "after covid", "during menopause", "in the first year", "after quitting smoking", "on night shifts",
    "with no car", "near the sea", "in the mountains",
]  # fmt: skip


def seed_question(index: int) -> str:
    """Seed ``index`` of a deterministic sequence of distinct questions (a permuted mixed-radix enumeration)."""
    radices = (len(FRAMES), len(CONDITIONS), len(GROUPS), len(CONTEXTS))
    total = math.prod(radices)
    if index >= total:
        raise ValueError(f"at most {total} distinct seed questions")
    stride = 1_000_003  # prime, so coprime with ``total``: index -> position is a bijection
    assert math.gcd(stride, total) == 1
    position = (index * stride + 7) % total
    digits = []
    for radix in radices:
        position, digit = divmod(position, radix)
        digits.append(digit)
    frame, condition, group, context = digits
    return FRAMES[frame].format(c=CONDITIONS[condition], g=GROUPS[group], x=CONTEXTS[context])


def write_seeds(path: Path, count: int) -> None:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question"])
        for index in range(count):
            writer.writerow([seed_question(index)])


# ------------------------------------------------------------------------------------------ one run


@dataclass
class Result:
    seeds: int
    in_flight: int
    latency_mean: float
    requests: int = 0
    mean_latency: float = 0.0
    ideal_s: float = 0.0
    actual_s: float = 0.0
    cpu_ms: float = 0.0
    peak_rss_mib: float = 0.0
    near_duplicate_s: float | None = None
    questions: int = 0
    pairs: int = 0
    wall_s: float = 0.0
    loop_lag_max_ms: int | None = None  # the largest delay of the event loop (run_summary.json, engine figures)
    loop_stalls: int | None = None  # event-loop stalls of 100 ms or more
    gather_rss_mib: float | None = None  # --memory: peak RSS of `synthgen gather` alone
    gather_s: float = 0.0
    error: str = ""

    @property
    def ratio(self) -> float:
        return self.ideal_s / self.actual_s if self.actual_s else 0.0


def start_sim(latency_mean: float, dist: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, str(REPO / "bench/sim_endpoint.py"), "--latency-mean", str(latency_mean), "--latency-dist", dist]
    if dist == "uniform":  # 0.25 to 1.75 x the mean, as in issue 13's measurement
        command += ["--latency-sd", str(0.75 * latency_mean / math.sqrt(3))]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)  # noqa: SIM115
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if len(line) != 2 or line[0] != "ready":
        process.kill()
        raise SystemExit(f"the simulated endpoint did not start:\n{tail(log)}")
    return process, line[1]


def sim_stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=30) as response:
        return json.loads(response.read())


def tree_rss_mib(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


def watch_rss(pid: int, peak: list[float], stop: threading.Event) -> None:
    """Sample the RSS of ``pid`` and its descendants (sum) every 0.5 s; keep the maximum in ``peak[0]``."""
    while not stop.wait(0.5):
        peak[0] = max(peak[0], tree_rss_mib(pid))


def run_config(path: Path, seeds_csv: Path, size: int, in_flight: int, base_url: str) -> None:
    model_file = path.with_name("sim-model.yaml")
    model_file.write_text(
        "backend:\n  engine: endpoint\n  model: sim\n"
        f"  base_url: {base_url}\n  max_concurrency: {in_flight}\n  timeout_s: 600\n",
        encoding="utf-8",
    )
    config = {
        "name": f"scale-{size}-{in_flight}", "seed": 42, "domain": "healthcare", "model": str(model_file),
        "dataset": {"path": "csv", "data_files": str(seeds_csv), "column": "question"},
        "questions": {"seed_questions": None, "target": 2 * size, "max_attempts": 6},
        "responses": {"max_attempts": 3},
        "cache": {"enabled": True}, "privacy": {"pii": {"enabled": True}}, "evaluation": {"enabled": False},
    }  # fmt: skip
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML


def attach_profiler(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` with py-spy (a separate process, so its CPU is not counted) into a collapsed-stack file."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    command = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(out.with_suffix(".log"), "w"))  # noqa: SIM115


def run_measured(args: list[str], log: Path, env: dict[str, str], timeout_s: float, profile: Path | None = None) -> tuple[int, Any, float]:
    """Run ``synthgen ARGS``; returns its exit status, its resource usage (children included) and its peak RSS in MiB
    (the process tree sampled every 0.5 s, or the kernel's ru_maxrss if larger)."""
    process = synthgen(*args, log=log, env=env)
    spy = attach_profiler(process.pid, profile, 100) if profile else None
    peak, stop = [0.0], threading.Event()
    watcher = threading.Thread(target=watch_rss, args=(process.pid, peak, stop), daemon=True)
    watcher.start()
    killer = threading.Timer(timeout_s, process.kill)
    killer.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    killer.cancel()
    stop.set()
    watcher.join()
    if spy is not None:
        spy.wait(60)
    return process.returncode, usage, max(peak[0], usage.ru_maxrss / 1024)


def measure(size: int, in_flight: int, latency: float, seeds_csv: Path, work: Path, dist: str, timeout_s: float,
            profile: Path | None = None, gather_again: bool = False) -> Result:  # fmt: skip
    result = Result(size, in_flight, latency)
    run_dir = work / f"run-{size}-{in_flight}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    sim, base_url = start_sim(latency, dist, run_dir / "sim.log")
    env = {"HF_DATASETS_CACHE": str(run_dir / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    try:
        run_config(run_dir / "config.yaml", seeds_csv, size, in_flight, base_url)
        started = time.monotonic()
        returncode, usage, result.peak_rss_mib = run_measured(
            ["run", "-c", str(run_dir / "config.yaml"), "-o", str(run_dir / "out")], run_dir / "synthgen.log", env, timeout_s,
            profile / f"profile-{size}-{in_flight}.txt" if profile else None,
        )  # fmt: skip
        result.wall_s = time.monotonic() - started
        kinds = {k: v for k, v in sim_stats(base_url)["by_kind"].items() if k != "other"}  # "other": the probe
    finally:
        sim.terminate()
        sim.wait()
    if returncode != 0:
        result.error = f"synthgen exited {returncode}: {tail(run_dir / 'synthgen.log', 600).strip()}"
        return result
    result.requests = sum(int(k["answered"]) for k in kinds.values())
    if result.requests:
        result.mean_latency = sum(k["latency_s"] for k in kinds.values()) / result.requests
        result.ideal_s = result.requests * result.mean_latency / in_flight
        result.actual_s = max(k["last_answer"] for k in kinds.values()) - min(k["first_arrival"] for k in kinds.values())
        result.cpu_ms = 1000 * (usage.ru_utime + usage.ru_stime) / result.requests
    summary = json.loads((run_dir / "out/run_summary.json").read_text(encoding="utf-8"))
    stages = summary.get("stages", {})
    near = stages.get("questions", {}).get("near_duplicate_s")
    result.near_duplicate_s = float(near) if isinstance(near, (int, float)) else None
    engine = stages.get("engine", {})
    result.loop_lag_max_ms = engine.get("loop_lag_max_ms")
    result.loop_stalls = engine.get("loop_stalls_100ms")
    result.questions = int(summary.get("rows", {}).get("questions", 0))
    result.pairs = int(summary.get("rows", {}).get("pairs", 0))
    if gather_again:  # the gather alone, in a fresh process, over the finished shards
        started = time.monotonic()
        returncode, usage, result.gather_rss_mib = run_measured(["gather", "-o", str(run_dir / "out")], run_dir / "gather.log", env, timeout_s)
        result.gather_s = time.monotonic() - started
        if returncode != 0:
            result.error = f"synthgen gather exited {returncode}: {tail(run_dir / 'gather.log', 600).strip()}"
    return result


# ---------------------------------------------------------------------------------------------- main


def parse_in_flight(text: str) -> list[tuple[int, float]]:
    settings = []
    for item in text.split(","):
        count, _, latency = item.partition(":")
        settings.append((int(count), float(latency) if latency else 1.0))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="seed counts, comma-separated (default 10000,100000; --memory: 500000)")
    parser.add_argument("--full", action="store_true", help="add 1,000,000 seeds")
    parser.add_argument("--in-flight", default=None,
                        help="IN_FLIGHT:MEAN_LATENCY_S pairs, comma-separated (default 512:1,5000:10; --memory: 512:0.005)")
    parser.add_argument("--latency-dist", choices=["uniform", "lognormal", "fixed"], default=None, help="default uniform (--memory: fixed)")
    parser.add_argument("--memory", action="store_true",
                        help="memory only: a near-instant endpoint (5 ms), so a run takes its CPU time, not its ideal makespan; "
                             "then `synthgen gather` again in a fresh process; headline: the largest peak RSS (MiB)")
    parser.add_argument("--timeout-s", type=float, default=6 * 3600, help="per run")
    parser.add_argument("--work-dir", type=Path, help="keep seeds, configs, logs and run folders here")
    parser.add_argument("--keep", action="store_true", help="keep the run folders (default: deleted after each run)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample each synthgen run with py-spy (100 Hz, collapsed stacks) into DIR/profile-SEEDS-INFLIGHT.txt")
    args = parser.parse_args()
    stop_on_sigterm()
    sizes_text = args.sizes or ("500000" if args.memory else "10000,100000")
    sizes = [int(s) for s in sizes_text.split(",") if s] + ([1_000_000] if args.full else [])
    settings = parse_in_flight(args.in_flight or ("512:0.005" if args.memory else "512:1,5000:10"))
    dist = args.latency_dist or ("fixed" if args.memory else "uniform")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="synthgen-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    try:
        for size in sizes:
            seeds_csv = work / f"seeds-{size}.csv"
            write_seeds(seeds_csv, size)
            for in_flight, latency in settings:
                result = measure(size, in_flight, latency, seeds_csv, work, dist, args.timeout_s, args.profile, args.memory)
                results.append(result)
                print(describe(result), flush=True)
                if not args.keep:
                    shutil.rmtree(work / f"run-{size}-{in_flight}", ignore_errors=True)
    finally:
        if args.work_dir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    goals = "peak RSS < 1536 MiB for 1M questions and for a gather of 1M rows" if args.memory else "ratio >= 0.95, CPU <= 1.0 ms/request"
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, latency {dist}; goals: {goals}")
    print(f"{'seeds':>9}{'in flight':>10}{'latency':>8}{'requests':>10}{'ideal s':>9}{'actual s':>9}{'ratio':>7}"
          f"{'CPU ms/req':>11}{'peak RSS MiB':>13}{'near-dup s':>11}{'lag max ms':>11}{'questions':>10}{'pairs':>9}"
          + (f"{'gather RSS MiB':>15}" if args.memory else ""))  # fmt: skip
    for r in results:
        if r.error:
            print(f"{r.seeds:>9}{r.in_flight:>10}{r.latency_mean:>8g}  FAILED: {r.error.splitlines()[-1] if r.error else ''}")
            continue
        near = f"{r.near_duplicate_s:.1f}" if r.near_duplicate_s is not None else "n/a"
        lag = f"{r.loop_lag_max_ms}" if r.loop_lag_max_ms is not None else "n/a"
        gathered = f"{r.gather_rss_mib:>15.0f}" if args.memory and r.gather_rss_mib is not None else ""
        print(f"{r.seeds:>9}{r.in_flight:>10}{r.latency_mean:>8g}{r.requests:>10}{r.ideal_s:>9.1f}{r.actual_s:>9.1f}{r.ratio:>7.2f}"
              f"{r.cpu_ms:>11.3f}{r.peak_rss_mib:>13.0f}{near:>11}{lag:>11}{r.questions:>10}{r.pairs:>9}{gathered}")  # fmt: skip
    done = [r for r in results if not r.error]
    if args.memory:
        largest = max(done, key=lambda r: r.seeds) if done else None
        if largest is not None:
            print(f"(headline: {largest.seeds} seeds -> {largest.questions} questions, {largest.pairs} pairs; "
                  f"the larger of the run's and the gather's peak RSS)")  # fmt: skip
        print(f"memory: {max(largest.peak_rss_mib, largest.gather_rss_mib or 0):.0f}" if largest else "memory: n/a")
    else:
        headline = next((r for r in done if r.seeds == 100_000 and r.in_flight == 512), None)
        if headline is None and done:
            first = settings[0][0]
            candidates = [r for r in done if r.in_flight == first] or done
            headline = max(candidates, key=lambda r: r.seeds)
            print(f"(headline from {headline.seeds} seeds, {headline.in_flight} in flight: the 100k/512 run was not made)")
        print(f"scale: {headline.ratio:.2f}" if headline else "scale: n/a")
    if len(done) < len(results):
        sys.exit(1)


def describe(r: Result) -> str:
    if r.error:
        return f"{r.seeds} seeds, {r.in_flight} in flight: FAILED after {r.wall_s:.0f} s: {r.error}"
    near = f"{r.near_duplicate_s:.1f} s" if r.near_duplicate_s is not None else "n/a"
    gathered = f"; gather alone: peak RSS {r.gather_rss_mib:.0f} MiB in {r.gather_s:.0f} s" if r.gather_rss_mib is not None else ""
    return (f"{r.seeds} seeds, {r.in_flight} in flight, mean latency {r.mean_latency:.2f} s: {r.requests} requests, "
            f"ideal {r.ideal_s:.1f} s, actual {r.actual_s:.1f} s (ratio {r.ratio:.2f}), {r.cpu_ms:.3f} CPU ms/request, "
            f"peak RSS {r.peak_rss_mib:.0f} MiB, near-duplicates {near}, event loop: largest lag {r.loop_lag_max_ms} ms, "
            f"{r.loop_stalls} stall(s) >= 100 ms; {r.questions} questions, {r.pairs} pairs; wall {r.wall_s:.0f} s{gathered}")  # fmt: skip


if __name__ == "__main__":
    main()
