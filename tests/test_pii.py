"""The PII scrubber: positive and negative cases per kind, the policy config, the request cache, and runs
whose input questions and model replies contain PII (nothing of it may be written anywhere in clear)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import tiny_config
from faulty_endpoint import FaultyEndpoint
from generation.backends.cache import RequestCache
from generation.config import RunConfig, load_config
from generation.errors import ConfigError
from generation.pii import KINDS, PiiMatch, Scrubber, find_pii, luhn_valid, scrub, scrubber_for
from generation.pipeline import prepare_seed_questions, run_pipeline
from generation.preprocess import PLACEHOLDER, normalise_question, preprocess_questions

# (text, kind, the exact span that must be found)
POSITIVE = [
    ("email me at john.doe+tag@example.co.uk please", "EMAIL", "john.doe+tag@example.co.uk"),
    ("Contact: J_Smith@mail.hospital.org.", "EMAIL", "J_Smith@mail.hospital.org"),
    ("call 555-123-4567 now", "PHONE", "555-123-4567"),
    ("call (415) 555-2671 after 5", "PHONE", "(415) 555-2671"),
    ("tel 415.555.2671", "PHONE", "415.555.2671"),
    ("my number is 4155552671", "PHONE", "4155552671"),
    ("toll free 1-800-273-8255", "PHONE", "1-800-273-8255"),
    ("+1 415 555 2671 is my cell", "PHONE", "+1 415 555 2671"),
    ("the London office, +44 20 7946 0958, is closed", "PHONE", "+44 20 7946 0958"),
    ("Paris: +33 1 42 68 53 00", "PHONE", "+33 1 42 68 53 00"),
    ("ring +91 98765 43210 today", "PHONE", "+91 98765 43210"),
    ("ssn 123-45-6789 on file", "SSN", "123-45-6789"),
    ("SSN: 987654321", "SSN", "987654321"),
    ("social security number 078 05 1120", "SSN", "078 05 1120"),
    ("card 4111 1111 1111 1111 was charged", "CARD", "4111 1111 1111 1111"),
    ("card 5500-0000-0000-0004", "CARD", "5500-0000-0000-0004"),
    ("4111111111111111 is a visa", "CARD", "4111111111111111"),
    ("amex 3782 822463 10005", "CARD", "3782 822463 10005"),
    ("from ip 192.168.1.10.", "IP", "192.168.1.10"),
    ("logged in from 8.8.8.8 yesterday", "IP", "8.8.8.8"),
    ("server 2001:db8:85a3::8a2e:370:7334 is down", "IP", "2001:db8:85a3::8a2e:370:7334"),
    ("link-local fe80::1ff:fe23:4567:890a", "IP", "fe80::1ff:fe23:4567:890a"),
    ("I was born on 12/05/1985 in Ohio", "DOB", "12/05/1985"),
    ("DOB: 1985-05-12", "DOB", "1985-05-12"),
    ("date of birth May 12, 1985", "DOB", "May 12, 1985"),
    ("born 3rd of March 1990", "DOB", "3rd of March 1990"),
    ("Birthday: 12 May 1985", "DOB", "12 May 1985"),
    ("MRN 12345678", "MRN", "12345678"),
    ("MRN: AB-1234567 for the visit", "MRN", "AB-1234567"),
    ("medical record number 00123456", "MRN", "00123456"),
    ("patient id 99887766", "MRN", "99887766"),
    ("I live at 742 Evergreen Terrace, Springfield, IL 62704", "ADDRESS", "742 Evergreen Terrace, Springfield, IL 62704"),
    ("send it to 221B Baker Street", "ADDRESS", "221B Baker Street"),
    ("clinic at 12 N Main St, Apt 4 is open", "ADDRESS", "12 N Main St, Apt 4"),
    ("my address is 10 downing street", "ADDRESS", "10 downing street"),
    ("1600 Pennsylvania Avenue NW", "ADDRESS", "1600 Pennsylvania Avenue NW"),
]

NEGATIVE = [
    '{"top_logprobs": {"Yes": -0.3608123456789, "No": -1.4111111111111111}}',  # decimals, Luhn-valid digits
    "take 500 mg twice a day",
    "2 tablets every 4 hours",
    "take 1-2 tablets, up to 500-1000 mg",
    "10 mg/kg/day for 7 days",
    "IV 0.9% saline 1000 ml",
    "dose 1000000 units",
    "in 2019 I had surgery",
    "between 1999-2003 and from 2010 to 2015 about 3000 people",
    "born in 1985",
    "he was born healthy on time",
    "I am 45 years old and my son is 12",
    "bp 120/80 mmHg",
    "blood pressure of 140/90",
    "heart rate 72 bpm, temperature 98.6 F",
    "A1C of 6.5 and LDL 130",
    "hemoglobin 13.5 g/dL, platelets 250,000",
    "ICD-10 code E11.9 and I10",
    "ICD-9 250.00",
    "python 3.10.2",
    "version 1.2.3.4",
    "v2.0.0.1 release",
    "50% of patients",
    "1 in 10,000 people",
    "a 1:10,000 dilution",
    "at 12:30:45 pm",
    "ratio 3:2",
    "Psalm 23:4",
    "call 911",
    "zip 90210",
    "walk 5 blocks down the road",
    "take 2 Advil with food",
    "route 66",
    "6 feet 2 inches",
    "ISBN 978-3-16-148410-0",
    "2024-01-15 appointment",
    "12/05/1985 visit",
    "about 123 45 6789 cases",
    "the MRI showed 3 lesions",
    "filed under Chapter 7 Bankruptcy Court rules",
    "Section 8 Housing Choice Way",
    "reference number 1234567812345678",  # 16 digits that fail the Luhn check
]


@pytest.mark.parametrize(("text", "kind", "span"), POSITIVE)
def test_finds_each_kind(text: str, kind: str, span: str):
    matches = find_pii(text)
    assert [(m.kind, text[m.start : m.end]) for m in matches] == [(kind, span)]
    masked, counts = scrub(text)
    assert masked == text.replace(span, f"[{kind}]") and counts == Counter({kind: 1})


@pytest.mark.parametrize("text", NEGATIVE)
def test_leaves_ordinary_numbers_alone(text: str):
    assert find_pii(text) == []
    assert scrub(text) == (text, Counter())


def test_every_kind_has_positive_cases():
    assert {kind for _, kind, _ in POSITIVE} == set(KINDS)


def test_card_numbers_need_the_luhn_check():
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")
    assert scrub("card 4111 1111 1111 1112")[1] == Counter()
    assert scrub("card 4111 1111 1111 1111")[1] == Counter({"CARD": 1})


@pytest.mark.parametrize("number", ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000"])
def test_ssns_follow_the_ssa_rules_unless_labelled(number: str):
    assert scrub(f"number {number} here")[1] == Counter()
    assert scrub(f"my SSN is {number}")[0] == "my SSN is [SSN]"


def test_invalid_loopback_and_unspecified_ip_addresses_are_not_masked():
    assert find_pii("999.1.1.1 and 1.2.3 and 12::34::56") == []
    assert find_pii("the server at http://127.0.0.1:8080/v1 binds 0.0.0.0 and ::1") == []
    assert [m.text for m in find_pii("from 10.0.0.7 and 2001:db8::1")] == ["10.0.0.7", "2001:db8::1"]


def test_several_kinds_in_one_text_and_match_fields():
    text = "Jane (jane@example.com, 555-867-5309), SSN 123-45-6789, card 4111-1111-1111-1111, MRN 77889911."
    matches = find_pii(text)
    assert [m.kind for m in matches] == ["EMAIL", "PHONE", "SSN", "CARD", "MRN"]
    assert all(isinstance(m, PiiMatch) and text[m.start : m.end] == m.text for m in matches)
    masked, counts = scrub(text)
    assert masked == "Jane ([EMAIL], [PHONE]), SSN [SSN], card [CARD], MRN [MRN]."
    assert counts == Counter({"EMAIL": 1, "PHONE": 1, "SSN": 1, "CARD": 1, "MRN": 1})


def test_scrubbing_twice_changes_nothing():
    for text, _, _ in POSITIVE:
        once, _ = scrub(text)
        assert scrub(once) == (once, Counter())


class _NoPrecheck(Scrubber):
    """The same policy with every detector run on every text (no pre-check)."""

    def _possible_kinds(self, text: str) -> set[str]:
        return set(KINDS)


def _varied_texts(count: int) -> list[str]:
    """The labelled cases plus seeded random mixes of words, digits, separators, "@" and ":" around them."""
    import random

    rng = random.Random(13)
    pieces = ["call", "SSN", "MRN", "born on", "live at", "Main St", "Apt", "card", "ip", "v", "mg", "dose", "May",
              "@", ":", "::", "-", ".", "/", "(", ")", "+", " ", " ", " ", "x", "ab", "fe80", "dead:beef::cafe"]  # fmt: skip
    texts = [case[0] for case in POSITIVE] + list(NEGATIVE)
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))) if rng.random() < 0.4 else rng.choice(pieces))
        texts.append(rng.choice(["", " "]).join(parts))
    return texts


def test_precheck_finds_exactly_what_every_detector_finds():
    scrubber, unchecked = Scrubber(), _NoPrecheck()
    for text in _varied_texts(3000):
        assert scrubber.find(text) == unchecked.find(text), text


def test_precheck_skips_texts_without_digits_but_not_letter_only_ipv6_or_emails():
    assert Scrubber()._possible_kinds("What are the usual treatments for gout in older adults?") == set()
    assert [m.kind for m in find_pii("reach the host at dead:beef::cafe today")] == ["IP"]
    assert [m.kind for m in find_pii("write to nurse.jo@clinic.example.org")] == ["EMAIL"]


def test_placeholders_survive_the_real_preprocessing_steps():
    raw = [
        "What's the risk if jane.doe@example.com shares her SSN 123-45-6789?",
        "Can I call (415) 555-2671 or e-mail JOHN@EXAMPLE.ORG about my MRN: 12345678?",
    ]
    scrubbed = [scrub(text)[0] for text in raw]
    steps = ["lowercase", "strip_punctuation", "normalise_whitespace", "drop_empty", "drop_duplicates"]
    cleaned, _ = preprocess_questions(scrubbed, steps)
    assert cleaned == [
        "whats the risk if [EMAIL] shares her ssn [SSN]",
        "can i call [PHONE] or e mail [EMAIL] about my mrn [MRN]",
    ]
    assert normalise_question(scrubbed[0], steps) == cleaned[0]
    assert all(PLACEHOLDER.fullmatch(f"[{kind}]") for kind in KINDS)


def test_policy_kinds_regions_and_extra_patterns():
    only_email = Scrubber(kinds=["EMAIL"])
    assert only_email.scrub("a@b.io or 555-123-4567") == ("[EMAIL] or 555-123-4567", Counter({"EMAIL": 1}))
    uk = "ring 020 7946 0958 tonight"
    assert scrub(uk)[1] == Counter()  # a UK national number is not a US one
    assert scrub(uk, phone_regions=["GB"]) == ("ring [PHONE] tonight", Counter({"PHONE": 1}))
    extra = {"CASE_NUMBER": r"(?i)case\s+no\.?\s*(?P<pii>\d{2}-[A-Z]{2}-\d{4,})", "POLICY": r"\bPOL-\d{6}\b"}
    masked, counts = scrub("Case No. 21-CV-00123 under POL-123456", extra_patterns=extra)
    assert masked == "Case No. [CASE_NUMBER] under [POLICY]"
    assert counts == Counter({"CASE_NUMBER": 1, "POLICY": 1})


def _config(tmp_path: Path, *overrides: str, **sections) -> RunConfig:
    return load_config(tiny_config(tmp_path, "http://127.0.0.1:9/v1", **sections), list(overrides))


def test_config_section_defaults_and_errors(tmp_path: Path):
    cfg = _config(tmp_path)
    assert cfg.privacy.pii.enabled and tuple(cfg.privacy.pii.kinds) == KINDS
    assert scrubber_for(cfg.privacy.pii) is scrubber_for(cfg.privacy.pii)  # compiled once per policy
    assert scrubber_for(_config(tmp_path, "privacy.pii.enabled=false").privacy.pii) is None
    for override, message in [
        ("privacy.pii.phone_regions=[XX]", "privacy.pii.phone_regions: unknown phone region"),
        ("privacy.pii.kinds=[EMAIL, NAME]", "privacy.pii.kinds.1"),
        ("privacy.pii.extra_patterns={case: 'x'}", "privacy.pii.extra_patterns: 'case': kind names are upper case"),
        ("privacy.pii.extra_patterns={CASE: '('}", "privacy.pii.extra_patterns: CASE: invalid regular expression"),
        ("privacy.pii.colour=blue", "privacy.pii.colour: unknown key"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            _config(tmp_path, override)


PII_QUESTIONS = [
    "Can I email my lab results to Jane.Roe@example.com before my appointment?",
    "My phone is (212) 555-0187, can the nurse call me about my insulin dose?",
    "Is my SSN 123-45-6789 needed to refill my blood pressure prescription?",
    "I paid with card 4111 1111 1111 1111, why was I charged twice for my flu shot?",
    "What causes migraines in adults?",
    "How long does a cold usually last?",
]
SECRETS = ["Jane.Roe@example.com", "555-0187", "123-45-6789", "4111 1111 1111 1111"]


def _write_questions(path: Path, questions: list[str]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question"])
        writer.writerows([q] for q in questions)
    return path


def _variants(value: str) -> set[str]:
    """A value as written, lower-cased, and with its separators removed or turned into spaces."""
    out = {value, value.lower()}
    out.add(re.sub(r"[^0-9A-Za-z@.]", "", value))
    out.add(re.sub(r"[^0-9A-Za-z@.]+", " ", value).strip())
    out.add(re.sub(r"[^0-9a-z]+", " ", value.lower()).strip())  # after strip_punctuation
    return out


def _file_text(path: Path) -> str:
    """Everything a file holds as text: raw bytes, plus decoded rows for Parquet and SQLite."""
    raw = path.read_bytes().decode("utf-8", errors="ignore")
    if path.suffix == ".parquet":
        return raw + json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False)
    if path.name.endswith(".sqlite"):
        with sqlite3.connect(path) as db:
            return raw + "\n".join(db.iterdump())
    return raw


def _leaks(root: Path, secrets: list[str]) -> list[str]:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    hits = []
    for path in files:
        text = _file_text(path)
        hits.extend(f"{path.relative_to(root)}: {variant!r}" for secret in secrets for variant in _variants(secret) if variant in text)
    return hits


def test_seed_questions_are_scrubbed_before_preprocessing(tmp_path: Path):
    data = _write_questions(tmp_path / "pii.csv", PII_QUESTIONS)
    dataset = {"path": "csv", "data_files": str(data), "column": "question"}
    seeds, stats = prepare_seed_questions(_config(tmp_path, dataset=dataset, questions={"seed_questions": None, "target": 8}))
    assert stats["pii_masked_input"] == {"CARD": 1, "EMAIL": 1, "PHONE": 1, "SSN": 1}
    assert "can i email my lab results to [EMAIL] before my appointment" in seeds
    assert "is my ssn [SSN] needed to refill my blood pressure prescription" in seeds
    assert not [s for s in seeds for secret in SECRETS for v in _variants(secret) if v in s]
    off = _config(tmp_path, "privacy.pii.enabled=false", dataset=dataset, questions={"seed_questions": None, "target": 8})
    seeds_off, stats_off = prepare_seed_questions(off)
    assert stats_off["pii_masked_input"] == {} and "is my ssn 123 45 6789 needed to refill my blood pressure prescription" in seeds_off


def test_request_cache_stores_scrubbed_text_and_counts(tmp_path: Path):
    path = tmp_path / "cache" / "requests.sqlite"
    cache = RequestCache(path, Scrubber())
    cache.put("k1", {"text": "Email jane@example.com or call 555-867-5309.", "model": "m"})
    cache.put("k2", {"text": "Nothing here.", "model": "m"})
    assert cache.get("k1") == {"text": "Email [EMAIL] or call [PHONE].", "model": "m"}
    assert cache.masked_counts("k1") == {"EMAIL": 1, "PHONE": 1}
    assert cache.masked_counts("k2") == {} and cache.masked_counts("missing") == {}
    cache.close()
    assert _leaks(path.parent, ["jane@example.com", "555-867-5309"]) == []
    plain = RequestCache(tmp_path / "plain.sqlite")
    plain.put("k", {"text": "jane@example.com"})
    assert plain.get("k") == {"text": "jane@example.com"}
    plain.close()


def test_a_fresh_reply_is_scrubbed_once_and_reports_what_its_cached_copy_reports(tmp_path: Path):
    """The cache scrubs a fresh reply as it stores it; the step reuses that text and those counts (no second
    scrub), keeps the raw text for steps that do not scrub, and the cached copy reports the same."""
    import asyncio

    from generation.backends.client import ChatRequest, LLMClient
    from generation.config import BackendConfig, RetryConfig, SamplingConfig
    from generation.pii import scrub_reply

    scrubbed: list[str] = []

    class CountingScrubber(Scrubber):
        def scrub(self, text: str) -> tuple[str, Counter[str]]:
            scrubbed.append(text)
            return super().scrub(text)

    scrubber = CountingScrubber()
    cache = RequestCache(tmp_path / "requests.sqlite", scrubber)
    request = ChatRequest.build([{"role": "user", "content": "A question?"}], SamplingConfig(), 7, "questions")

    async def ask(base_url: str):
        backend = BackendConfig(engine="endpoint", model="m", base_url=base_url)
        async with LLMClient(backend, base_url, RetryConfig(max_retries=0), cache=cache) as client:
            fresh = await client.chat(request)
            first = scrub_reply(scrubber, client, request, fresh)
            scrubs = len(scrubbed)
            cached = await client.chat(request)
            return fresh, first, scrubs, cached, scrub_reply(scrubber, client, request, cached)

    with FaultyEndpoint(reply=LEAKY_REPLY) as endpoint:
        fresh, first, scrubs, cached, again = asyncio.run(ask(endpoint.base_url))
    cache.close()
    assert scrubs == 1  # the cache's scrub only
    assert fresh.text == LEAKY_REPLY and not fresh.cached  # the raw reply, for steps that opt out of scrubbing
    assert first == (scrub(LEAKY_REPLY)[0], Counter({"EMAIL": 1, "PHONE": 1, "SSN": 1}))
    assert cached.cached and again == first
    # a step with another scrubber than the cache's scrubs the reply itself
    other = Scrubber(kinds=("EMAIL",))
    assert scrub_reply(other, type("C", (), {"cache": cache})(), request, fresh) == other.scrub(LEAKY_REPLY)


LEAKY_REPLY = "Should I email jane.doe@example.org or call +1 415 555 2671 about my SSN 321-54-9876 and asthma?"
LEAKY_SECRETS = ["jane.doe@example.org", "415 555 2671", "321-54-9876"]


def test_model_replies_with_pii_are_scrubbed_everywhere_and_counts_survive_resume(tmp_path: Path):
    """A model that leaks PII in every reply (injected by a local endpoint): the run folder, its cache,
    logs and dropped.csv hold placeholders only, and a rerun served from the cache reports the same counts."""
    with FaultyEndpoint(reply=LEAKY_REPLY) as endpoint:
        cfg = load_config(tiny_config(tmp_path, endpoint.base_url))
        out = tmp_path / "run"
        summary = run_pipeline(cfg, out, show_progress=False)
        replies = len(endpoint.requests) - 1  # minus the readiness probe
        assert _leaks(out, LEAKY_SECRETS) == []
        privacy = summary["privacy"]
        answers = privacy["masked"]["answers"]
        assert answers["EMAIL"] == answers["PHONE"] == answers["SSN"] > 0
        questions = privacy["masked"]["generated_questions"]
        assert questions["EMAIL"] == questions["PHONE"] == questions["SSN"] > 0
        assert questions["EMAIL"] + answers["EMAIL"] == replies
        dropped = (out / "dropped.csv").read_text(encoding="utf-8")
        assert "[EMAIL]" in dropped
        # resume: the shard is redone from the request cache, whose entries are already scrubbed
        (out / "shards" / "00000" / "done.json").unlink()
        again = run_pipeline(cfg, out, show_progress=False)
        assert len(endpoint.requests) == replies + 2  # only a new readiness probe reached the endpoint
        assert again["privacy"] == privacy
        assert _leaks(out, LEAKY_SECRETS) == []


def test_responses_stage_scrubs_a_users_questions_file(tmp_path: Path):
    questions = _write_questions(tmp_path / "mine.csv", PII_QUESTIONS[:4])
    with FaultyEndpoint(reply="Rest and fluids help most people recover within a week.") as endpoint:
        cfg = load_config(tiny_config(tmp_path, endpoint.base_url))
        out = tmp_path / "answers"
        summary = run_pipeline(cfg, out, stages=("responses",), questions_file=questions, show_progress=False)
        prompts = [m["content"] for body in endpoint.requests for m in body["messages"]]
    assert summary["privacy"]["masked"]["input_questions"] == {"CARD": 1, "EMAIL": 1, "PHONE": 1, "SSN": 1}
    assert not [p for p in prompts for secret in SECRETS if secret in p]
    assert _leaks(out, SECRETS) == []


@pytest.mark.model
def test_pipeline_on_questions_with_pii_writes_none_of_it(model_server: str, tmp_path: Path):
    """The real pipeline and model on seed questions holding an email, phone, SSN and card number."""
    data = _write_questions(tmp_path / "pii.csv", PII_QUESTIONS)
    config = tiny_config(
        tmp_path, model_server, dataset={"path": "csv", "data_files": str(data), "column": "question"},
        questions={"seed_questions": None, "target": 8},
    )  # fmt: skip
    cfg = load_config(config)
    out = tmp_path / "run"
    summary = run_pipeline(cfg, out, show_progress=False)
    assert summary["status"] == "completed"
    assert _leaks(out, SECRETS) == []
    saved = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    assert saved["privacy"]["pii_enabled"] is True
    assert saved["privacy"]["masked"]["input_questions"] == {"CARD": 1, "EMAIL": 1, "PHONE": 1, "SSN": 1}
    assert saved["stages"]["pii_masked_input"] == {"CARD": 1, "EMAIL": 1, "PHONE": 1, "SSN": 1}
    seeds = [row for row in (out / "questions.csv").read_text(encoding="utf-8").splitlines() if ",seed" in row]
    assert any("[EMAIL]" in row for row in seeds) and any("[CARD]" in row for row in seeds)
    assert (out / "shards" / "00000" / "cache" / "requests.sqlite").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["privacy"]["pii"]["enabled"] is True


def test_a_domain_pack_sets_the_policy_and_the_run_config_overrides_it(tmp_path: Path):
    pack = yaml.safe_load((Path(__file__).resolve().parent.parent / "configs/domains/healthcare.yaml").read_text(encoding="utf-8"))
    if isinstance(pack.get("sample"), str):
        pack["sample"] = str((Path(__file__).resolve().parent.parent / "configs/domains" / pack["sample"]).resolve())
    pack["privacy"] = {"pii": {"kinds": ["EMAIL", "PHONE"], "extra_patterns": {"CLAIM": r"\bCLM-\d{6}\b"}}}
    (tmp_path / "domains").mkdir()
    (tmp_path / "domains" / "insured.yaml").write_text(yaml.safe_dump(pack), encoding="utf-8")
    cfg = load_config(tiny_config(tmp_path, "http://127.0.0.1:9/v1", domain="insured"))
    scrubber = scrubber_for(cfg.privacy.pii)
    assert scrubber is not None
    assert scrubber.scrub("claim CLM-123456, SSN 123-45-6789, a@b.io") == (
        "claim [CLAIM], SSN 123-45-6789, [EMAIL]", Counter({"CLAIM": 1, "EMAIL": 1})
    )
    overridden = load_config(tiny_config(tmp_path, "http://127.0.0.1:9/v1", domain="insured", privacy={"pii": {"enabled": False}}))
    assert overridden.privacy.pii.enabled is False and overridden.privacy.pii.extra_patterns == {"CLAIM": r"\bCLM-\d{6}\b"}
