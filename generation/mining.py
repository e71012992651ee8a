"""Mining a candidate modification list from a domain's questions, for experts to review.

Two passes, then a merge:

- **NLP pass** (no model): scikit-learn's ``CountVectorizer`` tokenises the sample and counts n-grams.
  *Question types* (``mining.question_types``: cue phrases such as "how long do have", "deadline" and the
  modification they suggest) that at least ``min_support`` questions share become candidates; so do the
  most frequent *key phrases*, through ``mining.phrase_modification``. Key phrases are counted by lemma
  (lemminflect's lexicon, shipped in its wheel), so inflections, compound spellings and rarer kinds of one
  phrase are one candidate (hive/hives/beehive), and only noun phrases fill the slot: never an adjective
  ("healthy"), a verb use ("how to treat") or a function word (:func:`key_phrase_candidates`).
- **LLM pass**: ``llm_rounds`` requests through the normal backend layer, each showing a seeded sample of
  questions with ``mining.prompt``; every reply line that reads as an instruction ("asks ...") is a
  candidate.
- **Merge**: candidates whose RapidFuzz token-set ratio reaches ``duplicate_ratio`` become one entry, with
  the union of their evidence.

Every entry of the output has ``text``, ``status: proposed``, ``reviewer``, ``note`` and ``evidence``
(``source`` nlp|llm|nlp+llm, ``count``, example ``questions``, and what matched). Settings the domain pack
leaves unset come from ``configs/mining/defaults.yaml``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import fuzz

from generation.config import BUNDLED_CONFIGS, MiningConfig, RunConfig, read_yaml_mapping
from generation.errors import ConfigError, InputDataError
from generation.io import read_csv_rows, write_text
from generation.steps.common import derive_seed, strip_preamble

log = logging.getLogger(__name__)

MINING_DEFAULTS = BUNDLED_CONFIGS / "mining" / "defaults.yaml"
WH_WORDS = {"what", "whats", "how", "why", "when", "where", "which", "who", "whom", "whose", "can", "could", "should", "would",
            "is", "are", "do", "does", "did", "will", "may", "might", "must"}  # fmt: skip
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]+|\(?\d+[.):]|[a-z][.)])\s*", re.IGNORECASE)
_ASK = re.compile(r"^(?:(?:the )?(?:new )?question |it )?(asks?|asking)\b\s*", re.IGNORECASE)
_ASK_CLAUSE = re.compile(r"\b(?:asks?|asking)\s+((?:about|how|what|whether|which|when|why|who|if|for)\b[^.;:!?,\n]*)", re.IGNORECASE)
_WRAPPERS = "\"'“”‘’`*_ "


@dataclass
class Candidate:
    """One proposed modification with the evidence behind it."""

    text: str
    source: str  # "nlp", "llm" or "nlp+llm"
    count: int  # questions with the structure/phrase (nlp), or times proposed (llm)
    questions: list[str]
    matched: list[str] = field(default_factory=list)  # e.g. "question_type:deadline", "phrase:security deposit", "llm"
    llm_proposals: int = 0


# ----------------------------------------------------------------------------------------- settings


def mining_settings(cfg: RunConfig) -> MiningConfig:
    """The run's ``mining`` section with unset texts (prompt, question types, ...) from configs/mining/defaults.yaml."""
    data = read_yaml_mapping(MINING_DEFAULTS).get("mining") or {}
    try:
        defaults = MiningConfig.model_validate(data)
    except Exception as exc:  # a broken bundled file: name it
        raise ConfigError(f"{MINING_DEFAULTS}: mining: {str(exc).splitlines()[0]}") from None
    updates = {
        name: getattr(defaults, name)
        for name in ("prompt", "question_types", "phrase_modification", "ignore_words")
        if getattr(cfg.mining, name) is None
    }
    mining = cfg.mining.model_copy(update=updates)
    if mining.min_words > mining.max_words:
        raise ConfigError("mining.min_words must not exceed mining.max_words")
    if mining.phrase_modification is not None and "{phrase}" not in mining.phrase_modification:
        raise ConfigError("mining.phrase_modification: must contain {phrase}")
    return mining


def read_sample(path: Path, column: str = "question") -> list[str]:
    """The distinct non-empty questions of a CSV sample (first occurrence kept, case-insensitive)."""
    rows = read_csv_rows(path, [column])
    seen: set[str] = set()
    questions = []
    for row in rows:
        text = " ".join(row[column].split())
        if text and text.lower() not in seen:
            seen.add(text.lower())
            questions.append(text)
    if len(questions) < 2:
        raise InputDataError(f"{path}: need at least 2 distinct questions to mine, found {len(questions)}")
    return questions


# ----------------------------------------------------------------------------------------- NLP pass


def _analyzer_tokens(text: str) -> list[str]:
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(lowercase=True).build_analyzer()(text)


@functools.lru_cache(maxsize=1)
def _word_analyzer() -> Any:
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b").build_analyzer()


def words_of(text: str) -> list[str]:
    """Lower-cased words, one-letter words included ("i", "a": they show how the next word is used)."""
    return _word_analyzer()(text)


def question_type_candidates(questions: list[str], mining: MiningConfig) -> list[Candidate]:
    """Question structures (cue phrases as contiguous n-grams) shared by at least ``min_support`` questions."""
    from sklearn.feature_extraction.text import CountVectorizer

    types = mining.question_types or []
    if not types:
        return []
    cue_grams = {t.name: [" ".join(_analyzer_tokens(cue)) for cue in t.cues] for t in types}
    longest = max((len(g.split()) for grams in cue_grams.values() for g in grams if g), default=1)
    vectorizer = CountVectorizer(lowercase=True, binary=True, ngram_range=(1, max(1, longest)))
    matrix = vectorizer.fit_transform(questions).tocsc()
    vocabulary = vectorizer.vocabulary_
    candidates = []
    for qtype in types:
        rows: set[int] = set()
        cues_seen = []
        for gram in cue_grams[qtype.name]:
            column = vocabulary.get(gram)
            if gram and column is not None:
                hits = matrix[:, column].nonzero()[0]
                if len(hits):
                    rows.update(int(i) for i in hits)
                    cues_seen.append(gram)
        if len(rows) >= mining.min_support:
            ordered = [questions[i] for i in sorted(rows)]
            candidates.append(Candidate(qtype.modification, "nlp", len(rows), ordered, [f"question_type:{qtype.name}"] + [f"cue:{c}" for c in cues_seen]))
    candidates.sort(key=lambda c: -c.count)
    return candidates


# Closed grammatical classes that show how a word is used: after a determiner, a word that ends its phrase
# is a noun ("a cold", "the deposit"); after a subject pronoun it is a verb ("how do i file", "can it spread"),
# and so it is after "to" when no noun follows ("to file for", "to treat it"; not "to pressure vessel design").
DETERMINERS = frozenset("a an the my your his her its our their this that these those some any no every each".split())
SUBJECT_PRONOUNS = frozenset("i you we they he she it".split())


class Lexicon:
    """Part-of-speech readings and lemmas of English words from lemminflect's lexicon (shipped in its wheel).

    A word's readings are the universal POS tags the lexicon lists for it (``{"NOUN": ("hive",), "VERB":
    ...}``); a word the lexicon does not know (domain terms, names, abbreviations) is taken as a noun.
    """

    def __init__(self, stop_words: frozenset[str]):
        import lemminflect

        self._lemmas = lemminflect.getAllLemmas
        self._oov = lemminflect.getAllLemmasOOV
        self.stop_words = stop_words
        self._cache: dict[str, dict[str, tuple[str, ...]]] = {}

    def readings(self, word: str) -> dict[str, tuple[str, ...]]:
        if word not in self._cache:
            found = dict(self._lemmas(word)) if not word.isdigit() else {}
            if not found and word not in self.stop_words and not word.isdigit():
                found = {"NOUN": tuple(self._oov(word, "NOUN").get("NOUN") or (word,))}
            self._cache[word] = found
        return self._cache[word]

    def lemma(self, word: str, vocabulary: set[str] | frozenset[str] = frozenset()) -> str:
        """The word's base form, as a noun when it can be one ("hives" -> "hive", "treated" -> "treat"); of
        several ("leaves" -> leave, leaf) the one ``vocabulary`` (the sample's words) has, else the first."""
        if word in self.stop_words:
            return word
        found = self.readings(word)
        for pos in ("NOUN", "PROPN", "VERB", "ADJ", "ADV", "AUX"):
            if found.get(pos):
                return next((lemma for lemma in found[pos] if lemma in vocabulary), found[pos][0])
        return word

    def has(self, word: str, pos: str) -> bool:
        return bool(self.readings(word).get(pos)) and word not in self.stop_words

    def is_nominal(self, word: str) -> bool:
        """Can head a noun phrase: a noun reading, a gerund ("swarming"), or an unknown word; no function word."""
        return self.has(word, "NOUN") or self.has(word, "PROPN") or (word.endswith("ing") and self.has(word, "VERB"))


@dataclass
class WordUse:
    """How a sample uses one word: as a noun, before a noun (adjective-like), as a verb."""

    noun: int = 0
    modifier: int = 0
    verb: int = 0


def word_uses(tokenised: list[list[str]], lexicon: Lexicon) -> dict[str, WordUse]:
    """How the sample uses each word, in one pass over it."""
    uses: dict[str, WordUse] = {}
    nominal: dict[str, bool] = {}
    for tokens in tokenised:
        for i, token in enumerate(tokens):
            previous = tokens[i - 1] if i else None
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is not None and following not in nominal:
                nominal[following] = lexicon.is_nominal(following)
            before_noun = following is not None and nominal[following]
            use = uses.setdefault(token, WordUse())
            if previous in SUBJECT_PRONOUNS or (previous == "to" and not before_noun):
                use.verb += 1
            elif before_noun:
                use.modifier += 1
            elif previous in DETERMINERS:
                use.noun += 1
    return uses


def key_phrase_candidates(questions: list[str], mining: MiningConfig) -> list[Candidate]:
    """The most frequent 1-3 word key phrases (document frequency >= ``min_support``) as candidates.

    Phrases are counted by lemma (lemminflect), so inflections and spellings of one phrase are one
    candidate ("hive" and "hives"; "bee hive" and "beehive"), shown in the sample's most frequent form. A
    phrase fills the slot of ``phrase_modification`` only when it is a noun phrase: no function word at
    either end, every word a noun or an adjective, and a last word that can be a noun. A last word that
    can also be an adjective ("healthy", "normal", "cold") needs the sample to use it as a noun ("a cold")
    at least as often as before a noun; one that can also be a verb ("file", "treat") must not be used as a
    verb ("how to treat") more often than as a noun.
    """
    from collections import Counter, defaultdict

    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    if not mining.phrase_modification or mining.max_phrases == 0:
        return []
    stop = frozenset(ENGLISH_STOP_WORDS) | WH_WORDS | DETERMINERS
    lexicon = Lexicon(stop)
    ignore = {w.lower() for w in (mining.ignore_words or [])}
    ignore |= {lexicon.lemma(w) for w in ignore}
    tokenised = [words_of(q) for q in questions]
    vocabulary = frozenset(w for tokens in tokenised for w in tokens)
    cues = {" ".join(lexicon.lemma(t) for t in words_of(cue)) for qt in (mining.question_types or []) for cue in qt.cues}

    # lemma n-grams -> the questions that have them and the surface forms seen; "bee hive" = "beehive"
    rows_of: dict[str, set[int]] = defaultdict(set)
    surfaces: dict[str, Counter[str]] = defaultdict(Counter)
    spaced: dict[str, str] = {}
    for row, tokens in enumerate(tokenised):
        lemmas = [lexicon.lemma(t, vocabulary) for t in tokens]
        for size in (1, 2, 3):
            for i in range(len(tokens) - size + 1):
                key = " ".join(lemmas[i : i + size])
                compact = key.replace(" ", "")
                spaced.setdefault(compact, key)
                rows_of[compact].add(row)
                surfaces[compact][" ".join(tokens[i : i + size])] += 1

    uses = word_uses(tokenised, lexicon)

    def is_noun_phrase(words: list[str]) -> bool:
        head = words[-1]
        if words[0] in stop or head in stop or not lexicon.is_nominal(head):
            return False
        if lexicon.has(head, "ADJ") or (lexicon.has(head, "VERB") and not head.endswith("ing")):
            use = uses[head]
            if lexicon.has(head, "ADJ") and (use.noun == 0 or use.modifier > use.noun):
                return False
            if use.verb > use.noun:
                return False
        return all(lexicon.is_nominal(w) or lexicon.has(w, "ADJ") for w in words[:-1])

    phrases: dict[str, tuple[str, int]] = {}  # compact lemma key -> (shown form, questions)
    for compact, rows in rows_of.items():
        if len(rows) < mining.min_support:
            continue
        shown = min(surfaces[compact].items(), key=lambda item: (-item[1], len(item[0]), item[0]))[0]
        words = shown.split()
        lemmas = [lexicon.lemma(w, vocabulary) for w in words]
        if spaced[compact] in cues or all(w in ignore or w.isdigit() for w in lemmas):
            continue
        if {words[0], words[-1], lemmas[0], lemmas[-1]} & ignore or not is_noun_phrase(words):
            continue
        phrases[compact] = (shown, len(rows))
    # a phrase mostly seen inside a longer one ("deposit" in "security deposit") adds nothing: drop it
    inside: set[str] = set()
    for compact, (_, df) in phrases.items():
        words = spaced[compact].split()
        for size in range(1, len(words)):
            for i in range(len(words) - size + 1):
                part = "".join(words[i : i + size])
                if part in phrases and df >= 0.75 * phrases[part][1]:
                    inside.add(part)
    kept = {compact: shown for compact, (shown, _) in phrases.items() if compact not in inside}
    # a rarer kind of a kept phrase joins it: same last words ("varroa mites" of "mites"), or a compound of a
    # sample word and it ("beehive" of "hive", when "bee" is a word of the sample)
    def general_of(compact: str) -> str | None:
        words = spaced[compact].split()
        for i in range(len(words) - 1, 0, -1):
            if "".join(words[i:]) in heads:
                return "".join(words[i:])
        for i in range(len(compact) - 1, 2, -1):
            modifier = compact[:i]
            if compact[i:] in heads and modifier in vocabulary and (lexicon.is_nominal(modifier) or lexicon.has(modifier, "ADJ")):
                return compact[i:]
        return None

    heads: set[str] = set()
    members: dict[str, list[str]] = {}
    for compact in sorted(kept, key=lambda k: (len(spaced[k].split()), len(k), k)):
        general = general_of(compact)
        if general is None:
            heads.add(compact)
            members[compact] = [compact]
        else:
            members[general].append(compact)
    groups = []
    for compact, joined in members.items():
        rows = sorted(set().union(*(rows_of[k] for k in joined)))
        groups.append((kept[compact], rows, [kept[k] for k in joined]))
    groups.sort(key=lambda group: (-len(group[1]), -len(group[0].split()), group[0]))
    candidates = []
    for shown, rows, forms in groups[: mining.max_phrases]:
        text = mining.phrase_modification.format(phrase=shown)
        candidates.append(Candidate(text, "nlp", len(rows), [questions[i] for i in rows], [f"phrase:{form}" for form in forms]))
    return candidates


def nlp_candidates(questions: list[str], mining: MiningConfig) -> list[Candidate]:
    """The NLP pass: question types, then key phrases."""
    return question_type_candidates(questions, mining) + key_phrase_candidates(questions, mining)


# ----------------------------------------------------------------------------------------- LLM pass


def _instructions_in(line: str) -> list[str]:
    """"asks ..." instructions in one reply line: the whole line when it is one (list items), else every
    "asks about/how/whether ..." clause inside prose, up to the next punctuation."""
    text = _LIST_MARKER.sub("", line).strip().strip(_WRAPPERS).rstrip(".;:,!").strip(_WRAPPERS).strip()
    match = _ASK.match(text)
    if match:
        return [text[match.end() :].strip()]
    return [m.group(1).strip() for m in _ASK_CLAUSE.finditer(line)]


def parse_proposals(raw: str, mining: MiningConfig, preamble_patterns: list[str] | None = None) -> list[str]:
    """Instructions ("asks ...") out of a model reply, normalised; anything else is dropped."""
    proposals = []
    for line in raw.splitlines():
        line = strip_preamble(_LIST_MARKER.sub("", line), preamble_patterns or [])
        for rest in _instructions_in(line):
            _add_proposal(proposals, f"asks {rest}", mining)
    return proposals


def _add_proposal(proposals: list[str], text: str, mining: MiningConfig) -> None:
    text = text.rstrip(".;:,!").strip()
    words = len(text.split())
    if not (mining.min_words <= words <= mining.max_words):
        return
    if any(ch in text for ch in "?<>{}[]") or "\t" in text:
        return
    if text.lower() not in {p.lower() for p in proposals}:
        proposals.append(text)


async def llm_candidates(
    questions: list[str], cfg: RunConfig, mining: MiningConfig, client: Any, domain: str, scrubber: Any = None
) -> list[Candidate]:  # fmt: skip
    """The LLM pass: ``llm_rounds`` requests (:class:`generation.steps.mining.MiningStep` through the streaming
    runner), each over a seeded sample of the questions (replies PII-scrubbed)."""
    from generation.run.runner import run_rows
    from generation.steps.mining import MiningStep

    if mining.prompt is None or mining.llm_rounds == 0:
        return []
    await client.check_ready()
    rounds = []
    for round_index in range(mining.llm_rounds):
        rng = random.Random(derive_seed(cfg.seed, "mining-sample", round_index))
        rounds.append({"round": round_index, "questions": rng.sample(questions, min(mining.questions_per_round, len(questions)))})
    finished, _ = await run_rows([MiningStep(cfg, mining, domain)], client, rounds, scrubber=scrubber, input_fields=("round", "questions"))
    candidates = []
    for row in finished:
        proposals = row.fields["proposals"]
        log.info("mining: LLM round %d proposed %d usable instruction(s)", row["round"] + 1, len(proposals))
        for text in proposals:
            candidates.append(Candidate(text, "llm", 1, list(row["questions"]), ["llm"], llm_proposals=1))
    return candidates


# -------------------------------------------------------------------------------------------- merge


FRAME_WORDS = {"asks", "ask", "question", "questions", "situation", "new", "person", "people"}


def content_words(text: str, frame: str = "") -> str:
    """The words that carry an instruction's meaning: no stop words, no frame words ("asks", "situation")
    and none of the words of ``frame`` (e.g. the key-phrase template)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    drop = set(ENGLISH_STOP_WORDS) | FRAME_WORDS | set(_analyzer_tokens(frame.replace("{phrase}", " ")))
    return " ".join(t for t in _analyzer_tokens(text) if t not in drop)


def similarity(a: str, b: str, frame: str = "") -> float:
    """RapidFuzz token-set ratio of two instructions' content words (whole texts if one has none)."""
    ca, cb = content_words(a, frame), content_words(b, frame)
    if not ca or not cb:
        return fuzz.token_set_ratio(a.lower(), b.lower())
    return fuzz.token_set_ratio(ca, cb)


def merge_candidates(candidates: list[Candidate], ratio: float, frame: str = "") -> list[Candidate]:
    """Fold near-duplicates (token-set ratio of content words >= ``ratio``) into the first of them.

    Two NLP candidates never merge: distinct question types and phrases are distinct by construction.
    """
    merged: list[Candidate] = []
    for cand in candidates:
        twin = next(
            (m for m in merged if not (m.source == cand.source == "nlp") and similarity(m.text, cand.text, frame) >= ratio), None
        )  # fmt: skip
        if twin is None:
            merged.append(Candidate(cand.text, cand.source, cand.count, list(cand.questions), list(cand.matched), cand.llm_proposals))
            continue
        had_nlp = "nlp" in twin.source
        if cand.source == "nlp":  # count = sample questions showing it, whenever the NLP pass saw it
            twin.count = max(twin.count, cand.count) if had_nlp else cand.count
        elif not had_nlp:  # LLM only: count = times proposed
            twin.count += cand.count
        sources = set(twin.source.split("+")) | set(cand.source.split("+"))
        twin.source = "+".join(s for s in ("nlp", "llm") if s in sources)
        twin.llm_proposals += cand.llm_proposals
        twin.questions += [q for q in cand.questions if q not in twin.questions]
        twin.matched += [m for m in cand.matched if m not in twin.matched]
    return merged


def to_entries(candidates: list[Candidate], mining: MiningConfig, existing: list[str]) -> list[dict[str, Any]]:
    """Reviewable entries: ``status: proposed``, no reviewer, a note when the pack already has a similar entry."""
    entries = []
    for cand in candidates:
        similar = next((e for e in existing if similarity(e, cand.text, mining.phrase_modification or "") >= mining.duplicate_ratio), None)
        evidence: dict[str, Any] = {"source": cand.source, "count": cand.count, "questions": cand.questions[: mining.max_evidence]}
        evidence["matched"] = cand.matched
        if cand.llm_proposals:
            evidence["llm_proposals"] = cand.llm_proposals
        entries.append({
            "text": cand.text, "status": "proposed", "reviewer": None,
            "note": f"similar to the pack's current entry: {similar}" if similar else None, "evidence": evidence,
        })  # fmt: skip
    return entries


REVIEW_HEADER = """\
# Candidate modification list mined by `synthgen mine-modifications`.
# Review every entry: set status to approved or rejected, put your name in reviewer and a reason in note;
# edit text freely. evidence shows where an entry came from (source nlp|llm|nlp+llm), how many sample
# questions showed it (count; for LLM-only entries, how many times it was proposed) and examples.
# Runs use approved entries only: point a pack or run config at this file (modifications: PATH) or copy
# the entries into a pack's modifications list; --set modifications_include=[approved,proposed] tries
# the unreviewed list.
"""


def mine(
    cfg: RunConfig, sample: Path, output: Path, use_llm: bool = True, domain_label: str | None = None,
    existing: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run both passes on ``sample`` and write the reviewable YAML to ``output``; returns the document."""
    from generation.pii import scrub_texts, scrubber_for

    mining = mining_settings(cfg)
    scrubber = scrubber_for(cfg.privacy.pii)
    # PII is masked before anything sees the questions: the NLP pass, the model and the evidence written out
    questions, masked = scrub_texts(read_sample(sample), scrubber)
    pack = cfg.domain_pack
    domain = domain_label or (pack.name if pack else Path(cfg.domain).stem)
    domain_text = (pack.description or pack.name) if pack else domain  # {domain} in the mining prompt
    candidates = nlp_candidates(questions, mining)
    log.info("mining: NLP pass found %d candidate(s) in %d questions", len(candidates), len(questions))
    usage: dict[str, Any] = {}
    if use_llm:
        if mining.prompt is None:
            raise ConfigError("mining.prompt: no LLM prompt configured (set it in the domain pack, or use --no-llm)")
        llm, usage = _run_llm_pass(questions, cfg, mining, domain_text, output, scrubber)
        candidates += llm
    entries = to_entries(merge_candidates(candidates, mining.duplicate_ratio, mining.phrase_modification or ""), mining, existing or [])
    document = {
        "domain": domain,
        "sample": str(sample),
        "questions": len(questions),
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": cfg.backend.model if use_llm else None,
        "pii_masked": dict(sorted(masked.items())),
        "modifications": entries,
    }
    write_text(output, REVIEW_HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100))
    document["usage"] = usage
    return document


def _run_llm_pass(
    questions: list[str], cfg: RunConfig, mining: MiningConfig, domain: str, output: Path, scrubber: Any = None
) -> tuple[list[Candidate], dict[str, Any]]:  # fmt: skip
    """Start the model (embedded server or endpoints) like a run does, and ask it."""
    from generation.backends.client import LLMClient
    from generation.pipeline import RunPaths, preflight, primary_endpoint

    preflight(cfg)
    paths = RunPaths(output.resolve().parent / f".{output.stem}-mining")
    with primary_endpoint(cfg, paths) as base_url:

        async def run() -> tuple[list[Candidate], dict[str, Any]]:
            async with LLMClient(cfg.backend, base_url, cfg.retry, cfg.fallback, None) as client:
                found = await llm_candidates(questions, cfg, mining, client, domain, scrubber)
                return found, client.usage_summary()

        return asyncio.run(run())
