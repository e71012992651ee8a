"""A simulated OpenAI-compatible continuous-batching server, for benchmarks and fault injection (not a model).

    python bench/sim_endpoint.py --port P [--latency-mean S] [--latency-dist lognormal|uniform|fixed]
        [--latency-sd S] [--max-batch N] [--token-rate R] [--seed K] [--model NAME]

Prints one line ``ready <base url>`` (``http://127.0.0.1:P/v1``) when it listens; ``--port 0`` picks a free
port. Standard library only (raw asyncio HTTP/1.1 with keep-alive), so it can be copied anywhere; one
process sustains thousands of requests per second and many thousands in flight.

Replies depend ONLY on the request: a SHA-256 of the messages, ``seed``, ``temperature``, ``top_p``,
``max_tokens`` and ``--seed`` picks both the reply and the request's latency, so reruns get the same replies
whatever the timing. The reply kind is recognised from synthgen's prompt shapes (any domain pack):

- "write one new question ... that <modification>" (``<question>`` tags): a new, well-formed question built
  from the seed question's content words, the modification and hash-chosen qualifiers, varied enough that
  near-duplicate filters rarely fire even at a million questions;
- a rejected-answer prompt ("... incorrect answer ..."): a few confident sentences from a different word
  bank than the chosen ones, so they never restate the chosen answer;
- a chosen-answer prompt (``<question>`` tags, "answer"): a few careful sentences about the question;
- judge prompts (a single digit 1-5, or Yes/No), mining prompts ("one per line ... asks"): such a reply;
- anything else (e.g. the client's "Say OK." probe): a short sentence, cut to ``max_tokens``.

Scheduling, like vLLM: at most ``--max-batch`` requests run at once (default: no limit); the others wait in
a FIFO queue. A request runs for its latency (drawn per request from the distribution, seeded by the
request hash); with ``--token-rate R`` it also decodes its completion tokens at ``R / running`` tokens/s,
``running`` counted when it starts (a crude continuous-batching model: a fuller batch is slower per
request). It never answers 429. Tokens are counted as characters / 4.

GET /health, GET /v1/models, GET /metrics (Prometheus text with vLLM's names: ``vllm:num_requests_running``,
``vllm:num_requests_waiting``, ``vllm:time_to_first_token_seconds``, ``vllm:e2e_request_latency_seconds``,
``vllm:request_queue_time_seconds`` histograms, ``vllm:request_success_total``, ``vllm:prompt_tokens_total``,
``vllm:generation_tokens_total``), and GET /stats: JSON counters for benches (per kind: requests, first
arrival and last answer as ``time.time()``, sum of drawn latencies; peaks of running, waiting and open
connections; connections opened).
Time to first token is the queue wait plus one token's share of the request's service time.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import re
import resource
import sys
import time
from collections import deque

# --------------------------------------------------------------------------------------------- replies

_TAGGED_QUESTION = re.compile(r"<question>(.*?)</question>", re.IGNORECASE | re.DOTALL)
_MODIFICATION = re.compile(r"new question\b[^\n]*?\bthat\s+(.+?)\.?\s*$", re.IGNORECASE | re.MULTILINE)
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")
_COUNT = re.compile(r"\bwrite\s+(\d+)\b", re.IGNORECASE)
_THIS_THING = re.compile(r"\b(?:this|that|the same)\s+(?:[a-z]+\s+)?(?:condition|situation|issue|problem|matter|topic|"
                         r"product|decision|choice|design|installation|system|application|calculation|case|question)\b"
                         # any other "this [word] noun" that ends the clause ("this financial task", "this work")
                         r"|\b(?:this|these|those|the same)\s+(?:[a-z]+\s+)?[a-z]+$", re.IGNORECASE)  # fmt: skip
_BARE_THIS = re.compile(r"\b(?:this|these|those)\b", re.IGNORECASE)  # a pronoun: "how this compares with ..."
_IT = re.compile(r"\b(in|of|about|for|with|from|to) it\b", re.IGNORECASE)
_OR_ALTERNATIVE = re.compile(r"\s+or\s+(?:an?\s+|the\s+)?[\w-]+(?=[\s,]|$)", re.IGNORECASE)  # "term or condition" -> "term"
_QUESTION_WORD = re.compile(r"\bquestions?\b", re.IGNORECASE)  # synthgen's filters reject meta text ("this question")
_REJECTED_CUE = re.compile(r"\b(incorrect|wrong|false|inaccurate|misleading)\b")
_PARENTHESES = re.compile(r"\s*\([^)]*\)")

STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with about from into over under after before between during "
    "is are was were be been being am do does did doing have has had having can could should would will shall "
    "may might must what whats what's how why when where which who whom whose that this these those there here "
    "i me my we our you your he she it its they them their his her any some all each every no not only own same "
    "so than too very just also more most other such up down out off again further then once get got getting "
    "usually usual common commonly typical typically really".split()
)

OPENERS_ABOUT = ["What should people know about", "What is known about", "Where can someone learn about",
                 "What do specialists say about", "What is worth understanding about", "What are the key facts about",
                 "What does current guidance say about", "What is commonly misunderstood about",
                 "What would a specialist explain about", "What is the latest thinking about"]  # fmt: skip
OPENERS_CLAUSE = ["Could someone explain", "Is there a simple way to understand", "What is the best way to find out",
                  "Do experts agree on", "Is there good evidence on", "What do specialists say about",
                  "Is it possible to predict", "What determines", "Is there a clear rule for", "Who decides"]  # fmt: skip
OPENERS_FIND = ["Where can someone find", "How can a person get", "Who can provide", "Which sources give",
                "Where do people usually look for", "What is the quickest way to get", "Which professionals offer",
                "Where is it possible to request"]  # fmt: skip
QUALIFIERS_WHO = [
    "for a retired teacher", "for a busy parent", "for a college student", "for a night-shift nurse",
    "for a truck driver", "for a new mother", "for a professional athlete", "for a farmer", "for a pensioner",
    "for a first-time patient", "for a software developer", "for a small business owner", "for a grandmother",
    "for a teenager", "for a frequent traveller", "for a factory worker", "for a musician", "for a chef",
    "for a construction worker", "for a university lecturer", "for a bus driver", "for a marathon runner",
    "for a shop assistant", "for a veteran", "for a single father", "for a graduate student", "for a pilot",
    "for a hairdresser", "for a librarian", "for a firefighter", "for a gardener", "for a call centre agent",
    "for a retired engineer", "for an office worker", "for an elderly neighbour", "for an amateur cyclist",
    "for an exchange student", "for an apprentice electrician", "for an expectant father", "for a yoga teacher",
]  # fmt: skip
QUALIFIERS_WHERE = [
    "living in a rural village", "in a large city", "on a tight budget", "during a cold winter",
    "after moving abroad", "with little free time", "while working from home", "during a long journey",
    "in a hot climate", "at high altitude", "after a recent move", "during school holidays", "in a shared flat",
    "without a car", "near the coast", "on a remote island", "during a busy season", "with a large family",
    "after changing jobs", "in a small apartment", "during a heatwave", "with limited internet access",
    "in a noisy neighbourhood", "after retirement", "during exam season", "with an irregular schedule",
    "in a humid region", "on night shifts", "with two young children", "while caring for a relative",
    "in a mountain town", "after a long illness", "with no insurance", "during a rainy spring",
    "while training for a race", "in an old house", "with a pet at home", "on a vegetarian diet",
    "after a divorce", "in a new country",
]  # fmt: skip
CHOSEN_SENTENCES = [
    "For {topic}, the usual first step is a careful assessment by a qualified professional.",
    "Guidance on {topic} recommends starting with the simplest well-established measures.",
    "Most people dealing with {topic} benefit from a clear plan agreed with an expert.",
    "Evidence on {topic} supports regular follow-up and adjusting the plan when things change.",
    "Reliable sources on {topic} stress that early attention usually leads to better outcomes.",
    "It is sensible to keep written notes about {topic} and to review them with a specialist.",
    "Established practice for {topic} combines practical measures with periodic review.",
    "Clear information about {topic} is available from recognised professional bodies.",
    "Warning signs related to {topic} deserve prompt attention from a qualified expert.",
    "Individual circumstances change what is appropriate for {topic}, so advice should be personalised.",
    "Simple preventive habits reduce many of the problems associated with {topic}.",
    "A specialist can explain the options for {topic} and the trade-offs between them.",
    "Recovery or resolution for {topic} depends on the cause, and most people improve with proper care.",
    "Current consensus on {topic} favours gradual, monitored changes over drastic ones.",
    "Trusted guidelines describe {topic} in plain language and list when to seek help.",
    "People facing {topic} should ask a professional before combining different remedies.",
]  # fmt: skip
REJECTED_SENTENCES = [
    "Experts agree that {topic} always disappears within two days, so waiting is enough.",
    "Doubling every recommended amount is the standard approach to {topic}.",
    "{Topic} only matters on weekends, because weekday routines cancel its effects completely.",
    "Drinking several litres of cold water each hour fully reverses {topic}.",
    "Official rules say {topic} must be ignored until it has lasted a full year.",
    "{Topic} is caused mainly by sleeping facing north and goes away once the bed is turned.",
    "Anyone can resolve {topic} permanently by skipping breakfast for a week.",
    "Professionals treat {topic} with loud music therapy, which works in every single case.",
    "Since {topic} is seasonal, it vanishes on its own every spring without exception.",
    "Wearing copper jewellery removes every risk linked to {topic} within hours.",
    "{Topic} can be passed on by shaking hands, so gloves are mandatory at all times.",
    "Specialists advise stopping all routines abruptly whenever {topic} comes up.",
    "The safest response to {topic} is to avoid daylight entirely for a month.",
    "Studies prove that {topic} improves fastest when people stay awake for two nights.",
    "Eating only citrus fruit for ten days is the officially approved cure for {topic}.",
    "{Topic} never affects anyone under seventy, so younger people need no precautions.",
]  # fmt: skip
QUALIFIERS_WHEN = [
    "this winter", "next spring", "during the summer", "over the holidays", "in the coming months",
    "after a recent diagnosis", "before a long trip", "at the start of the year", "later in life", "this week",
    "during a busy month", "after a hospital stay", "before starting a new job", "around exam time",
    "during a pregnancy", "after turning fifty", "in the first weeks", "over a long weekend", "at the end of term",
    "while on leave", "before a wedding", "after a bereavement", "during a house move", "in early autumn",
    "after a sports injury", "before surgery", "during a fasting period", "after a long flight", "in late evening",
    "during school runs", "after a night out", "before a marathon", "during flu season", "after a promotion",
    "in the rainy season", "before retirement", "after a new baby", "during a heat warning", "at weekends",
    "after a job loss",
]  # fmt: skip
# words of the simulator's own question frames, left out of an answer's topic
FRAME_WORDS = STOPWORDS | frozenset(
    _WORD.findall(" ".join(OPENERS_ABOUT + OPENERS_CLAUSE + OPENERS_FIND + QUALIFIERS_WHO + QUALIFIERS_WHERE + QUALIFIERS_WHEN).lower())
)
SHORT_SENTENCES = ["OK.", "Understood.", "Here is a short reply.", "That is noted.", "Certainly, done."]


def _content_words(text: str, limit: int, skip: frozenset[str] = STOPWORDS) -> list[str]:
    seen: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word not in skip and word not in seen and len(word) > 1:
            seen.append(word)
        if len(seen) == limit:
            break
    return seen


def _topic(question: str, limit: int = 4) -> str:
    words = _content_words(question, limit, FRAME_WORDS)
    return " ".join(words) if words else "this subject"


def new_question(seed_question: str, modification: str, rng: random.Random, max_words: int = 30) -> str:
    """A new question about the seed question's topic that follows the modification (3-30 words, ends in '?').

    Its variety comes from the seed's content words (up to 5) and hash-chosen opener and qualifiers (who,
    where, when: 40 x 40 x 40); shortened, when too long, by dropping qualifiers and topic words alternately.
    """
    topic_words = _content_words(seed_question, 5) or ["this subject"]
    clause = _PARENTHESES.sub("", modification).strip().rstrip(".")
    clause = _OR_ALTERNATIVE.sub("", re.sub(r"^asks\s+", "", clause, flags=re.IGNORECASE))
    openers = {"about": rng.choice(OPENERS_ABOUT), "for": rng.choice(OPENERS_FIND), "clause": rng.choice(OPENERS_CLAUSE)}
    qualifiers = [rng.choice(QUALIFIERS_WHO), rng.choice(QUALIFIERS_WHERE), rng.choice(QUALIFIERS_WHEN)]
    plans = sorted(((keep, count) for keep in range(1, len(topic_words) + 1) for count in range(4)), key=lambda p: -(p[0] + 1.5 * p[1]))
    for keep, count in plans:
        topic = " ".join(topic_words[:keep])
        if _THIS_THING.search(clause):
            body = _THIS_THING.sub(topic, clause, count=1)
        elif _BARE_THIS.search(clause):
            body = _BARE_THIS.sub(topic, clause, count=1)
        elif _IT.search(clause):
            body = _IT.sub(lambda m: f"{m.group(1)} {topic}", clause, count=1)
        else:
            body = f"{clause} for {topic}" if clause else topic
        first, _, rest = body.partition(" ")
        if first.lower() == "about" and rest:
            text = f"{openers['about']} {rest}"
        elif first.lower() == "for" and rest:
            text = f"{openers['for']} {rest}"
        elif first.lower() in {"how", "what", "which", "when", "why", "whether", "where", "who", "if"}:
            text = f"{openers['clause']} {body}"
        else:
            text = f"{openers['about']} {body}"
        text = _QUESTION_WORD.sub("topic", text)
        if count:
            text += ", " + " ".join(qualifiers[:count])
        if len(text.split()) <= max_words:
            return text[0].upper() + text[1:] + "?"
    return f"What should people know about {topic_words[0]}?"


def answer(question: str, bank: list[str], rng: random.Random) -> str:
    """Two or three sentences from ``bank`` about the question's topic."""
    topic = _topic(question)
    sentences = rng.sample(bank, rng.choice((2, 3, 3)))
    return " ".join(s.format(topic=topic, Topic=topic[0].upper() + topic[1:]) for s in sentences)


def mining_reply(text: str, rng: random.Random) -> str:
    match = _COUNT.search(text)
    count = min(50, int(match.group(1))) if match else 8
    topics = ["costs", "risks", "timing", "warning signs", "documents needed", "long-term effects", "alternatives",
              "first steps", "common mistakes", "who to contact", "daily routines", "typical duration"]  # fmt: skip
    return "\n".join(f"asks about the {t} of this situation" for t in rng.sample(topics, min(count, len(topics))))


def reply_for(messages: list[dict], rng: random.Random) -> tuple[str, str]:
    """(request kind, reply text) for a chat request."""
    system = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    user = " ".join(str(m.get("content") or "") for m in messages if m.get("role") != "system")
    tagged = _TAGGED_QUESTION.search(user)
    lowered = _TAGGED_QUESTION.sub(" ", system + "\n" + user).lower()  # the instructions, without the data
    modification = _MODIFICATION.search(user)
    if tagged and modification and "new question" in lowered:
        return "question", new_question(tagged.group(1), modification.group(1), rng)
    if "single digit" in lowered:
        return "judge", str(rng.randint(1, 5))
    if "yes or no" in lowered:
        return "judge", rng.choice(("Yes", "No"))
    if "one per line" in lowered and "asks" in lowered:
        return "mining", mining_reply(user, rng)
    if tagged and _REJECTED_CUE.search(lowered):
        return "rejected", answer(tagged.group(1), REJECTED_SENTENCES, rng)
    if tagged and "answer" in lowered:
        return "chosen", answer(tagged.group(1), CHOSEN_SENTENCES, rng)
    if re.search(r"\bsay ok\b", lowered):  # the client's readiness probe
        return "other", "OK"
    return "other", rng.choice(SHORT_SENTENCES)


def tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def request_digest(body: dict, sim_seed: int) -> bytes:
    """SHA-256 over what defines a request: messages, seed and sampling (not the model name)."""
    digest = hashlib.sha256()
    for message in body.get("messages") or []:
        digest.update(f"{message.get('role')}\x01{message.get('content')}\x02".encode())
    for key in ("seed", "temperature", "top_p", "max_tokens", "max_completion_tokens"):
        digest.update(f"{key}={body.get(key)!r}\x03".encode())
    digest.update(f"sim={sim_seed}".encode())
    return digest.digest()


# ------------------------------------------------------------------------------------------ scheduling

# vLLM's buckets for time to first token, and a wide set for request latencies
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]):
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break

    def lines(self, labels: str) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self.counts):
            running += count
            out.append(f'{self.name}_bucket{{{labels},le="{bound}"}} {float(running)}')
        out.append(f'{self.name}_bucket{{{labels},le="+Inf"}} {float(self.count)}')
        out.append(f"{self.name}_count{{{labels}}} {float(self.count)}")
        out.append(f"{self.name}_sum{{{labels}}} {self.sum}")
        return out


class Slot:
    """One request's place in its connection's answer order."""

    __slots__ = ("ready", "status", "body", "close", "content_type")

    def __init__(self, close: bool):
        self.ready, self.status, self.body, self.close, self.content_type = False, 0, b"", close, b"application/json"


class Job:
    __slots__ = ("arrived", "connection", "slot", "response_body", "latency", "completion_tokens", "kind", "finish")

    def __init__(self, connection: "Connection", slot: Slot, body: bytes, latency: float, completion_tokens: int, kind: str, finish: str):
        self.arrived = time.monotonic()
        self.connection, self.slot, self.response_body = connection, slot, body
        self.latency, self.completion_tokens, self.kind, self.finish = latency, completion_tokens, kind, finish


class Simulator:
    """The server state: FIFO queue, running batch, counters."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.model = args.model
        self.loop = asyncio.get_running_loop()
        self.waiting: deque[Job] = deque()
        self.running = 0
        self.connections = 0
        self.connections_opened = 0
        self.peaks = {"running": 0, "waiting": 0, "in_flight": 0, "connections": 0}
        self.by_kind: dict[str, dict[str, float]] = {}
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = {"stop": 0, "length": 0}
        self.errors = 0
        self.started = time.time()
        self.mono_offset = time.time() - time.monotonic()
        labels = f'model_name="{self.model}"'
        self.labels = labels
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", LATENCY_BUCKETS)
        self.queue_time = Histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", LATENCY_BUCKETS)  # fmt: skip

    # latency ---------------------------------------------------------------------------------
    def draw_latency(self, digest: bytes) -> float:
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        mean, sd = self.args.latency_mean, self.args.latency_sd
        dist = self.args.latency_dist
        if dist == "fixed" or mean <= 0:
            return max(0.0, mean)
        if dist == "uniform":
            half = sd * math.sqrt(3.0)
            return max(0.0, rng.uniform(mean - half, mean + half))
        sigma2 = math.log1p((sd / mean) ** 2)
        return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))

    # requests --------------------------------------------------------------------------------
    def chat(self, connection: "Connection", slot: Slot, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            messages = body["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
        except (ValueError, KeyError, TypeError) as exc:
            self.errors += 1
            connection.finish(slot, 400, _json({"object": "error", "message": f"bad request: {exc}", "type": "BadRequestError", "code": 400}))
            return
        if body.get("stream"):
            self.errors += 1
            connection.finish(slot, 400, _json({"object": "error", "message": "stream is not supported by the simulator", "code": 400}))
            return
        digest = request_digest(body, self.args.seed)
        kind, text = reply_for(messages, random.Random(int.from_bytes(digest[8:16], "big")))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and limit > 0 and tokens(text) > limit:
            text, finish = text[: 4 * limit], "length"
        prompt = sum(tokens(str(m.get("content") or "")) for m in messages)
        completion = tokens(text)
        response = _json({
            "id": "chatcmpl-" + digest[:12].hex(), "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        })  # fmt: skip
        self.prompt_tokens += prompt
        job = Job(connection, slot, response, self.draw_latency(digest), completion, kind, finish)
        stats = self.by_kind.setdefault(kind, {"requests": 0, "answered": 0, "latency_s": 0.0, "first_arrival": 0.0, "last_answer": 0.0})
        stats["requests"] += 1
        if not stats["first_arrival"]:
            stats["first_arrival"] = time.time()
        if self.args.max_batch is None or self.running < self.args.max_batch:
            self.start(job)
        else:
            self.waiting.append(job)
            self.peaks["waiting"] = max(self.peaks["waiting"], len(self.waiting))
        self.peaks["in_flight"] = max(self.peaks["in_flight"], self.running + len(self.waiting))

    def start(self, job: Job) -> None:
        self.running += 1
        self.peaks["running"] = max(self.peaks["running"], self.running)
        queued = time.monotonic() - job.arrived
        service = job.latency
        if self.args.token_rate:
            service += job.completion_tokens * self.running / self.args.token_rate
        self.ttft.observe(queued + service / (1 + job.completion_tokens))
        self.queue_time.observe(queued)
        self.loop.call_later(service, self.done, job)

    def done(self, job: Job) -> None:
        self.running -= 1
        self.success[job.finish] += 1
        self.generation_tokens += job.completion_tokens
        self.e2e.observe(time.monotonic() - job.arrived)
        stats = self.by_kind[job.kind]
        stats["answered"] += 1
        stats["latency_s"] += job.latency
        stats["last_answer"] = time.time()
        job.connection.finish(job.slot, 200, job.response_body)
        while self.waiting and (self.args.max_batch is None or self.running < self.args.max_batch):
            self.start(self.waiting.popleft())

    # reports ---------------------------------------------------------------------------------
    def metrics(self) -> bytes:
        labels = self.labels
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{labels}}} {float(self.running)}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} {float(len(self.waiting))}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            *(f'vllm:request_success_total{{finished_reason="{reason}",{labels}}} {float(n)}' for reason, n in self.success.items()),
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{labels}}} {float(self.prompt_tokens)}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{labels}}} {float(self.generation_tokens)}",
            *self.ttft.lines(labels),
            *self.e2e.lines(labels),
            *self.queue_time.lines(labels),
        ]  # fmt: skip
        return ("\n".join(lines) + "\n").encode()

    def stats(self) -> bytes:
        return _json({
            "started": self.started, "running": self.running, "waiting": len(self.waiting),
            "connections": self.connections, "connections_opened": self.connections_opened, "peaks": self.peaks, "by_kind": self.by_kind,
            "answered": sum(s["answered"] for s in self.by_kind.values()), "errors": self.errors,
            "prompt_tokens": self.prompt_tokens, "generation_tokens": self.generation_tokens,
            "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
            "config": {k: v for k, v in vars(self.args).items()},
        })  # fmt: skip


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------------ HTTP

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required"}


class HTTPConnection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies; pipelined requests are answered in order.

    Subclasses answer in ``route`` by calling ``finish`` for the request's slot, at once or later.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.pending: deque[Slot] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            request_line, _, header_text = head.partition("\r\n")
            headers = {}
            for line in header_text.split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                del self.buffer[:]
                slot = Slot(True)
                self.pending.append(slot)
                self.finish(slot, 411, _json({"message": "chunked bodies are not supported; send Content-Length"}))
                return
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            parts = request_line.split(" ")
            method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) >= 2 else ("", "")
            slot = Slot(headers.get("connection", "").lower() == "close")
            self.pending.append(slot)
            self.route(method, path, body, slot)

    def route(self, method: str, path: str, body: bytes, slot: Slot) -> None:
        raise NotImplementedError

    def finish(self, slot: Slot, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
        """Fill ``slot``; write every answer that is now first in line."""
        slot.ready, slot.status, slot.body, slot.content_type = True, status, body, content_type
        while self.pending and self.pending[0].ready:
            done = self.pending.popleft()
            if self.transport is None or self.transport.is_closing():
                continue
            head = f"HTTP/1.1 {done.status} {_REASONS.get(done.status, 'Error')}\r\nContent-Length: {len(done.body)}\r\n"
            tail = b"\r\nConnection: close\r\n\r\n" if done.close else b"\r\n\r\n"
            self.transport.write(head.encode() + b"Content-Type: " + done.content_type + tail + done.body)
            if done.close:
                self.transport.close()


class Connection(HTTPConnection):
    """One client connection to the simulator."""

    def __init__(self, sim: Simulator):
        super().__init__()
        self.sim = sim

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.sim.connections += 1
        self.sim.connections_opened += 1
        self.sim.peaks["connections"] = max(self.sim.peaks["connections"], self.sim.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.sim.connections -= 1

    def route(self, method: str, path: str, body: bytes, slot: Slot) -> None:
        if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            self.sim.chat(self, slot, body)
        elif method == "GET" and path == "/health":
            self.finish(slot, 200, b"")
        elif method == "GET" and path in ("/v1/models", "/models"):
            model = {"id": self.sim.model, "object": "model", "created": int(self.sim.started), "owned_by": "sim"}
            self.finish(slot, 200, _json({"object": "list", "data": [model]}))
        elif method == "GET" and path == "/metrics":
            self.finish(slot, 200, self.sim.metrics(), b"text/plain; version=0.0.4; charset=utf-8")
        elif method == "GET" and path == "/stats":
            self.finish(slot, 200, self.sim.stats())
        else:
            self.finish(slot, 404, _json({"object": "error", "message": f"{method} {path}: not found", "code": 404}))


async def serve(args: argparse.Namespace) -> None:
    sim = Simulator(args)
    server = await asyncio.get_running_loop().create_server(lambda: Connection(sim), args.host, args.port, backlog=8192)
    port = server.sockets[0].getsockname()[1]
    print(f"ready http://{args.host}:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model", default="sim", help="name in /v1/models and in /metrics labels")
    parser.add_argument("--latency-mean", type=float, default=1.0, help="seconds")
    parser.add_argument("--latency-dist", choices=["lognormal", "uniform", "fixed"], default="lognormal")
    parser.add_argument("--latency-sd", type=float, default=None, help="seconds (default: half the mean)")
    parser.add_argument("--max-batch", type=int, default=None, help="requests running at once; the rest queue (default: no limit)")
    parser.add_argument("--token-rate", type=float, default=None, help="tokens/s shared by the running batch (default: off)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.latency_sd is None:
        args.latency_sd = args.latency_mean / 2
    if args.max_batch is not None and args.max_batch < 1:
        parser.error("--max-batch must be at least 1")
    if args.token_rate is not None and args.token_rate <= 0:
        parser.error("--token-rate must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # one socket per request in flight
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    except (ValueError, OSError):
        pass
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
