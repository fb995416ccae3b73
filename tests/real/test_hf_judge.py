"""The `hf` judge with a real chat model (SmolLM2-135M-Instruct, transformers 5): a verdict from its output."""

from __future__ import annotations

import pytest

from moalign.rubric.judges import judge_pair, make_judge
from moalign.rubric.llm import HFJudge, parse_reply
from moalign.rubric.schema import load_meta_rubric

from tests.real.conftest import ROOT

GOOD = "1. 47 + 38\n2. 7 + 8 = 15, write 5 carry 1\n3. 4 + 3 + 1 = 8, write 8 carry 0\n4. so the result is 85\n" \
       "Answer: \\boxed{85}"
TERSE = "Answer: \\boxed{85}"


@pytest.fixture(scope="module")
def judge(smollm2):
    return HFJudge(model=str(smollm2), retries=0, max_new_tokens=48)


@pytest.fixture(scope="module")
def rubric():
    return load_meta_rubric(ROOT / "rubrics/meta.yaml", ROOT / "rubrics/domains/arithmetic.yaml",
                            ROOT / "rubrics/accepted.yaml")


def test_chat_encoding_is_passed_to_generate_by_name(judge):
    enc = judge.encode("Which is larger, 3 or 5?")
    assert set(enc) == {"input_ids", "attention_mask"} and enc["input_ids"].shape == enc["attention_mask"].shape
    assert judge.tok.decode(enc["input_ids"][0]).endswith("<|im_start|>assistant\n")
    reply = judge.complete("Reply with the word yes.")  # transformers 5 BatchEncoding: AttributeError before the fix
    assert isinstance(reply, str) and reply.strip()


@pytest.mark.slow
def test_smollm2_verdict_parses_or_falls_back_as_documented(judge, rubric):
    before = judge.fallbacks
    res = judge_pair(judge, "What is 47 + 38?", GOOD, TERSE, rubric, "85")  # both orders, aggregated outside
    assert res["verdict"] in ("A", "B", "tie") and not res["gate"] and res["criteria"]
    fallback = [c for c in res["criteria"] if c["reason"].startswith("hf judge fallback")]
    assert bool(fallback) == (judge.fallbacks > before)  # SmolLM2-135M rarely writes the JSON
    for c in fallback:  # the documented choice fallback: one `overall` core criterion (both orders' rows merged)
        assert (c["name"], c["tier"]) == ("overall", "core") and {c["ab"], c["ba"]} <= {-1, 0, 1}


def test_fallback_off_raises_the_judge_error(smollm2, rubric):
    from moalign.rubric.judges import JudgeError

    strict = make_judge("hf", model=str(smollm2), retries=0)
    strict.choice_fallback, strict.max_new_tokens = False, 4  # 4 tokens: never a complete JSON reply
    with pytest.raises(JudgeError, match=r"judge failed after 1 attempts; last error: (ValueError|JSONDecodeError)"):
        strict.judge("What is 47 + 38?", GOOD, TERSE, rubric, "85")
    with pytest.raises(ValueError):
        parse_reply(strict.complete("Say hi."))
