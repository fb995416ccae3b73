"""Aggregation, order swap, schema errors, PVR gate and the rules judge."""

import pytest

from moalign.rubric.aggregate import CriterionResult as C
from moalign.rubric.aggregate import aggregate, swap, verdict_both_orders
from moalign.rubric.judges import JUDGES, judge_pair, make_judge
from moalign.rubric.pvr import ground_truth, instruction, length_limit, pvr_gate, pvr_score
from moalign.rubric.schema import RubricError, dump_meta_rubric, load_meta_rubric, parse_rubric_text
from tests.rubric.helpers import LAYER, META, resp


def test_aggregate_veto_weights_zero_dropped():
    assert aggregate([C("c", "fatal", "B", -2), C("x", "core", "A", 2)]) == -2  # veto: fatal scores only
    assert aggregate([C("c", "fatal", "A", 1), C("d", "fatal", "B", -2), C("x", "core", "A", 2)]) == -1
    assert aggregate([C("c", "fatal", "tie", 0), C("x", "core", "A", 1), C("y", "highlight", "B", -2)]) == \
        pytest.approx((5 * 1 + 1 * -2) / 6)  # zero fatal dropped -> weighted mean
    assert aggregate([C("x", "core", "tie", 0)]) == 0.0 and aggregate([]) == 0.0
    assert aggregate([C("a", "important", "A", 2), C("b", "important", "B", -1)]) == pytest.approx(0.5)
    assert aggregate([C("a", "core", "A", 1), C("b", "highlight", "B", -2)],
                     {"core": 1, "important": 2, "highlight": 1}) == pytest.approx(-0.5)  # weights matter
    assert aggregate([C("a", "core", "B", 2)]) == -2  # sign from chosen (OpenRS)
    with pytest.raises(ValueError, match="-2..2"):
        C("a", "core", "A", 3)
    with pytest.raises(ValueError, match="unknown tier"):
        C("a", "vital", "A", 1)


@pytest.mark.parametrize("ab, ba, want", [
    (1.0, -0.5, "A"), (-1.0, 2.0, "B"),  # both orders agree
    (1.0, 0.0, "A"), (0.0, 1.0, "B"),  # OpenRS: a first-slot preference wins unless the other order contradicts it
    (0.0, -1.0, "tie"), (-1.0, 0.0, "tie"),  # a preference only from the second slot is not enough
    (1.0, 1.0, "tie"), (-1.0, -1.0, "tie"), (0.0, 0.0, "tie"),  # position bias / no preference
])
def test_both_orders_rule_openrs(ab, ba, want):
    assert verdict_both_orders(ab, ba) == want


def test_both_orders_rule_threshold():
    assert verdict_both_orders(0.6, -0.5, min_score=0.5) == "A"  # > m forward, <= -m swapped
    assert verdict_both_orders(0.5, -1.0, min_score=0.5) == "tie"  # forward not > m
    assert verdict_both_orders(0.6, -0.4, min_score=0.5) == "tie"  # swapped not <= -m
    assert verdict_both_orders(-0.5, 0.6, min_score=0.5) == "B"


def test_judge_pair_uses_the_rule_on_both_orders():
    """A judge that prefers A when A is shown first and sees no difference the other way round: A wins."""

    class Stub:
        def judge(self, query, a, b, rubric, ground_truth=None):
            return [C("x", "core", "A", 2)] if a == "alpha" else [C("x", "core", "tie", 0)]

    r = load_meta_rubric(META, LAYER)
    out = judge_pair(Stub(), "q", "alpha", "beta", r)
    assert (out["verdict"], out["gate"], out["score_ab"], out["score_ba"]) == ("A", False, 2.0, 0.0)
    assert judge_pair(Stub(), "q", "beta", "alpha", r)["verdict"] == "B"


def test_swap_hand_computed():
    r = [C("a", "core", "A", 2), C("b", "highlight", "B", -1)]
    s = swap(r)
    assert [(x.chosen, x.signed) for x in s] == [("B", -2), ("A", 1)]
    assert aggregate(r) == pytest.approx((5 * 2 + 1 * -1) / 6)  # 1.5
    assert aggregate(s) == pytest.approx((5 * -2 + 1 * 1) / 6)  # -1.5
    assert aggregate(swap([C("f", "fatal", "B", 1), C("x", "core", "A", 2)])) == 1.0  # the veto flips too


def test_schema_errors_name_file_line_and_key(tmp_path):
    with pytest.raises(RubricError, match=r"r.yaml: line 3: criteria.0.tier"):
        parse_rubric_text("criteria:\n  - name: x\n    tier: fatl\n", "r.yaml")
    with pytest.raises(RubricError, match=r"r.yaml: line \d+: malformed YAML"):
        parse_rubric_text("criteria: [\n  - x: {\n", "r.yaml")
    with pytest.raises(RubricError, match=r"line 4: criteria.1.wieght: unknown key"):
        parse_rubric_text("criteria:\n  - name: x\n  - name: y\n    wieght: 2\n", "r.yaml")
    with pytest.raises(RubricError, match="unknown check 'vibes'; valid names: .*length"):
        parse_rubric_text("criteria:\n  - name: x\n    check: vibes\n", "r.yaml")
    with pytest.raises(RubricError, match="fatal must be 'veto'"):
        parse_rubric_text("tier_weights: {fatal: 3}\n", "r.yaml")
    with pytest.raises(RubricError, match="duplicate criterion names"):
        parse_rubric_text("criteria:\n  - name: x\n  - name: x\n", "r.yaml")
    with pytest.raises(RubricError, match="not found"):
        load_meta_rubric(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nprinciples: [ok]\ncriteria:\n  - name: c\n    tier: core\n    margin: -1\n")
    with pytest.raises(RubricError, match=r"bad.yaml: line 6: criteria.0.margin"):
        load_meta_rubric(bad)


def test_roundtrip_and_layers(tmp_path):
    r = load_meta_rubric(META, LAYER)
    assert r.criteria[0].tier == "fatal" and "economy" in [c.name for c in r.candidates("arithmetic")]
    dump_meta_rubric(r, tmp_path / "x.yaml")
    assert load_meta_rubric(tmp_path / "x.yaml") == r


def test_pvr_checks_and_gate():
    assert ground_truth(resp(5), answer="5") == 1
    assert ground_truth(resp(6), answer="5") == -1
    assert ground_truth("no answer", answer="5") == 0 and ground_truth(resp(5)) == 0
    assert length_limit("a b c", max_words=2) == -1 and instruction("x y", must_include=["y"]) == 1
    assert pvr_gate(resp(5), resp(6), {"answer": "5"}) == "A"
    assert pvr_gate(resp(6), resp(5), {"answer": "5"}) == "B"
    assert pvr_gate(resp(5), "no answer", {"answer": "5"}) == "A"
    assert pvr_gate(resp(6), "no answer", {"answer": "5"}) is None  # neither verified: the judge decides
    assert pvr_gate(resp(5), resp(5, filler=3), {"answer": "5"}) is None
    assert pvr_gate("", resp(6), {"answer": "5"}) == "B"  # guardrail: empty loses
    assert pvr_gate("a b c d", "a b", {"max_words": 3}, ["length_limit"]) == "B"
    assert pvr_score(resp(5), {"answer": "5"}) == 1.0 and pvr_score(resp(6, boxed=False), {"answer": "5"}) == 0.25


def test_rules_judge_deterministic_and_rubric_matters():
    rubric = load_meta_rubric(META)
    j = make_judge("rules")
    a, b = resp(5, n_steps=2), resp(5, n_steps=2, filler=6)
    r1 = judge_pair(j, "q", a, b, rubric, "5")
    assert r1 == judge_pair(make_judge("rules"), "q", a, b, rubric, "5")
    assert r1["verdict"] == "B" and not r1["gate"]  # the generic rubric rewards the longer answer
    assert {row["name"] for row in r1["criteria"]} == {"thoroughness"}
    flipped = rubric.model_copy(deep=True)
    flipped.criteria = [c.model_copy(update={"direction": -1}) if c.name == "thoroughness" else c
                        for c in flipped.criteria]
    assert judge_pair(j, "q", a, b, flipped, "5")["verdict"] == "A"
    wide = rubric.model_copy(deep=True)  # a margin wider than the difference: criterion not instantiated
    wide.criteria = [c.model_copy(update={"margin": 100.0}) if c.name == "thoroughness" else c
                     for c in wide.criteria]
    assert judge_pair(j, "q", a, b, wide, "5")["verdict"] == "tie"
    # tier weights decide between a core and an important criterion pulling apart
    c, d = resp(5, n_steps=3), resp(5, n_steps=1, filler=12)  # c: more steps; d: more words
    t = rubric.model_copy(deep=True)
    t.criteria = [x.model_copy(update={"tier": "core"}) if x.name == "step_structure" else x for x in t.criteria]
    v1 = judge_pair(j, "q", c, d, t, "5")["verdict"]
    t.tier_weights = {"fatal": "veto", "core": 1.0, "important": 5.0, "highlight": 1.0}
    assert {v1, judge_pair(j, "q", c, d, t, "5")["verdict"]} == {"A", "B"}


def test_unknown_judge_lists_valid_names():
    with pytest.raises(KeyError, match="valid names: hf, openai, rules"):
        make_judge("gpt5")
    assert "rules" in JUDGES
