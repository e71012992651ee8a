"""mine-modifications: the NLP pass (no model), the LLM pass (real server), merging and the review file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from conftest import MODEL_ALIAS, REPO, synthgen
from generation.config import load_config
from generation.mining import Candidate, merge_candidates, mine, mining_settings, nlp_candidates, parse_proposals, read_sample

DEADLINES = [
    "what is the deadline to file a tax return",
    "how long do i have to appeal a parking ticket",
    "when is the deadline for a small claims case",
    "is there a time limit to sue my employer",
    "what is the statute of limitations for fraud",
    "does a warranty claim expire after a year",
]
COSTS = [
    "how much does a divorce lawyer cost",
    "what are the court fees for small claims",
    "how much does it cost to file a patent",
    "are there fees to appeal a ruling",
    "why is a will so expensive to write",
]


def write_sample(path: Path, questions: list[str], column: str = "question") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([column])
        writer.writerows([q] for q in questions)
    return path


def mine_cli(tmp_path: Path, *args: str) -> tuple[dict, str]:
    output = tmp_path / "modifications.yaml"
    result = synthgen("mine-modifications", "--output", str(output), *args)
    assert result.returncode == 0, result.stderr
    text = output.read_text(encoding="utf-8")
    return yaml.safe_load(text), result.stderr


def check_structure(document: dict, sample: list[str]) -> list[dict]:
    entries = document["modifications"]
    assert entries, "no modification was proposed"
    for entry in entries:
        assert set(entry) == {"text", "status", "reviewer", "note", "evidence"}
        assert entry["status"] == "proposed" and entry["reviewer"] is None
        assert entry["text"].startswith("asks ") and "?" not in entry["text"]
        evidence = entry["evidence"]
        assert evidence["source"] in {"nlp", "llm", "nlp+llm"}
        assert evidence["count"] >= 1 and 1 <= len(evidence["questions"]) <= 5
        assert set(evidence["questions"]) <= set(sample), "evidence must quote the sample"
    texts = [e["text"].lower() for e in entries]
    assert len(set(texts)) == len(texts)
    return entries


def test_deadline_questions_yield_a_deadline_modification(tmp_path: Path):
    sample = write_sample(tmp_path / "deadlines.csv", DEADLINES)
    document, stderr = mine_cli(tmp_path, "--domain", "law", "--sample", str(sample), "--no-llm")
    entries = check_structure(document, DEADLINES)
    top = entries[0]
    assert "deadline" in top["text"] and top["evidence"]["source"] == "nlp"
    assert top["evidence"]["count"] == len(DEADLINES)  # every question has a deadline structure
    assert "question_type:deadline" in top["evidence"]["matched"]
    assert not any("cost" in e["text"] for e in entries)
    assert document["sample"] == str(sample) and document["questions"] == len(DEADLINES)
    assert "proposed modification(s) from 6 questions" in stderr
    text = (tmp_path / "modifications.yaml").read_text()
    assert text.startswith("# Candidate modification list") and "status to approved or rejected" in text


def test_cost_questions_yield_a_cost_modification_and_no_deadline_one(tmp_path: Path):
    cfg = load_config(None, ["domain=law"])
    candidates = nlp_candidates(COSTS, mining_settings(cfg))
    cost = [c for c in candidates if "cost" in c.text]
    assert len(cost) == 1 and cost[0].count == 5 and cost[0].questions == COSTS
    assert not any("deadline" in c.text for c in candidates)


def test_key_phrases_prefer_the_longer_phrase(tmp_path: Path):
    questions = [
        "can my landlord keep my security deposit",
        "how fast must a security deposit be returned",
        "is interest owed on a security deposit",
        "what can be taken from a deposit for cleaning",
        "who inspects the flat at move out",
    ]
    cfg = load_config(None, ["domain=law", "mining.max_phrases=3"])
    mining = mining_settings(cfg)
    phrases = [c for c in nlp_candidates(questions, mining) if c.matched[0].startswith("phrase:")]
    assert phrases[0].matched == ["phrase:security deposit"] and phrases[0].count == 3
    assert phrases[0].text == mining.phrase_modification.format(phrase="security deposit")
    assert "phrase:deposit" not in [c.matched[0] for c in phrases]  # mostly inside "security deposit"
    assert len(phrases) <= 3


def test_parse_proposals():
    mining = mining_settings(load_config(None, ["domain=law"]))
    reply = (
        "Here are some instructions:\n"
        "1. asks about the deadline for filing an appeal.\n"
        "2) Ask which documents a tenant must keep\n"
        "- **asks whether a verbal agreement is binding**\n"
        "* asks about the deadline for filing an appeal\n"  # a repeat
        "What is the statute of limitations?\n"  # a question, not an instruction
        "asks\n"  # too short
        "The second one asks about the costs of mediation, which are low.\n"  # a clause inside prose
        "asks about " + "very " * 30 + "long things\n"  # too long
    )
    assert parse_proposals(reply, mining) == [
        "asks about the deadline for filing an appeal",
        "asks which documents a tenant must keep",
        "asks whether a verbal agreement is binding",
        "asks about the costs of mediation",
    ]


def test_merge_keeps_evidence_of_both_passes():
    nlp = Candidate("asks about the deadline or time limit that applies to this situation", "nlp", 4, ["a", "b"], ["question_type:deadline"])
    other = Candidate("asks about the costs or fees involved in this situation", "nlp", 2, ["c"], ["question_type:cost"])
    llm1 = Candidate("asks about the deadline or time limit that applies", "llm", 1, ["b", "d"], ["llm"], llm_proposals=1)
    llm2 = Candidate("asks about the risks of signing a lease", "llm", 1, ["e"], ["llm"], llm_proposals=1)
    llm3 = Candidate("asks about the risks of signing the lease", "llm", 1, ["f"], ["llm"], llm_proposals=1)
    merged = merge_candidates([nlp, other, llm1, llm2, llm3], 80)
    assert [m.text for m in merged] == [nlp.text, other.text, llm2.text]
    assert (merged[0].source, merged[0].count, merged[0].llm_proposals, merged[0].questions) == ("nlp+llm", 4, 1, ["a", "b", "d"])
    assert (merged[2].source, merged[2].count, merged[2].questions) == ("llm", 2, ["e", "f"])  # proposed twice


@pytest.mark.parametrize(
    ("domain", "expected"),
    [("law", ["deadline", "documents"]), ("finance", ["costs or fees", "credit"]), ("engineering", ["calculate", "load"]),
     ("healthcare", ["symptoms"])],
)  # fmt: skip
def test_each_shipped_sample_gives_a_sensible_list(tmp_path: Path, domain: str, expected: list[str]):
    sample_file = REPO / "configs" / "samples" / f"{domain}.csv"
    cfg = load_config(None, [f"domain={domain}"])
    mine(cfg, sample_file, tmp_path / "m.yaml", use_llm=False, existing=cfg.modifications)  # in process: the CLI is tested above
    document = yaml.safe_load((tmp_path / "m.yaml").read_text())
    sample = read_sample(sample_file)
    entries = check_structure(document, sample)
    assert 5 <= len(entries) <= 30
    texts = " | ".join(e["text"] for e in entries)
    for word in expected:
        assert word in texts, (word, texts)
    # counts are real: each entry's count is the number of sample questions that show it
    counts = [e["evidence"]["count"] for e in entries]
    assert max(counts) <= len(sample) and min(counts) >= 2


def test_reviewed_output_feeds_a_run(tmp_path: Path):
    document, _ = mine_cli(tmp_path, "--domain", "law", "--no-llm")
    review = tmp_path / "modifications.yaml"
    with pytest.raises(Exception, match="no entry with status approved"):
        load_config(None, ["domain=law", f"modifications={review}"])
    document["modifications"][1].update(status="approved", reviewer="A. Expert", note="keep")
    document["modifications"][2].update(status="rejected", reviewer="A. Expert", note="too vague")
    review.write_text(yaml.safe_dump(document, sort_keys=False))
    cfg = load_config(None, ["domain=law", f"modifications={review}"])
    assert cfg.modifications == [document["modifications"][1]["text"]]
    every = load_config(None, ["domain=law", f"modifications={review}", "modifications_include=[approved,proposed]"])
    assert document["modifications"][2]["text"] not in every.modifications and len(every.modifications) == len(document["modifications"]) - 1


def test_bad_sample_is_a_one_line_error(tmp_path: Path):
    sample = write_sample(tmp_path / "bad.csv", DEADLINES, column="query")
    result = synthgen("mine-modifications", "--domain", "law", "--sample", str(sample), "--output", str(tmp_path / "m.yaml"), "--no-llm")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "bad.csv: missing column(s) ['question']" in result.stderr
    assert not (tmp_path / "m.yaml").exists()


@pytest.mark.model
def test_llm_pass_on_the_real_server(model_server: str, tmp_path: Path):
    config = tmp_path / "model.yaml"
    config.write_text(yaml.safe_dump({
        "name": "mine", "domain": "law", "seed": 5,
        "backend": {"engine": "endpoint", "base_url": model_server, "model": MODEL_ALIAS},
        "mining": {"llm_rounds": 2, "questions_per_round": 8, "sampling": {"max_tokens": 96, "temperature": 0.8}},
    }))  # fmt: skip
    document, stderr = mine_cli(tmp_path, "-c", str(config))
    assert f"LLM pass (primary, {MODEL_ALIAS}): 2 request(s)" in stderr
    assert document["model"] == MODEL_ALIAS
    sample = read_sample(REPO / "configs/samples/law.csv")
    entries = check_structure(document, sample)
    assert any("deadline" in e["text"] for e in entries)  # the NLP pass still contributes
    for entry in entries:
        if "llm" in entry["evidence"]["source"]:
            assert entry["evidence"]["llm_proposals"] >= 1


def test_pii_in_the_sample_never_reaches_the_review_file(tmp_path: Path):
    questions = ["what is the deadline to appeal, write to john.doe@example.com", "how long do i have to file, call 415-555-0132",
                 "what is the deadline for a claim"]  # fmt: skip
    sample = write_sample(tmp_path / "pii.csv", questions)
    document = mine(load_config(None, ["domain=law"]), sample, tmp_path / "m.yaml", use_llm=False)
    text = (tmp_path / "m.yaml").read_text()
    assert "john.doe@example.com" not in text and "415-555-0132" not in text
    assert "[EMAIL]" in text and document["pii_masked"] == {"EMAIL": 1, "PHONE": 1}
    assert any("deadline" in e["text"] for e in document["modifications"])


# ------------------------------------------------------------------ inflections, compounds, parts of speech

# Two domains none of the shipped packs covers, written the way people type questions.
BEEKEEPING = [
    "how do i treat varroa mites in my hives", "when should i add a super to a hive", "why are my bees swarming",
    "how much honey should i leave in the hive for winter", "how can i tell if my hive is healthy",
    "what does a healthy brood pattern look like", "how do i keep my bees healthy in winter",
    "how many frames of brood should a healthy hive have", "when do bees start swarming in spring",
    "what is the best treatment for varroa mites", "how do i find the queen in a beehive",
    "can i move a bee hive a few feet", "how often should i inspect my hives", "what are the signs of a failing queen",
]
GARDENING = [
    "why are the leaves on my tomato plant yellow", "why do my cucumber leaves have yellow spots",
    "what causes yellow leaves on roses", "how do i prune roses in spring", "when should i prune my roses",
    "can i prune a rose bush in summer", "how deep should i plant garlic", "is it safe to plant garlic in spring",
    "how often should a lemon tree be watered", "what is the best soil for a lemon tree", "why is my lemon tree dropping leaf buds",
    "how do you fix a leaf that is curling", "how do i compost kitchen scraps", "is compost safe for vegetable gardens",
]


def phrase_candidates(questions: list[str]) -> list:
    mining = mining_settings(load_config(None, ["mining.max_phrases=50"]))
    return [c for c in nlp_candidates(questions, mining) if c.matched[0].startswith("phrase:")]


def slot(candidate) -> str:
    return candidate.matched[0].removeprefix("phrase:")


def test_inflections_and_compounds_of_one_phrase_are_one_candidate():
    found = {slot(c): c for c in phrase_candidates(BEEKEEPING)}
    hives = [c for c in found.values() if any(m.endswith(("hive", "hives", "beehive")) for m in c.matched)]
    assert len(hives) == 1, [c.matched for c in hives]  # hive, hives, bee hive, beehive
    rows = [q for q in BEEKEEPING if any(w in q.split() for w in ("hive", "hives", "beehive"))]
    assert hives[0].count == len(rows) and set(hives[0].questions) == set(rows)
    mites = [c for c in found.values() if any("mites" in m for m in c.matched)]
    assert len(mites) == 1  # "varroa mites" is a kind of "mites": one entry with both as evidence
    garden = {slot(c): c for c in phrase_candidates(GARDENING)}
    leaf = [c for c in garden.values() if any(m.endswith(("leaf", "leaves")) for m in c.matched)]
    assert len(leaf) == 1 and leaf[0].count == sum(1 for q in GARDENING if {"leaf", "leaves"} & set(q.split()))


@pytest.mark.parametrize("sample", ["beekeeping", "gardening", "healthcare", "law", "finance", "engineering"])
def test_a_slot_never_holds_an_adjective_a_verb_use_or_a_function_word(sample: str):
    import lemminflect
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    questions = {"beekeeping": BEEKEEPING, "gardening": GARDENING}.get(sample) or read_sample(REPO / f"configs/samples/{sample}.csv")
    candidates = phrase_candidates(questions)
    assert candidates
    for candidate in candidates:
        words = slot(candidate).split()
        assert words[0] not in ENGLISH_STOP_WORDS and words[-1] not in ENGLISH_STOP_WORDS, candidate.text
        readings = lemminflect.getAllLemmas(words[-1])
        assert not readings or "NOUN" in readings or words[-1].endswith("ing"), (candidate.text, readings)
    slots = {slot(c) for c in candidates}
    # the adjectives, the verbs used as verbs, and the function words of these samples never fill a slot
    for word in ("healthy", "yellow", "safe", "prune", "treat", "file", "contagious", "pay", "can", "my", "how"):
        assert word not in slots, (word, sorted(slots))


def test_a_word_used_as_a_noun_keeps_its_slot():
    questions = ["what is the difference between a cold and the flu", "can you exercise with a cold",
                 "how long does a cold last", "what helps a cold go away faster"]  # fmt: skip
    assert "cold" in {slot(c) for c in phrase_candidates(questions)}
    adjective = ["why are my hands always cold", "what causes cold hands", "is cold weather bad for asthma", "are cold showers healthy"]
    assert "cold" not in {slot(c) for c in phrase_candidates(adjective)}
