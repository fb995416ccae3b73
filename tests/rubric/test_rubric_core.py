import random

import pytest

from moalign.rubric.aggregate import CriterionResult as C
from moalign.rubric.aggregate import aggregate, verdict_both_orders
from moalign.rubric.config import EvolveConfig
from moalign.rubric.evolve import agreement, evolve
from moalign.rubric.features import ground_truth, pvr_gate, pvr_score
from moalign.rubric.judges import judge_pair, make_judge
from moalign.rubric.preferences import annotator_key, split_by_prompt, synthetic_pairs
from moalign.rubric.reward import make_rubric_reward
from moalign.rubric.review import propose_domain_edits, review
from moalign.rubric.schema import RubricError, dump_meta_rubric, load_meta_rubric, parse_rubric_text
from tests.tiny import ROOT

META = ROOT / "rubrics/meta.yaml"
LAYER = ROOT / "rubrics/domains/arithmetic.yaml"


def resp(ans, n_steps=2, filler=0, boxed=True):
    steps = "\n".join(f"{i + 1}. step {i} " + "word " * filler for i in range(n_steps))
    return steps + (f"\nAnswer: \\boxed{{{ans}}}" if boxed else "")


def test_aggregate_veto_weights_zero_dropped():
    assert aggregate([C("c", "fatal", "B", -2), C("x", "core", "A", 2)]) == -2  # veto: fatal only
    assert aggregate([C("c", "fatal", "tie", 0), C("x", "core", "A", 1), C("y", "highlight", "B", -2)]) == \
        pytest.approx((5 * 1 + 1 * -2) / 6)
    assert aggregate([C("x", "core", "tie", 0)]) == 0.0
    assert aggregate([C("a", "important", "A", 2), C("b", "important", "B", -1)]) == pytest.approx(0.5)


def test_order_swap_consistency():
    assert verdict_both_orders(1.0, -0.5) == "A"
    assert verdict_both_orders(-1.0, 2.0) == "B"
    assert verdict_both_orders(1.0, 1.0) == "tie"  # position bias -> tie
    assert verdict_both_orders(0.0, -1.0) == "tie"


def test_schema_errors_name_line_and_key(tmp_path):
    with pytest.raises(RubricError, match=r"line 3: criteria.0.tier"):
        parse_rubric_text("criteria:\n  - name: x\n    tier: fatl\n", "r.yaml")
    with pytest.raises(RubricError, match=r"line \d+: malformed YAML"):
        parse_rubric_text("criteria: [\n  - x: {\n", "r.yaml")
    with pytest.raises(RubricError, match=r"criteria.0.wieght: unknown key"):
        parse_rubric_text("criteria:\n  - name: x\n    wieght: 2\n", "r.yaml")
    with pytest.raises(RubricError, match="unknown check"):
        parse_rubric_text("criteria:\n  - name: x\n    check: vibes\n", "r.yaml")
    with pytest.raises(RubricError, match="not found"):
        load_meta_rubric(tmp_path / "nope.yaml")


def test_pvr_checks_and_gate():
    assert ground_truth(resp(5), answer="5") == 1
    assert ground_truth(resp(6), answer="5") == -1
    assert ground_truth("no answer", answer="5") == 0
    assert pvr_gate(resp(5), resp(6), {"answer": "5"}) == "A"
    assert pvr_gate(resp(6), resp(5), {"answer": "5"}) == "B"
    assert pvr_gate(resp(6), "no answer", {"answer": "5"}) is None  # neither verified: the judge decides
    assert pvr_gate("", resp(6), {"answer": "5"}) == "B"  # guardrail: empty loses
    assert pvr_score(resp(5), {"answer": "5"}) == 1.0


def test_rules_judge_deterministic_and_rubric_matters():
    rubric = load_meta_rubric(META)
    j = make_judge("rules")
    a, b = resp(5, n_steps=2), resp(5, n_steps=2, filler=6)
    r1 = judge_pair(j, "q", a, b, rubric, "5")
    assert r1 == judge_pair(j, "q", a, b, rubric, "5")
    assert r1["verdict"] == "B"  # the generic rubric rewards the longer answer
    flipped = rubric.model_copy(deep=True)
    flipped.criteria = [c.model_copy(update={"direction": -1}) if c.name == "thoroughness" else c
                        for c in flipped.criteria]
    assert judge_pair(j, "q", a, b, flipped, "5")["verdict"] == "A"


def _pairs(n, seed=0):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        short, long_ = resp(i, 2, rng.randint(0, 2)), resp(i, 2, rng.randint(5, 9))
        rows.append({"prompt": f"q{i}", "chosen": short, "rejected": long_, "answer": str(i)})
        rows.append({"prompt": f"q{i}", "chosen": resp(i, 3), "rejected": resp(i, 3, boxed=False), "answer": str(i)})
    return rows


def test_evolution_improves_held_out_agreement():
    rubric = load_meta_rubric(META, LAYER)
    j = make_judge("rules")
    splits = {"train": _pairs(20, 0), "val": _pairs(10, 1), "test": _pairs(10, 2)}
    res = evolve(rubric, j, splits, EvolveConfig(population=6, generations=4, elite=1), seed=0)
    a = res["agreement"]
    assert a["refined/test"] >= a["initial/test"] + 0.10
    assert res["history"][-1]["fitness/best"] >= res["history"][0]["fitness/best"]
    assert "refined.yaml" in res["diff"]
    assert res["rubric"] == evolve(rubric, j, splits, EvolveConfig(population=6, generations=4, elite=1), 0)["rubric"]


def test_annotator_order_and_noise():
    assert annotator_key(resp(5), "5") > annotator_key(resp(6), "5")  # correct first
    assert annotator_key(resp(6), "5") > annotator_key(resp(6, boxed=False), "5")  # then well-formed
    assert annotator_key(resp(5), "5") > annotator_key(resp(5, filler=5), "5")  # then shorter
    samples = [[resp(i), resp(i + 1), resp(i, filler=3)] for i in range(300)]
    rows = synthetic_pairs([f"q{i}" for i in range(300)], [str(i) for i in range(300)], ["d"] * 300, samples, 0.1, 0)
    noise = sum(r["noisy"] for r in rows) / len(rows)
    assert 0.06 < noise < 0.14
    ds = split_by_prompt(rows, [0.5, 0.25, 0.25], 0)
    assert not set(ds["train"]["prompt"]) & set(ds["test"]["prompt"])


def test_review_records_decisions_and_accepted_rubric_is_used(tmp_path):
    rubric = load_meta_rubric(META, LAYER)
    j = make_judge("rules")
    pairs = _pairs(10)
    props = propose_domain_edits(j, rubric, rubric.candidates("arithmetic"), pairs, "arithmetic", tmp_path / "p.json")
    assert props and {"fixes", "breaks", "examples_fixed"} <= set(props[0])
    acc = tmp_path / "accepted.yaml"
    counts = review(tmp_path / "p.json", acc, decide=lambda p: p["criterion"]["name"] == "economy", out=lambda s: None)
    assert counts["accepted"] == 1
    again = load_meta_rubric(META, LAYER, acc)
    assert "economy" in [c.name for c in again.criteria]
    assert agreement(j, again, pairs, 0.5) > agreement(j, rubric, pairs, 0.5)
    assert review(tmp_path / "p.json", acc, decide=lambda p: True, out=lambda s: None)["accepted"] == 0  # decided


def test_rubric_reward_one_call_per_rollout(tmp_path):
    path = tmp_path / "r.yaml"
    dump_meta_rubric(load_meta_rubric(META), path)
    rw = make_rubric_reward(rubric_path=str(path))
    comps = [resp(5), resp(6), resp(5, filler=4), resp(5), resp(5), resp(7)]
    out = rw(comps, prompts=["q"] * 6, answer=["5"] * 6, group_size=3)
    assert len(out) == 6 and all(0 <= v <= 1 for v in out)
    assert rw.calls == 4  # (G - 1) per group of 3: O(N)
    assert out[1] < out[0]  # the wrong answer loses to the anchor
