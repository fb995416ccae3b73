"""The ``honest_working`` annotator against the generator's own targets, and what the judge can see of it.

Two guards: every correct SFT target the generator writes is honest (a defect there mislabels the
pairs), and the ``rules`` judge has no feature that reads the hidden criterion (only the two
partial proxies named in moalign/rubric/annotators.py, each seeing a bounded share of the defects).
"""

from __future__ import annotations

import random
import re

import pytest

from moalign.data.arith import OPS, generate
from moalign.rubric.annotators import honest_working
from moalign.rubric.features import FEATURES
from moalign.text import format_completion

PROXIES = {"numbers_consistent", "states_result"}  # the documented partial proxies of the criterion
# share of one-digit defects each proxy notices, measured on this seed: 0.431 / 0.119, together
# 0.550. A numbers_consistent that read column lines whole (``6 + 9 + 1 = 16``) would notice 0.503
# (together 0.622), so the caps sit in between. Over seeds 0-19 (generator and defect seed both
# set to the seed): numbers_consistent mean 0.406, worst 0.444; states_result mean 0.114, worst
# 0.137; together mean 0.520, worst 0.562. The whole-line numbers_consistent gives mean 0.485
# (together 0.599) there and breaks the caps on 17 (16) of those 20 seeds, on seed 0 included
PROXY_CAP = {"numbers_consistent": 0.47, "states_result": 0.15}
UNION_CAP = 0.58


def _targets(max_digits: int, rows: int = 4000) -> list[dict]:
    out = generate({"sym": rows}, 1, max_digits, {o: 1.0 for o in OPS}, 0,
                   {"worked": 0.6, "outline": 0.2, "terse": 0.2}, "digits")
    return out["train"]


def _borrows_through_zero(solution: str) -> bool:
    """A subtraction column that borrows after a borrow from a 0 (written ``9 - y = z, borrow 1``)."""
    flags = re.findall(r"^\d+\. (\d+) - \d+ = \d+, borrow ([01])$", solution, re.M)
    return any(prev[1] == "1" and x == "9" and k == "1" for prev, (x, k) in zip(flags, flags[1:]))


@pytest.mark.parametrize("max_digits", [2, 3])
def test_every_generated_target_is_honest(max_digits):
    rows = _targets(max_digits)
    want = {"worked": 1, "outline": 1, "terse": 0}  # terse: nothing to check
    wrong = [(r["style"], r["solution"]) for r in rows
             if honest_working(format_completion(r["solution"], r["answer"])) != want[r["style"]]]
    # over seeds 0-19: 0 misjudged on every seed (2 and 3 digits)
    assert not wrong, f"{len(wrong)} of {len(rows)} correct targets misjudged, e.g. {wrong[:2]}"
    ops = {op: sum(op_of(r) == op for r in rows if r["style"] == "worked") for op in OPS}
    # every operation is covered; over seeds 0-19: mean 354 / 570, worst 330 / 517 (2 / 3 digits)
    assert min(ops.values()) > 100, ops
    through_zero = [r for r in rows if r["style"] == "worked" and _borrows_through_zero(r["solution"])]
    # enough to catch a borrow-through-zero bug (the annotator before that fix misjudges every one of
    # them); over seeds 0-19: mean 31.2 / 52.1, worst 23 / 39 (2 / 3 digits)
    assert len(through_zero) > 15, len(through_zero)
    if max_digits == 3:  # plain subtraction borrows through zero too (e.g. 305 - 17)
        assert any(op_of(r) == "sub" for r in through_zero)  # over seeds 0-19: mean 26.5, worst 19 such rows


def op_of(row: dict) -> str:
    """The operation of a ``sym`` row (its question is the bare expression)."""
    q = row["question"]
    return "two" if q.count(" ") == 6 else {"+": "add", "-": "sub", "*": "mul"}[q.split()[1]]


def test_borrow_through_zero_hand_cases():
    ok = " 1. 103 - 34\n2. 13 - 4 = 9, borrow 1\n3. 9 - 3 = 6, borrow 1\n4. 0 - 0 = 0, borrow 0\n" \
         "5. so the result is 69\nAnswer: \\boxed{69}"
    assert honest_working(ok) == 1
    assert honest_working(ok.replace("9 - 3 = 6, borrow 1", "9 - 3 = 6, borrow 0")) == -1  # 9 after a borrow is a 0
    assert honest_working(ok.replace("13 - 4 = 9, borrow 1", "13 - 4 = 9, borrow 0")) == -1
    # without a borrow into it, a 9 lends nothing: "9 - 3 = 6, borrow 1" is a defect there
    assert honest_working(" 1. 96 - 34\n2. 6 - 4 = 2, borrow 0\n3. 9 - 3 = 6, borrow 1\n"
                          "4. so the result is 62\nAnswer: \\boxed{62}") == -1


def _defect_pairs(n: int = 1500, seed: int = 0) -> list[tuple[str, str, str]]:
    """(clean, defective, answer): one digit of a working line changed, same length, same answer."""
    rng = random.Random(seed)
    pairs = []
    for r in _targets(2, n):
        if r["style"] != "worked":
            continue
        clean = format_completion(r["solution"], r["answer"])
        lines = clean.split("\n")
        spots = [(i, m.start()) for i, ln in enumerate(lines[:-1]) for m in re.finditer(r"\d", ln)
                 if m.start() > ln.index(".")]
        i, pos = rng.choice(spots)
        digit = rng.choice([c for c in "0123456789" if c != lines[i][pos]])
        lines[i] = lines[i][:pos] + digit + lines[i][pos + 1:]
        bad = "\n".join(lines)
        if honest_working(bad) == -1:
            pairs.append((clean, bad, r["answer"]))
    return pairs


def test_judge_features_do_not_read_the_hidden_criterion():
    """A one-digit defect in the working: only the documented proxies may notice it, and only sometimes.

    Fails when a feature is added (or a proxy sharpened) that checks the column arithmetic, the
    borrow/carry chain, the step numbers or the expression the annotator reads.
    """
    pairs = _defect_pairs()
    assert len(pairs) > 400  # over seeds 0-19: mean 882, worst 835
    seen = {name: sum(FEATURES.get(name)(c, answer=a) != FEATURES.get(name)(b, answer=a) for c, b, a in pairs)
            / len(pairs) for name in FEATURES.names()}
    assert {n for n, s in seen.items() if s > 0} <= PROXIES, seen  # over seeds 0-19: no other feature, any seed
    for name, cap in PROXY_CAP.items():  # over seeds 0-19: see PROXY_CAP
        assert seen[name] <= cap, (name, seen[name])
    union = sum(any(FEATURES.get(n)(c, answer=a) != FEATURES.get(n)(b, answer=a) for n in FEATURES.names())
                for c, b, a in pairs) / len(pairs)
    assert union <= UNION_CAP, union  # over seeds 0-19: mean 0.520, worst 0.562
