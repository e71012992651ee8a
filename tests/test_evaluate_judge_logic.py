"""The judge's steps and how its answers combine with the offline cues, on a scripted client (no model).

The scripted judge answers from the request text, so each test knows what P(yes) every question gets."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from generation.backends.client import ChatResult
from generation.config import load_config
from generation.evaluation.evaluate import agreement_verdict, apply_judge, easy_verdict
from generation.evaluation.judge import ENVELOPE_KEY, JUDGE_COLUMNS, REQUESTS_PER_PAIR, _judge_rows, complete_rubric
from generation.evaluation.stance import ClaimComparison, Cue

CFG = load_config(None)
TH = CFG.evaluation.thresholds
PAIR = {"prompt": "Does aspirin thin the blood?", "chosen": "Yes, aspirin thins the blood.", "rejected": "No, aspirin thickens the blood."}


def envelope(p_yes: float) -> str:
    top = {"Yes": math.log(p_yes), "No": math.log(1 - p_yes)}
    return json.dumps({ENVELOPE_KEY: 1, "reply": "Yes" if p_yes >= 0.5 else "No", "top_logprobs": top})


class ScriptedJudge:
    """P(yes) from the user message: 0.9 for "same claims" with the chosen answer first, 0.5 the other way
    round (a position bias), 0.2 for "believe", 0.7 otherwise, and 2 or 4 (half each) for a 1-5 rating;
    replies as log-prob envelopes."""

    capacity = 4

    def __init__(self):
        self.users: list[str] = []

    async def chat(self, request):
        user = request.messages[-1][1]
        self.users.append(user)
        if "<answer_a>" in user:
            p = 0.9 if user.index(PAIR["chosen"]) < user.index(PAIR["rejected"]) else 0.5
        elif "believe" in user:
            p = 0.2
        elif user.startswith("Rate"):
            text = json.dumps({ENVELOPE_KEY: 1, "reply": "4", "top_logprobs": {"4": math.log(0.5), "2": math.log(0.5)}})
            return ChatResult(text, "stop", len(user), 1, "primary", "scripted", "local")
        else:
            p = 0.7
        text = envelope(p)
        return ChatResult(text, "stop", len(user), 3, "primary", "scripted", "local")


def test_judge_steps_ask_each_question_and_average_the_pair_question_over_both_orders():
    client = ScriptedJudge()
    scores, methods = asyncio.run(_judge_rows(client, complete_rubric(CFG.evaluation.judge.rubric), [PAIR, PAIR], False))
    assert len(client.users) == 2 * REQUESTS_PER_PAIR and methods == {"logprobs": 2 * REQUESTS_PER_PAIR}
    row = scores[0]
    assert set(row) == set(JUDGE_COLUMNS)
    assert row["judge_same_claims"] == pytest.approx((0.9 + 0.5) / 2)
    assert row["judge_rejected_plausible"] == pytest.approx(0.2)
    assert row["judge_chosen_correct"] == pytest.approx(0.7) and row["judge_rejected_incorrect"] == pytest.approx(0.3)
    assert row["judge_truthfulness_chosen"] == pytest.approx(3.0)
    pair_asks = [u for u in client.users if "<answer_a>" in u]
    assert len(pair_asks) == 4 and all(PAIR["prompt"] in u for u in pair_asks)


def test_an_unreadable_pair_reply_leaves_the_offline_verdict():
    assert agreement_verdict(ClaimComparison([Cue("claims", "agree", "restates")]), None, True, TH) == "offline: restates"


def comparison(*cues: Cue) -> ClaimComparison:
    return ClaimComparison(list(cues))


AGREE = Cue("claims", "agree", "restates the chosen answer")
DIFFER = Cue("negation", "differ", "'treat' negated on one side only")


def test_a_capable_judge_decides_agreement_and_the_evidence_names_the_signal():
    assert agreement_verdict(comparison(DIFFER), 0.8, True, TH).startswith("judge: P(same claims) 0.80")
    assert "negated on one side" in agreement_verdict(comparison(DIFFER), 0.8, True, TH)  # the offline cue is quoted
    assert agreement_verdict(comparison(AGREE), 0.2, True, TH) is None  # the judge overrules a restatement
    assert "no offline cue" in agreement_verdict(comparison(), 0.6, True, TH)


def test_an_unverified_judge_never_changes_the_offline_verdict():
    assert agreement_verdict(comparison(AGREE), 0.0, False, TH) == "offline: restates the chosen answer"
    assert agreement_verdict(comparison(DIFFER), 1.0, False, TH) is None
    assert easy_verdict(None, None, 0.0, False, TH) is None
    assert easy_verdict(None, "hardness 0.2", 0.99, False, TH) == "offline: hardness 0.2"


def test_easy_form_cues_always_count_and_a_capable_judge_replaces_lm_plausibility():
    assert easy_verdict("not an answer: a fragment", None, 0.99, True, TH) == "offline: not an answer: a fragment"
    assert easy_verdict(None, "hardness 0.2", 0.9, True, TH) is None  # the judge finds it believable
    found = easy_verdict(None, None, 0.1, True, TH)
    assert found.startswith("judge: P(a lay reader believes it) 0.10")


def fake_result(flags: dict[str, str], claims: ClaimComparison, form=None, unlikely=None) -> dict:
    return {"flags": list(flags), "evidence": dict(flags), "_offline": {"claims": claims, "easy_form": form, "easy_unlikely": unlikely}}


@pytest.mark.parametrize("capable", [True, False])
def test_apply_judge_recomputes_flags_only_for_a_capable_judge(capable):
    results = [fake_result({"rejected_agrees": "offline: restates"}, comparison(AGREE), unlikely="hardness 0.2"), fake_result({}, comparison())]
    scores = [
        {c: None for c in JUDGE_COLUMNS} | {"judge_same_claims": 0.1, "judge_rejected_plausible": 0.9, "judge_chosen_correct": 0.9},
        {c: None for c in JUDGE_COLUMNS} | {"judge_same_claims": 0.95, "judge_rejected_plausible": 0.05, "judge_chosen_correct": 0.2},
    ]  # fmt: skip
    apply_judge(results, scores, CFG, capable)
    first, second = results
    assert "chosen_doubtful" in second["flags"] and "chosen_doubtful" not in first["flags"]
    if capable:
        assert "rejected_agrees" not in first["flags"] and "rejected_easy" not in first["flags"]
        assert second["evidence"]["rejected_agrees"].startswith("judge:") and second["evidence"]["rejected_easy"].startswith("judge:")
    else:
        assert first["flags"] == ["rejected_agrees"] and "rejected_agrees" not in second["flags"]
