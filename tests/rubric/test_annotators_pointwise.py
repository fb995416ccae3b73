"""The hidden-criterion annotator, the correctness-tie split and the pointwise baseline judge."""

import pytest

from moalign.rubric.annotators import ANNOTATORS, honest_key, honest_working, working_audit
from moalign.rubric.evolve import agreement
from moalign.rubric.features import FEATURES
from moalign.rubric.judges import judge_pair, make_judge
from moalign.rubric.pointwise import FATAL, pointwise_agreement, pointwise_pair, pointwise_score
from moalign.rubric.preferences import correctness_tie, synthetic_pairs, tie_split
from moalign.rubric.schema import Criterion, MetaRubric, load_meta_rubric
from tests.rubric.helpers import META, preference_splits as build_preferences

CLEAN = " 1. 69 + 92\n2. 9 + 2 = 11, write 1 carry 1\n3. 6 + 9 + 1 = 16, write 6 carry 1\n" \
        "4. so the result is 161\nAnswer: \\boxed{161}"
BAD_CARRY = CLEAN.replace("write 1 carry 1", "write 1 carry 0")  # one wrong carry digit, nothing else
OUTLINE = " 1. 88 - 35\n2. so the result is 53\nAnswer: \\boxed{53}"
TERSE = " Answer: \\boxed{53}"


@pytest.mark.parametrize("text,want", [
    (CLEAN, 1), (OUTLINE, 1), (TERSE, 0), (BAD_CARRY, -1),
    (OUTLINE.replace("is 53\n", "is 52\n"), -1),                    # the result does not follow from the expression
    (OUTLINE.replace("53\nAnswer", "53 Cuantas.\nAnswer"), -1),      # stray words: padding that explains nothing
    (CLEAN.replace("3. 6", "8. 6"), -1),                             # steps out of order
    (CLEAN.replace("6 + 9 + 1 = 16", "6 + 9 = 16"), -1),             # the carry chain is broken
    (CLEAN.replace("boxed{161}", "boxed{160}"), -1),                 # the answer is not the result line
    (" 1. 89 - 57\n2. 9 - 7 = 2, borrow 0\n3. 8 - 5 = 3, borrow 0\n4. so the result is 32\nAnswer: \\boxed{32}", 1),
    (" 1. 51 - 17\n2. 11 - 7 = 4, borrow 1\n3. 4 - 1 = 3, borrow 0\n4. so the result is 34\nAnswer: \\boxed{34}", 1),
    (" 1. 51 - 17\n2. 11 - 7 = 4, borrow 0\n3. 4 - 1 = 3, borrow 0\n4. so the result is 34\nAnswer: \\boxed{34}", -1),
])
def test_honest_working_hand_cases(text, want):
    assert honest_working(text) == want


def test_hidden_criterion_is_invisible_to_every_judge_feature():
    """A single carry digit flips the annotator's verdict but no feature of the rules judge."""
    assert working_audit(CLEAN) == (4 + 2 * 4 + 1 + 1, 0)  # step numbers, column books, result, answer
    assert working_audit(BAD_CARRY)[1] == 2  # the carry digit, and the next column adds a carry never written
    for name in FEATURES.names():
        f = FEATURES.get(name)
        assert f(CLEAN, answer="161") == f(BAD_CARRY, answer="161"), name
    assert honest_key(CLEAN, "161") > honest_key(BAD_CARRY, "161")
    # so no rubric of the rules judge can tell them apart: every rubric calls it a tie
    j, rubric = make_judge("rules"), load_meta_rubric(META)
    assert judge_pair(j, "q", CLEAN, BAD_CARRY, rubric, "161")["verdict"] == "tie"
    assert set(ANNOTATORS.names()) >= {"rules", "honest_working"}


def _samples(n):
    """Per prompt: clean worked, bad-carry worked (same length), outline, terse; right or wrong answers."""
    prompts, answers, samples = [], [], []
    for i in range(n):
        a, b = 10 + i % 40, 20 + i % 30
        s = a + b
        w = f" 1. {a} + {b}\n2. {a % 10} + {b % 10} = {a % 10 + b % 10}, write {(a % 10 + b % 10) % 10} carry " \
            f"{(a % 10 + b % 10) // 10}\n3. {a // 10} + {b // 10}" + (" + 1" if a % 10 + b % 10 >= 10 else "") + \
            f" = {s // 10}, write {s // 10} carry 0\n4. so the result is {s}\nAnswer: \\boxed{{{s}}}"
        bad = w.replace(f"= {s // 10}, write {s // 10} carry 0", f"= {s // 10}, write {s // 10} carry 1")
        wrong = s + 1 + i % 3
        out = [w, bad, f" 1. {a} + {b}\n2. so the result is {s}\nAnswer: \\boxed{{{s}}}", f" Answer: \\boxed{{{s}}}",
               f" Answer: \\boxed{{{wrong}}}", f" 1. {a} + {b}\n2. so the result is {wrong}\nAnswer: \\boxed{{{wrong}}}"]
        prompts.append(f"Question: {a} + {b}?\nSolution:")
        answers.append(str(s))
        samples.append(out[i % 2:] if i % 3 else out)
    return prompts, answers, samples


def test_tie_split_is_left_to_the_rubric():
    p, a, s = _samples(60)
    rows = synthetic_pairs(p, a, ["en"] * 60, s, 0.0, 0, max_pairs_per_prompt=4, annotator="honest_working")
    tie = tie_split(rows)
    assert tie and len(tie) < len(rows)  # over seeds 0-19: 120 of 240 on every seed
    assert all(r["tie"] == correctness_tie(r) for r in rows)
    assert {r["level"] for r in tie} == {"honesty"} and all(r["level"] == "correct" for r in rows if not r["tie"])
    j, rubric = make_judge("rules"), load_meta_rubric(META)
    assert not any(judge_pair(j, r["prompt"], r["chosen"], r["rejected"], rubric, r["answer"])["gate"] for r in tie)
    assert all(judge_pair(j, r["prompt"], r["chosen"], r["rejected"], rubric, r["answer"])["gate"]
               for r in rows if not r["tie"])
    # both wrong: an honest wrong outline is preferred to... nothing checkable is tied; a defect loses
    assert correctness_tie({"chosen": TERSE, "rejected": OUTLINE, "answer": "53"})
    assert correctness_tie({"chosen": TERSE.replace("53", "1"), "rejected": OUTLINE.replace("53", "2"), "answer": "53"})
    assert not correctness_tie({"chosen": TERSE, "rejected": TERSE.replace("53", "1"), "answer": "53"})


def test_balance_length_makes_length_uninformative_on_the_tie_split():
    p, a, s = _samples(90)
    rows = synthetic_pairs(p, a, ["en"] * 90, s, 0.0, 0, 4, True, "honest_working", balance_length=True)
    tie = tie_split(rows)
    longer = sum(len(r["chosen"].split()) > len(r["rejected"].split()) for r in tie)
    shorter = sum(len(r["chosen"].split()) < len(r["rejected"].split()) for r in tie)
    assert longer == shorter > 0  # over seeds 0-19: 90 == 90 on every seed
    # the rules judge's length feature alone predicts none of it; the hidden labels still hold
    length_only = MetaRubric(criteria=[Criterion(name="c", check="answer_matches_reference", tier="fatal"),
                                       Criterion(name="l", check="length", tier="core", direction=-1)])
    assert agreement(make_judge("rules"), length_only, tie) == pytest.approx(0.5)  # exactly 0.5, every seed 0-19
    assert all(honest_key(r["chosen"], r["answer"]) > honest_key(r["rejected"], r["answer"]) for r in rows)
    unbalanced = tie_split(synthetic_pairs(p, a, ["en"] * 90, s, 0.0, 0, 4, True, "honest_working"))
    # over seeds 0-19: mean 0.647, worst (nearest 0.5) 0.594
    assert agreement(make_judge("rules"), length_only, unbalanced) != pytest.approx(0.5)


def test_features_alone_cannot_reproduce_hidden_labels():
    """Best single-feature rules judge (either direction) stays far from the labels on the tie split."""
    p, a, s = _samples(90)
    ds = build_preferences(p, a, ["en"] * 90, s, 0.0, 0, (0.5, 0.25, 0.25), 4, True, "honest_working", True)
    tie = tie_split([r for split in ds.values() for r in split])
    j = make_judge("rules")
    best = max(agreement(j, MetaRubric(criteria=[Criterion(name="f", check=f, tier="core", direction=d)]), tie)
               for f in FEATURES.names() for d in (1, -1))
    # a clean and a bad-carry working look identical to every feature: measured 0.575 on this seed;
    # over seeds 0-19: mean 0.568, worst 0.579
    assert best < 0.7


def test_pointwise_score_hand_computed():
    rubric = MetaRubric(criteria=[
        Criterion(name="correct", check="answer_matches_reference", tier="fatal"),
        Criterion(name="boxed", check="has_answer", tier="core"),
        Criterion(name="detail", check="length", tier="important", direction=1, margin=50),
        Criterion(name="steps", check="steps", tier="highlight", direction=-1)])
    # OUTLINE: correct (+1), boxed (1), 12 words -> 12/(12+20), 2 steps -> -(2/(2+4))
    want = FATAL * 1 + (5 * 1 + 2 * (12 / 32) + 1 * -(2 / 6)) / 8
    assert pointwise_score(rubric, OUTLINE, "53") == pytest.approx(want)
    # TERSE: correct, boxed, 2 words -> 2/22, no steps
    assert pointwise_score(rubric, TERSE, "53") == pytest.approx(FATAL + (5 + 2 * (2 / 22)) / 8)
    res = pointwise_pair(OUTLINE, TERSE, rubric, "53")
    assert res["verdict"] == ("A" if want > FATAL + (5 + 2 * (2 / 22)) / 8 else "B") and not res["gate"]
    # margins do not exist pointwise: the pairwise judge calls the 10-word difference a tie (margin 50)
    pair = judge_pair(make_judge("rules"), "q", OUTLINE, TERSE, rubric, "53")
    assert pair["verdict"] == "B" and res["verdict"] == "A"
    # the gate decides first, as in the pairwise judge
    assert pointwise_pair(TERSE.replace("53", "1"), TERSE, rubric, "53") == {
        "verdict": "B", "gate": True, "score_a": None, "score_b": None}
    pairs = [{"chosen": OUTLINE, "rejected": TERSE, "answer": "53"}, {"chosen": TERSE, "rejected": OUTLINE, "answer": "53"}]
    assert pointwise_agreement(rubric, pairs) == 0.5 and pointwise_agreement(rubric, pairs[:1]) == 1.0
    same = [{"chosen": CLEAN, "rejected": BAD_CARRY, "answer": "161"}]
    assert pointwise_agreement(rubric, same, tie_credit=0.25) == 0.25  # identical features: a tie
