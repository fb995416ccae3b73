"""Degenerate fronts are said, not hidden: a constant objective (clarity 0 for one-line solutions, as on a
GSM8K-style dataset) must not freeze the hypervolume strategy or zero every hypervolume in evaluate."""

import copy

import numpy as np
import pytest

from moalign.evaluate import informative_reference
from moalign.pareto import hypervolume
from moalign.rl.config import TrainConfig
from moalign.rl.rewards import REWARDS
from moalign.rl.trainer import train
from tests.test_core_sft import tiny


class _Digits:  # share of digit characters: varies between rollouts even for an untrained policy
    def __call__(self, completions, **_):
        return [sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in completions]


if "t_digits_share" not in REWARDS:
    REWARDS.register("t_digits_share")(_Digits)


def test_evaluate_reference_made_informative_for_a_constant_objective():
    objs = ["accuracy", "conciseness", "clarity"]
    pts = np.array([[0.03, 0.80, 0.0], [0.04, 0.70, 0.0], [0.02, 0.85, 0.0]])  # clarity 0 for every policy
    assert all(hypervolume(p[None], np.zeros(3)) == 0 for p in pts)  # the origin sees nothing
    ref, rep = informative_reference(pts, [0.0, 0.0, 0.0], 0.05, objs)
    assert rep == {"constant": ["clarity"], "reference_lowered": {"clarity": -0.05}}
    assert ref == pytest.approx([0.0, 0.0, -0.05])
    hv = [hypervolume(p[None], np.array(ref)) for p in pts]
    assert all(h > 0 for h in hv) and np.argmax(hv) == 1  # ranks on accuracy x conciseness: 0.028 > 0.024 > 0.017
    ok, rep2 = informative_reference(pts[:, :2], [0.0, 0.0], 0.05, objs[:2])
    assert rep2 == {} and ok == [0.0, 0.0]  # nothing degenerate: nothing changes
    kept, rep3 = informative_reference(pts, [0.0, 0.0, 0.0], 0.05, objs, adjust=False)  # explicit: the user's call
    assert kept == [0.0, 0.0, 0.0] and rep3 == {"constant": ["clarity"], "never_above_reference": ["clarity"]}


def test_hypervolume_strategy_moves_and_warns_when_an_objective_is_always_zero(caplog):
    rows, tok, model = tiny()
    cfg = TrainConfig(max_steps=4, prompts_per_step=2, group_size=4, max_new_tokens=8, eval_every=1, val_rows=4,
                      val_samples=2, lr=1e-2, temperature=1.5, objectives=["t_digits_share", "clarity"],
                      strategies=["hypervolume"], checkpoint_every=100, snapshot_every=100,
                      weighting={"hv_scale": 5.0, "min_weight": 0.0})
    with caplog.at_level("WARNING", logger="moalign.train"):
        res = train(cfg, "hypervolume", copy.deepcopy(model), tok, rows["train"], rows["val"], seed=0)
    assert "clarity" in caplog.text and "lowered" in caplog.text
    assert all(v["point"][1] == 0.0 for v in res.validation)  # clarity never left 0
    assert res.validation[0]["degenerate/clarity"] == 1.0 and res.degenerate == {"adjusted": ["clarity"]}
    assert max(v["hypervolume"] for v in res.validation) > 0  # informative despite the constant objective
    gained = [v for v in res.validation[1:] if v["delta_hv"] > 0]
    assert gained, "no validation point gained volume: the test config learns nothing"
    assert res.final_weights[0] > 0.5 > res.final_weights[1]  # credit went to the objective that moved
