"""Each cue of the evaluator on its own: claim comparison, self-corrections and -contradictions, non-answers,
the "not an informational question" rule (shared with the generation filter) and LM plausibility."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from generation.config import QuestionFilters, load_config
from generation.evaluation import detectors as det
from generation.evaluation.evaluate import not_an_answer
from generation.evaluation.plausibility import hardness, shared_scorer
from generation.evaluation.stance import answer_polarity, compare_claims, is_polar_question, load_lexicon, negated_stems
from generation.question_intent import not_informational
from generation.steps.questions import check_question

REPO = Path(__file__).resolve().parent.parent
LEX = load_lexicon()
PATTERNS = det.load_patterns(load_config(None).evaluation)


def kinds(question: str, chosen: str, rejected: str) -> set[str]:
    return {cue.kind for cue in compare_claims(question, chosen, rejected, LEX).differs}


# ------------------------------------------------------------------------------------ claim comparison


def test_yes_no_polarity():
    assert is_polar_question("Do antibiotics cure the flu?") and not is_polar_question("What cures the flu?")
    assert answer_polarity("No, antibiotics do not treat the flu.", LEX) == "no"
    assert answer_polarity("Yes. They do.", LEX) == "yes" and answer_polarity("Antibiotics kill bacteria.", LEX) is None
    assert "yes_no" in kinds("Do antibiotics cure the flu?", "No, antibiotics do not treat the flu.", "Yes, antibiotics cure the flu.")


def test_negation_in_scope_only():
    assert negated_stems("Antibiotics do not treat the flu") == {"treat"}
    assert "negation" in kinds("What treats acne?", "Benzoyl peroxide treats mild acne well.", "Benzoyl peroxide does not treat mild acne.")
    # a negation elsewhere in the sentence, or over the same words on both sides, is no flip
    assert not kinds("Is IBS contagious?", "IBS may not be contagious at all, doctors say.", "IBS is not contagious, doctors say.")
    same = "the deck can expand and contract without the structure cracking"
    assert "negation" not in kinds("Why expansion joints?", "Joints let the deck expand and contract without cracking the structure.", same)


def test_antonyms_quantifiers_and_prefixes_from_the_general_lexicon():
    assert "antonym" in kinds(
        "How do rising interest rates affect bond prices?",
        "When interest rates rise, the prices of existing bonds fall.",
        "When interest rates rise, the prices of existing bonds rise as well.",
    )
    assert "antonym" in kinds("Is a ladder safe?", "A ladder is safe when it is footed on level ground.", "A ladder is unsafe when it is footed on level ground.")
    assert "antonym" in kinds("Do bugs appear?", "Bugs often appear in untested code paths.", "Bugs rarely appear in untested code paths.")
    assert kinds("Do bugs appear?", "Bugs always appear in untested code paths.", "Bugs never appear in untested code paths.")
    assert LEX.opposite("legal", "illegal") and LEX.opposite("increas", "decreas") and not LEX.opposite("legal", "court")
    # an opposite under a negation says the same thing: "not unsafe" is "safe"
    assert "antonym" not in kinds("Is a ladder safe?", "A ladder is safe when it is footed on level ground.", "A ladder is not unsafe when it is footed on level ground.")


def test_numbers_and_advice():
    assert "number" in kinds("How long does the flu last?", "The flu usually lasts five to seven days.", "The flu usually lasts two to three days.")
    assert "action" in kinds(
        "How can I help a mouth ulcer heal?",
        "Rinse with salt water, and brush gently with a soft brush.",
        "Eat more sugar and stop brushing your teeth for a week.",
    )


def test_agreement_needs_restated_content_and_no_differ_cue():
    chosen = "Compound interest is interest earned on the original amount and on the interest already added."
    paraphrase = "Compound interest is interest earned on the original amount and also on interest already added before."
    similar = compare_claims("What is compound interest?", chosen, paraphrase, LEX)
    assert similar.agrees and similar.coverage >= 0.5 and "restates the chosen answer" in similar.evidence()
    other = compare_claims("What is compound interest?", chosen, "Compound interest is a fee that banks charge for closing an account early.", LEX)
    assert not other.agrees  # same topic, a different claim: no agree evidence
    flipped = compare_claims("Does X?", "Yes, aspirin thins the blood.", "No, aspirin thins the blood.", LEX)
    assert not flipped.agrees and "answers 'no'" in flipped.evidence()
    # a restatement of the question alone is no evidence of agreement
    assert not compare_claims("why build the largest fuse for 216 amps", "The largest fuse for 216 amps is a big one.", "A fuse for 216 amps.", LEX).agrees


# ------------------------------------------------------------------------ self-corrections, contradictions


def test_self_correction_strong_and_ambiguous_markers():
    chosen = "Gout is caused by uric acid crystals in the joints."
    assert det.self_correction("Gout comes from tight shoes. Just kidding!", chosen, PATTERNS) == "Just kidding"
    assert det.self_correction("Water boils at 50 C. Correct answer: it boils at 100 C.", chosen, PATTERNS)
    assert det.self_correction("It comes from shoes. Slightly wrong: it is uric acid.", chosen, PATTERNS)
    # "in reality" counts only when what follows restates the chosen answer
    assert det.self_correction("Gout comes from shoes. In reality, gout is caused by uric acid crystals.", chosen, PATTERNS)
    assert det.self_correction("In reality, every decision involves trade-offs and limited budgets.", chosen, PATTERNS) is None



@pytest.mark.parametrize(
    "rejected",
    [
        "Gout comes from tight shoes. The answer is not only false but also contradictory.",
        "Gout comes from tight shoes; the answer is misleading in this context.",
        "A classic example of a false statement. Gout comes from tight shoes.",
        "'Gout comes from tight shoes' is a well-known joke among doctors.",
        "Here is one answer: gout comes from shoes. However, the answer should be: it comes from uric acid.",
        'Gout comes from shoes. In reality, the answer is "it comes from uric acid crystals".',
    ],
)
def test_an_answer_that_labels_itself_false_misleading_or_a_joke_corrects_itself(rejected):
    assert det.self_correction(rejected, "Gout is caused by uric acid crystals in the joints.", PATTERNS), rejected


@pytest.mark.parametrize(
    "rejected",
    [
        "Some say gout comes from shoes, but the claim that shoes cause gout has no support; uric acid does.",
        "The answer should be discussed with your doctor, who knows your history.",
        "Joking about gout does not help; it is caused by uric acid crystals.",
        "It is wrong to think that only older men get gout.",
    ],
)
def test_debunking_a_myth_or_a_plain_should_is_no_self_correction(rejected):
    assert det.self_correction(rejected, "Gout is caused by uric acid crystals in the joints.", PATTERNS) is None, rejected


@pytest.mark.parametrize(
    "text, question",
    [
        ("Yes, a CT scan cannot detect kidney stones.", "Can a CT scan detect kidney stones?"),
        ("No, index funds are actively managed by stock pickers.", "Are index funds actively managed?"),
        ("Minors can sign binding contracts. Minors cannot sign binding contracts.", ""),
        ("Python lists keep the order of their items. Python lists do not keep the order of their items.", ""),
        ("Yes, alcohol is safe with metronidazole, but alcohol with metronidazole is dangerous.", ""),
        ("Exercise always makes depression worse and never makes it worse.", ""),
        ("The town's population rises every decade and it falls every decade.", ""),  # "it": the same subject
        ("A tracker fund charges the same fee every year. The fee of a tracker fund changes every year.", ""),
    ],
)
def test_self_contradictions(text, question):
    assert det.self_contradiction(text, PATTERNS, question)


@pytest.mark.parametrize(
    "text, question",
    [
        ("No, antibiotics do not treat viral infections.", "Do antibiotics treat viral infections?"),
        ("No. Index funds are passively managed.", "Are index funds actively managed?"),
        ("Salt raises the boiling point. It does not speed up boiling.", ""),
        ("The deck can expand in heat and contract in cold.", ""),
        ("Prices rise in spring and they fall in autumn.", ""),
        ("The rate is fixed for two years and it changes after that.", ""),
        ("The first answer is correct for adults, and the answer is not incorrect for adults.", ""),  # an opposite word under a negation agrees
        ("Ibuprofen does not raise blood pressure in most people, but it can raise it in some.", ""),
        ("Sleep is important for memory, and it is important to sleep in a dark room.", ""),  # a dummy "it"
    ],
)
def test_no_self_contradiction(text, question):
    assert det.self_contradiction(text, PATTERNS, question) is None


def test_an_answer_in_another_language_is_an_easy_negative():
    from generation.evaluation.evaluate import easy_form_evidence
    from generation.evaluation.metrics import language_of, other_language

    french = "Les organisations prévoient une spécialisation fiscale pour la protection des investisseurs contre la fraude."
    english = "Securities laws require companies to disclose accurate financial information to protect investors from fraud."
    assert language_of(english)[0] == "en" and language_of(french)[0] == "fr"
    assert other_language(french, "en", 0.8).startswith("fr (")
    assert other_language(english, "en", 0.8) is None and other_language(french, "fr", 0.8) is None
    assert other_language(french, None, 0.8) is None  # evaluation.language: null turns it off
    assert other_language("Oui, bien sûr.", "en", 0.8) is None  # too short to identify reliably
    th = load_config(None).evaluation.thresholds
    found = easy_form_evidence("what regulations protect investors from fraud", french, None, 0.9, th, other_language(french, "en", 0.8))
    assert found.startswith("written in another language: fr")


def test_not_an_answer():
    assert "opens with a question" in not_an_answer("What causes IBS?", "Is it serious? Are you a doctor?")
    assert "fragment" in not_an_answer("How does a balance transfer work?", "Credit Card Bills:")
    assert "adds nothing" in not_an_answer("what causes ringing in the ears", "What causes ringing in the ears.")
    assert not_an_answer("how long does recovery take", "The answer is 12 months.") is None  # a number is content
    assert not_an_answer("Do I need a lawyer for small claims court?", "Yes, you need a lawyer for small claims court.") is None


# --------------------------------------------------------------------------------- not informational


@pytest.mark.parametrize(
    "question",
    [
        "what can i do for you today?", "can you help me?", "what is your name?", "How long have you noticed the pain?",
        "Are you still taking the new tablets?", "Could you explain to me how you would design this circuit?",
        "what would you like me to do next", "Is there anything else you would like to know?", "Hello! How are you?",
        "what do you think about my plan?", "whats your request", "why do people use this", "what is it?",
        "is there a diet that can help with this condition", "can we discuss the filing process", "Here is a new question about flu",
        "is there a topic youd like to discuss", "whats on your mind",  # contractions as preprocessing leaves them
        "would you like to ask about some treatments", "do you want more questions to help improve personal finance",
        "may i ask what type of food you are eating", "can i ask about your plans for retirement",
        "what does the given text say about diabetes", "for example you could ask how long the flu lasts",
        "what can i do to help", "why should one choose one over the other",
        "what brings you here today", "why dont you ask about the common treatments for gout",
        "can you offer an example of a strong password", "should a doctor see your concerns about the rash",
    ],
)
def test_not_informational_questions(question):
    assert not_informational(question), question
    assert check_question(question if question.endswith("?") else question + "?", QuestionFilters(min_words=1)) in ("addressed_to_reader", "meta_text")


@pytest.mark.parametrize(
    "question",
    [
        "can you get shingles twice?", "how do you get rid of warts?", "what should you do if your child has a fever?",
        "how long are you contagious with the flu?", "what happens if you stop taking statins?", "what exercises can i do for back pain?",
        "how can i help my child with asthma?", "do you need antibiotics for strep throat?", "Is a verbal contract binding?",
        "how do you answer a question in court?", "what is the treatment for this type of cancer?",
        "whats the best treatment for acne?", "im pregnant can i take tylenol?", "can i ask how long the flu lasts?",
        "what happens if you want to stop taking statins?", "how much water do you need a day?",
        "what can i do to help my back pain?", "which should i choose, ibuprofen or acetaminophen?",
        "what questions should i ask my doctor about statins?", "why dont you get a fever with a cold?",
    ],
)
def test_informational_questions_with_generic_you_pass(question):
    assert not_informational(question) is None, question
    assert check_question(question, QuestionFilters()) is None


def test_no_seed_question_of_any_domain_sample_is_flagged():
    questions = []
    for sample in sorted((REPO / "configs" / "samples").glob("*.csv")):
        with open(sample, encoding="utf-8", newline="") as handle:
            questions += [row["question"] for row in csv.DictReader(handle)]
    assert len(questions) >= 250
    assert [q for q in questions if not_informational(q)] == []


# ----------------------------------------------------------------------------------------- plausibility


def test_hardness_scale():
    assert hardness(-2.0, -2.0, False) == 1.0 and hardness(-1.0, -3.0, False) == 1.0
    assert hardness(-4.0, -2.0, False) == pytest.approx(0.3679, abs=1e-3)  # exp(-1)
    assert hardness(-4.0, -2.0, True) == pytest.approx(0.1839, abs=1e-3)


def test_language_model_finds_absurd_answers_less_likely():
    scorer = shared_scorer(load_config(None).evaluation.plausibility)
    question = "How should a minor burn be treated?"
    sensible = "Cool the burn under cool running water for twenty minutes, then cover it with a clean dressing."
    absurd = "Rub the burn with sand and gravel until it stops hurting, then paint it purple."
    values = scorer.score([question, question], [sensible, absurd])
    assert values[0] > values[1] + 0.5 and hardness(values[1], values[0], False) < 0.8


def test_auto_dtype_is_bfloat16_only_where_the_cpu_computes_it_natively():
    import torch

    from generation.evaluation.plausibility import resolve_dtype

    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_dtype("auto") == ("bfloat16" if native else "float32")
    assert resolve_dtype("float32") == "float32" and resolve_dtype("bfloat16") == "bfloat16"
    assert shared_scorer(load_config(None).evaluation.plausibility).model.dtype == getattr(torch, resolve_dtype("auto"))


# ------------------------------------------------------------------------------------ cues added in wave 2


def test_implied_yes_no_answer_from_a_sentence_restating_the_question():
    from generation.evaluation.stance import implicit_polarity, polarity

    q = "Does the interest rate of a fixed-rate mortgage change?"
    assert implicit_polarity(q, "The rate on a fixed-rate mortgage changes every month with the interest market.", LEX)[0] == "yes"
    assert implicit_polarity(q, "The interest rate of a fixed-rate mortgage does not change.", LEX)[0] == "no"
    assert implicit_polarity(q, "Mortgages are loans for houses.", LEX) is None  # does not restate the question
    assert polarity("Is jaywalking legal?", "The answer is no, it is an offence.", LEX)[0] == "no"  # after "The answer is"
    assert "yes_no" in kinds(q, "No. A fixed-rate mortgage keeps the same rate.", "The interest rate of a fixed-rate mortgage changes every month.")


def test_substitution_in_the_same_frame_but_not_a_synonym():
    from generation.evaluation.stance import substitution

    synonyms = {frozenset(("tiredness", "fatigue"))}
    similar = lambda a, b: 0.9 if frozenset((a, b)) in synonyms else 0.3  # noqa: E731
    chosen = "The body makes vitamin D in the skin when it is exposed to sunlight."
    assert substitution("The body makes vitamin D in the stomach when it is exposed to sunlight.", chosen, similar) == ("stomach", "skin")
    assert substitution("Common signs are thirst, tiredness and blurred vision.", "Common signs are thirst, fatigue and blurred vision.", similar) is None
    assert substitution("Vitamin D comes mostly from sunlight on bare skin.", chosen, similar) is None  # another frame: no substitution
    found = compare_claims("Where is vitamin D made?", chosen, "The body makes vitamin D in the stomach when it is exposed to sunlight.", LEX, similar=similar)
    assert [c.kind for c in found.differs] == ["substitution"] and not found.agrees


def test_claims_before_a_self_correction_and_answers_that_echo_the_question_or_give_a_number():
    rejected = "Gout is caused by wearing tight shoes for too long. This answer is incorrect; gout comes from uric acid crystals."
    assert det.before_correction(rejected, PATTERNS) == "Gout is caused by wearing tight shoes for too long."
    assert det.before_correction("Just kidding! It is uric acid.", PATTERNS) == "Just kidding! It is uric acid."  # nothing before it
    assert not_an_answer("why should people be treated equally under the law", "Why should people be treated equally under the law? Because it is a human right.") is None
    assert not_an_answer("why should people be treated equally", "Why? I am not sure what that means.")
    assert not_an_answer("what safety factor should i use for a lifting device", "The correct answer is 10.") is None


@pytest.mark.parametrize("question", ["how long will this light bulb last", "is there a medical condition associated with these symptoms"])
def test_demonstratives_point_at_nothing_in_a_standalone_question(question):
    assert not_informational(question).startswith("dangling_reference")


@pytest.mark.parametrize("question", ["what is the tax rate this year", "can those who smoke donate blood", "what is the treatment for this type of cancer"])
def test_times_and_generic_demonstratives_stay_informational(question):
    assert not_informational(question) is None
