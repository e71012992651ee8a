"""Do two answers make the same claims? Cues that compare claims, not topics.

A sentence-embedding similarity says two answers are about the same thing; it scores a contradiction as
high as a paraphrase. :func:`compare_claims` therefore looks for evidence in both directions:

* **differ** cues: opposite answers to a yes/no question (said in the first words, or implied by an opening
  sentence that restates the question, negated or not); aligned sentences (the rejected sentence and the
  chosen sentence that share most content) that differ by a negation, by an antonym or opposite quantifier
  (``configs/eval/lexicon.yaml``, or a negating prefix: safe/unsafe), by the numbers they state, or by a
  substitution (the same frame with a few content words replaced by words of another meaning: "made in the
  skin" / "made in the stomach"); recommended actions of the rejected answer that the chosen answer does not
  recommend.
* **agree** evidence: the same yes/no answer, and rejected sentences that each have a close counterpart in
  the chosen answer (high similarity *and* shared content words).

``rejected_agrees`` is raised only on agree evidence with no differ cue (:attr:`ClaimComparison.agrees`).
More evidence (e.g. a judge's "do these answers make the same claims?") can be passed in as extra
:class:`Cue` objects and weighs like the others.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from generation.config import BUNDLED_CONFIGS, read_yaml_mapping

LEXICON_FILE = BUNDLED_CONFIGS / "eval" / "lexicon.yaml"

# Negation cues: a closed grammatical class of English.
NEGATIONS = frozenset(
    "not no never cannot can't cant don't dont doesn't doesnt isn't isnt aren't arent won't wont wasn't "
    "weren't shouldn't wouldn't couldn't hasn't haven't didn't neither nor none nothing without".split()
)
# Closed-class function words (grammar, not content).
FUNCTION_WORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that these "
    "those there their they them he she his her we our you your i my me which who whom whose what when where how why "
    "do does did has have had can could may might will would should must shall also often usually very more most "
    "each every any some such than then so because while about into over after before during can also just other "
    "one ones like well may might even still only many much few both either whether its it's they're you're there's "
    "s t re ve ll d".split()
)
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty sixty "
    "hundred thousand million billion half once twice".split()
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_POLAR_START = re.compile(
    r"^\s*(is|are|was|were|am|can|could|do|does|did|should|would|will|may|might|must|has|have|had|isn't|aren't|"
    r"doesn't|don't|can't|shouldn't)\b",
    re.IGNORECASE,
)
# An advice sentence: an imperative opening, or "you should/must/need to ...", "it is best to ...".
_ADVICE = re.compile(
    r"^\s*(?:(?:you|they|people|patients|one) (?:should|must|need to|have to|ought to)|it is (?:best|important|"
    r"recommended|advisable|wise|essential) to|(?:try|make sure|be sure) to|(?:always|never|do not|don't) )?\s*"
    r"(?P<verb>[a-z]+)\b",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (apostrophes kept inside words)."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def sentences(text: str) -> list[str]:
    """Split text into sentences on ., ! and ? followed by space, and on line breaks."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


@functools.lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball (Porter 2) stem of a lower-case word."""
    return _stemmer().stemWord(word)


@dataclass(frozen=True)
class Lexicon:
    """Stemmed opposites, negating prefixes and yes/no answer words (configs/eval/lexicon.yaml)."""

    opposites: dict[str, frozenset[str]]
    prefixes: tuple[str, ...]
    yes_words: tuple[str, ...]
    no_words: tuple[str, ...]
    verbs: frozenset[str] = frozenset()  # stems that appear in a pair: words whose polarity can flip

    def opposite(self, a: str, b: str) -> bool:
        """Whether stems ``a`` and ``b`` are opposites (listed, or one is the other with a negating prefix)."""
        if b in self.opposites.get(a, ()):
            return True
        for prefix in self.prefixes:
            if (a == prefix + b or b == prefix + a) and len(min(a, b, key=len)) >= 4:
                return True
        return False

    def flipped(self, a: str, b: str, a_negated: Collection[str] = (), b_negated: Collection[str] = ()) -> bool:
        """Whether ``a`` and ``b`` state opposite things: opposites, each negated or neither (``*_negated``: the
        stems under a negation on that side). "not incorrect" against "correct" says the same thing."""
        return self.opposite(a, b) and (a in a_negated) == (b in b_negated)


@functools.lru_cache(maxsize=4)
def load_lexicon(path: Path = LEXICON_FILE, extra: tuple[tuple[str, str], ...] = ()) -> Lexicon:
    """The bundled lexicon (plus ``extra`` opposite pairs from a config)."""
    data = read_yaml_mapping(path)
    opposites: dict[str, set[str]] = {}
    pairs = [*(data.get("antonyms") or []), *(data.get("quantifier_opposites") or []), *extra]
    for pair in pairs:
        a, b = (stem(str(w).lower()) for w in pair)
        opposites.setdefault(a, set()).add(b)
        opposites.setdefault(b, set()).add(a)
    answers = data.get("answer_words") or {}
    return Lexicon(
        {k: frozenset(v) for k, v in opposites.items()},
        tuple(data.get("negating_prefixes") or ()),
        tuple(answers.get("yes") or ()),
        tuple(answers.get("no") or ()),
        frozenset(opposites),
    )


@dataclass(frozen=True)
class Cue:
    """One piece of evidence: ``says`` is "differ" or "agree"; ``text`` is what the evidence column shows."""

    kind: str
    says: str
    text: str


@dataclass
class ClaimComparison:
    """The cues found for one chosen/rejected pair and the verdict."""

    cues: list[Cue] = field(default_factory=list)
    support: float = 0.0  # mean similarity of each rejected sentence to its closest chosen sentence
    coverage: float = 0.0  # share of the rejected answer's content words (beyond the question's) found in the chosen answer

    @property
    def differs(self) -> list[Cue]:
        return [c for c in self.cues if c.says == "differ"]

    @property
    def agrees(self) -> bool:
        """No differ cue, and agree evidence beyond a shared yes/no (which alone says nothing of the rest)."""
        return not self.differs and any(c.says == "agree" and c.kind != "yes_no" for c in self.cues)

    def evidence(self) -> str:
        return "; ".join(c.text for c in (self.cues if self.agrees else self.differs))


def content_stems(text: str) -> list[str]:
    """Stems of the content words of ``text`` (function words, negations and numbers left out)."""
    return [stem(w) for w in words(text) if w not in FUNCTION_WORDS and w not in NEGATIONS and not w.isdigit()]


def numbers(text: str) -> set[str]:
    """The numbers a text states (digits, and number words)."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)} | (set(words(text)) & NUMBER_WORDS)


def negated_stems(text: str, reach: int = 1) -> set[str]:
    """Stems of the first ``reach`` content words after each negation, within five words ("do not treat" ->
    treat, "is not contagious" -> contagi, "without the structure cracking" -> structur (reach 2: + crack))."""
    tokens = words(text)
    out = set()
    for i, token in enumerate(tokens):
        if token in NEGATIONS:
            found = [t for t in tokens[i + 1 : i + 6] if t not in FUNCTION_WORDS and t not in NEGATIONS][:reach]
            out.update(stem(t) for t in found)
    return out


def negation_flip(a: str, b: str, a_stems: set[str], b_stems: set[str]) -> str | None:
    """A word negated in one sentence and asserted in the other (present there, not in a negation's reach), or None."""
    head_a, head_b = negated_stems(a), negated_stems(b)
    reach_a, reach_b = negated_stems(a, 2), negated_stems(b, 2)
    for word in sorted((head_a & b_stems) - reach_b):
        return word
    for word in sorted((head_b & a_stems) - reach_a):
        return word
    return None


def is_polar_question(question: str) -> bool:
    """A yes/no question: it opens with an auxiliary or modal verb ("is", "can", "should"...)."""
    return bool(_POLAR_START.match(question))


_ANNOUNCE = re.compile(r"^(?:the )?(?:short |simple |quick )?answer(?: to (?:this|the|your) question)? is:? ", re.IGNORECASE)


def answer_polarity(answer: str, lexicon: Lexicon) -> str | None:
    """"yes" or "no" when the answer opens by committing to one (its first words, after an announcing "The answer
    is"), else None."""
    head = _ANNOUNCE.sub("", " ".join(words(answer)[:10]))
    head = " ".join(head.split()[:4])
    for label, options in (("no", lexicon.no_words), ("yes", lexicon.yes_words)):
        for option in sorted(options, key=len, reverse=True):
            if head == option or head.startswith(option + " "):
                return label
    return None


def implicit_polarity(question: str, answer: str, lexicon: Lexicon) -> tuple[str, str] | None:
    """("yes"/"no", sentence) when one of the answer's first two sentences restates the yes/no question's claim
    (its last content word, where English puts the predicate of "is X contagious", and all its other content
    words but one), asserted ("yes") or negated ("no": a negation count of other parity than the question's);
    None when no opening sentence restates it."""
    ordered = content_stems(question)
    asked = set(ordered)
    if len(asked) < 2:
        return None
    asked_negated = sum(w in NEGATIONS for w in words(question)) % 2
    for sentence in sentences(answer)[:2]:
        said = set(content_stems(sentence))
        if ordered[-1] in said and len(asked - said) <= (1 if len(asked) >= 4 else 0):
            negated = sum(w in NEGATIONS for w in words(sentence)) % 2
            return ("no" if negated != asked_negated else "yes"), sentence
    return None


def polarity(question: str, answer: str, lexicon: Lexicon) -> tuple[str, str] | None:
    """How an answer answers a yes/no question: (label, how) from its opening words, else from an opening
    sentence that restates the question; None when it does neither."""
    explicit = answer_polarity(answer, lexicon)
    if explicit:
        return explicit, "opens with it"
    implicit = implicit_polarity(question, answer, lexicon)
    if implicit:
        return implicit[0], f"restates the question {'negated' if implicit[0] == 'no' else 'asserted'}: {implicit[1][:60]!r}"
    return None


def substitution(rejected: str, chosen: str, similar: Callable[[str, str], float], same_min: float = 0.6) -> tuple[str, str] | None:
    """Two sentences in the same frame that differ in a word or two ("made in the skin" / "made in the
    stomach"): (rejected words, chosen words) of the first such replacement whose meanings differ (similarity
    of the two below ``same_min``, so "tiredness"/"fatigue" is no substitution), or None. The frame: at least
    five words in matching order covering 55% of the longer sentence (a paraphrase rewords more than that)."""
    r, c = words(rejected), words(chosen)
    matcher = difflib.SequenceMatcher(None, r, c, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    if matched < 5 or matched < 0.55 * max(len(r), len(c)):
        return None
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace" or i2 - i1 > 2 or j2 - j1 > 2:
            continue
        r_span, c_span = r[i1:i2], c[j1:j2]
        if not content_stems(" ".join(r_span)) or not content_stems(" ".join(c_span)):
            continue  # a function word changed ("a" / "the"), or a number (the number cue sees those)
        if {stem(w) for w in r_span} == {stem(w) for w in c_span}:
            continue  # the same words inflected otherwise
        if similar(" ".join(r_span), " ".join(c_span)) < same_min:
            return " ".join(r_span), " ".join(c_span)
    return None


def _opposite_pair(
    a_stems: set[str], b_stems: set[str], lexicon: Lexicon, a_negated: set[str] = frozenset(), b_negated: set[str] = frozenset()
) -> tuple[str, str] | None:
    """A stem that only one side has, whose opposite the other side has ("prices fall" vs "prices rise"), by
    :meth:`Lexicon.flipped` (an opposite under a negation on one side only does not count)."""
    for x in sorted(a_stems - b_stems):
        for y in sorted(b_stems):
            if lexicon.flipped(x, y, a_negated, b_negated):
                return x, y
    for y in sorted(b_stems - a_stems):
        for x in sorted(a_stems):
            if lexicon.flipped(x, y, a_negated, b_negated):
                return x, y
    return None


_STOPPING = frozenset("stop avoid quit skip never don't dont not no cease".split())


def advice_stems(text: str) -> dict[str, bool]:
    """The main verbs and objects of the advice sentences of ``text`` ("Rinse with salt water"), each stem
    mapped to False when the advice is to stop or avoid it ("stop brushing", "avoid sugar"), else True."""
    out: dict[str, bool] = {}
    for sentence in sentences(text):
        match = _ADVICE.match(sentence)
        if not match:
            continue
        verb = match.group("verb").lower()
        opener = sentence[: match.start("verb")].strip()
        if not opener and (verb in FUNCTION_WORDS or verb.endswith(("ing", "ed", "s")) or verb in NEGATIONS):
            continue  # not an imperative ("Eating...", "Antibiotics...", "The...")
        for clause in re.split(r",|;|\band\b|\bor\b", sentence[match.start("verb") :]):
            tokens = words(clause)
            stopping = bool(tokens) and tokens[0] in _STOPPING or words(opener)[-1:] in (["never"], ["not"])
            for stem_ in content_stems(clause)[:3]:
                if stem_ not in {stem(w) for w in _STOPPING}:
                    out.setdefault(stem_, not stopping)
    return out


def lexicon_stems(text: str, lexicon: Lexicon) -> set[str]:
    """Stems of the words of ``text`` that have an opposite in the lexicon, function words included ("often")."""
    return {s for s in (stem(w) for w in words(text)) if s in lexicon.verbs}


def align(rejected: Sequence[list[str]], chosen: Sequence[list[str]], similarity: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """For each rejected sentence (content stems), the chosen sentence it shares most with: (r, c, score).

    The score is the embedding similarity when ``similarity`` [len(rejected), len(chosen)] is given, else
    the Jaccard overlap of content stems.
    """
    out = []
    for i, r in enumerate(rejected):
        best, best_score = -1, -1.0
        for j, c in enumerate(chosen):
            if similarity is not None:
                score = float(similarity[i, j])
            else:
                union = set(r) | set(c)
                score = len(set(r) & set(c)) / len(union) if union else 0.0
            if score > best_score:
                best, best_score = j, score
        if best >= 0:
            out.append((i, best, best_score))
    return out


def compare_claims(
    question: str,
    chosen: str,
    rejected: str,
    lexicon: Lexicon | None = None,
    sentence_similarity: np.ndarray | None = None,
    claim_similarity_min: float = 0.75,
    coverage_min: float = 0.3,
    extra_cues: Iterable[Cue] = (),
    similar: Callable[[str, str], float] | None = None,
) -> ClaimComparison:
    """Compare the claims of ``rejected`` with those of ``chosen`` (see the module docstring).

    ``sentence_similarity`` is the cosine similarity matrix of the rejected sentences (rows) and the chosen
    sentences (columns) as split by :func:`sentences`; without it, claims are aligned by shared words only.
    Agree evidence: no differ cue, the rejected sentences are on average ``claim_similarity_min`` similar to
    their closest chosen sentences, and ``coverage_min`` of the rejected answer's content words beyond the
    question's occur in the chosen answer. ``similar`` (the similarity of two short texts, e.g. embeddings')
    enables the substitution cue.
    """
    lexicon = lexicon or load_lexicon()
    result = ClaimComparison(list(extra_cues))
    if is_polar_question(question):
        pc, pr = polarity(question, chosen, lexicon), polarity(question, rejected, lexicon)
        if pc and pr:
            if pc[0] == pr[0]:
                result.cues.append(Cue("yes_no", "agree", f"answers {pr[0]!r} like the chosen {pc[0]!r}"))
            else:
                result.cues.append(Cue("yes_no", "differ", f"answers {pr[0]!r} ({pr[1]}), the chosen {pc[0]!r} ({pc[1]})"))
    c_sents, r_sents = sentences(chosen), sentences(rejected)
    c_stems = [content_stems(s) for s in c_sents]
    r_stems = [content_stems(s) for s in r_sents]
    chosen_stems = {s for stems in c_stems for s in stems}
    similarities = []
    for i, j, score in align(r_stems, c_stems, sentence_similarity):
        r_set, c_set = set(r_stems[i]), set(c_stems[j])
        similarities.append(score)
        if len(r_set & c_set) < 2:
            continue  # nothing aligned: a different claim, neither agreement nor a flip
        pair_text = f"{r_sents[i][:70]!r} vs {c_sents[j][:70]!r}"
        negated = negation_flip(r_sents[i], c_sents[j], r_set, c_set)
        if negated:
            result.cues.append(Cue("negation", "differ", f"{negated!r} negated on one side only: {pair_text}"))
            continue
        pair = _opposite_pair(
            r_set | lexicon_stems(r_sents[i], lexicon), c_set | lexicon_stems(c_sents[j], lexicon), lexicon,
            negated_stems(r_sents[i], 2), negated_stems(c_sents[j], 2),
        )  # fmt: skip
        if pair:
            result.cues.append(Cue("antonym", "differ", f"opposite words {pair[0]!r}/{pair[1]!r}: {pair_text}"))
            continue
        nr, nc = numbers(r_sents[i]), numbers(c_sents[j])
        if nr and nc and nr != nc:
            result.cues.append(Cue("number", "differ", f"numbers {sorted(nr)} vs {sorted(nc)}: {pair_text}"))
            continue
        swapped = substitution(r_sents[i], c_sents[j], similar) if similar is not None else None
        if swapped:
            result.cues.append(Cue("substitution", "differ", f"says {swapped[0]!r} where the chosen answer says {swapped[1]!r}: {pair_text}"))
    advice_r, advice_c = advice_stems(rejected), advice_stems(chosen)
    if advice_r and advice_c:
        flipped_advice = sorted(k for k in advice_r.keys() & advice_c.keys() if advice_r[k] != advice_c[k])
        pair = _opposite_pair(set(advice_r), set(advice_c), lexicon)
        if flipped_advice:
            result.cues.append(Cue("action", "differ", f"advises the opposite about {flipped_advice[0]!r}"))
        elif pair:
            result.cues.append(Cue("action", "differ", f"opposite advice {pair[0]!r}/{pair[1]!r}"))
        elif not set(advice_r) & chosen_stems:
            result.cues.append(Cue("action", "differ", f"recommends {sorted(advice_r)[:4]}, absent from the chosen answer"))
    new = set(content_stems(rejected)) - set(content_stems(question))  # what the rejected answer adds to the question
    result.coverage = len(new & chosen_stems) / len(new) if new else 0.0
    result.support = float(np.mean(similarities)) if similarities else 0.0
    if len(new) >= 2 and result.coverage >= coverage_min and result.support >= claim_similarity_min:
        result.cues.append(Cue(
            "claims", "agree",
            f"restates the chosen answer: {result.coverage:.0%} of its content words beyond the question are in the chosen "
            f"answer, sentence similarity {result.support:.2f}, no negation, antonym, number or advice difference",
        ))  # fmt: skip
    return result
