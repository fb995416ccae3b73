"""Human review with a scripted ``decide`` and the O(N) rubric reward."""

import json
import random

import pytest

from moalign.rubric.evolve import agreement
from moalign.rubric.judges import make_judge
from moalign.rubric.reward import make_rubric_reward
from moalign.rubric.review import propose_domain_edits, review
from moalign.rubric.schema import RubricError, dump_meta_rubric, load_accepted, load_meta_rubric
from tests.rubric.helpers import LAYER, META, resp


def _pairs(n, seed=0):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({"prompt": f"q{i}", "chosen": resp(i, 2, rng.randint(0, 2)), "rejected": resp(i, 2, rng.randint(5, 9)),
                     "answer": str(i)})
        rows.append({"prompt": f"q{i}", "chosen": resp(i, 3), "rejected": resp(i, 3, boxed=False), "answer": str(i)})
    return rows


def test_review_records_decisions_and_accepted_rubric_is_used(tmp_path):
    rubric, j, pairs = load_meta_rubric(META, LAYER), make_judge("rules"), _pairs(10)
    props = propose_domain_edits(j, rubric, rubric.candidates("arithmetic"), pairs, "arithmetic", tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text()) == props
    eco = next(p for p in props if p["criterion"]["name"] == "economy")
    # the same for every seed 0-19 of _pairs: 10 fixes, 0 breaks
    assert eco["fixes"] == 10 and eco["breaks"] == 0 and eco["examples_fixed"][0]["after"] == "A"
    acc = tmp_path / "accepted.yaml"
    acc.write_text("[]\n")
    shown: list[str] = []
    counts = review(tmp_path / "p.json", acc, decide=lambda p: p["criterion"]["name"] == "economy", out=shown.append)
    assert counts == {"accepted": 1, "rejected": len(props) - 1}
    assert any("fixes 10, breaks 0" in s and "fixed (B -> A)" in s for s in shown)
    assert [e.criterion.name for e in load_accepted(acc)] == ["economy"]
    again = load_meta_rubric(META, LAYER, acc)  # the next run loads the accepted principle as active
    assert "economy" in [c.name for c in again.criteria]
    assert agreement(j, again, pairs) > agreement(j, rubric, pairs)  # +0.5 for every seed 0-19 of _pairs
    assert review(tmp_path / "p.json", acc, decide=lambda p: True, out=lambda s: None)["accepted"] == 0  # decided
    assert len(load_accepted(acc)) == 1


def test_review_interactive_uses_input(tmp_path, monkeypatch):
    rubric, j = load_meta_rubric(META, LAYER), make_judge("rules")
    propose_domain_edits(j, rubric, rubric.candidates("arithmetic")[:1], _pairs(3), "arithmetic", tmp_path / "p.json")
    monkeypatch.setattr("builtins.input", lambda _: "y")
    assert review(tmp_path / "p.json", tmp_path / "acc.yaml", out=lambda s: None)["accepted"] == 1
    (tmp_path / "bad.yaml").write_text("- query_type: arithmetic\n  criterion: {name: x, tier: vital}\n")
    with pytest.raises(RubricError, match="line 2: 0.criterion.tier"):
        load_accepted(tmp_path / "bad.yaml")


class CountingJudge:
    def __init__(self):
        self.inner, self.calls = make_judge("rules"), 0

    def judge(self, *a, **k):
        self.calls += 1
        return self.inner.judge(*a, **k)


def test_rubric_reward_in_unit_interval_with_one_pair_judgement_per_rollout(tmp_path):
    path = tmp_path / "r.yaml"
    dump_meta_rubric(load_meta_rubric(META), path)
    rw = make_rubric_reward(rubric_path=str(path), pvr_weight=0.5)
    counter = CountingJudge()
    rw.judge = counter
    comps = [resp(5), resp(6), resp(5, filler=4), resp(5), resp(5), resp(7),
             resp(5, filler=3), resp(5), resp(5, boxed=False), resp(5, n_steps=4)]
    out = rw(comps[:9], prompts=["q"] * 9, answer=["5"] * 9, group_size=3)
    assert len(out) == 9 and all(0 <= v <= 1 for v in out)
    assert rw.calls == 6  # (G - 1) pair judgements per group of 3: O(N), not O(N^2)
    assert counter.calls <= 2 * rw.calls  # each pair judgement = at most 2 judge calls (both orders)
    assert out[1] < out[0] and out[0] == 0.75  # anchor: tie with itself 0.5, PVR 1.0
    assert out[2] == 1.0  # longer, correct: the generic rubric prefers it (pairwise 1) and PVR is 1
    with pytest.raises(ValueError, match="group_size"):
        rw(comps, prompts=["q"] * 10, answer=["5"] * 10, group_size=3)
    rnd = make_rubric_reward(rubric_path=str(path), anchor="random", pvr_weight=0.0, seed=3)
    vals = rnd(comps[:6], prompts=["q"] * 6, answer=["5"] * 6, group_size=6)
    assert vals == make_rubric_reward(rubric_path=str(path), anchor="random", pvr_weight=0.0, seed=3)(
        comps[:6], prompts=["q"] * 6, answer=["5"] * 6, group_size=6)
    assert set(vals) <= {0.0, 0.5, 1.0} and rnd.calls == 5  # holds for every anchor seed 0-19
    with pytest.raises(FileNotFoundError, match="dvc repro rubric"):
        make_rubric_reward(rubric_path=str(tmp_path / "missing.yaml"))


def test_rubric_path_picks_initial_or_refined(tmp_path):
    """train.reward_options.rubric.rubric_path: the same rollouts, rewarded by the generic or a refined rubric."""
    refined = load_meta_rubric(META, LAYER)
    refined.criteria = [c for c in refined.criteria if c.name not in ("thoroughness", "step_structure")]
    refined.criteria += [c for c in refined.candidates("arithmetic") if c.name == "economy"]
    dump_meta_rubric(refined, tmp_path / "refined.yaml")
    comps = [resp(5), resp(5, filler=6)]  # equally correct; the second is padded
    kw = dict(prompts=["q"] * 2, answer=["5"] * 2, group_size=2)
    generic = make_rubric_reward(rubric_path=str(META), pvr_weight=0.0)(comps, **kw)
    tuned = make_rubric_reward(rubric_path=str(tmp_path / "refined.yaml"), pvr_weight=0.0)(comps, **kw)
    assert generic == [0.5, 1.0] and tuned == [0.5, 0.0]  # the anchor is 0.5; padding wins, then loses
