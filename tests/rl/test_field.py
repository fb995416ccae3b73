"""The field's strategies (moalign/rl/field.py) against their formulas on hand-made batches, and in the trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from moalign.rl.config import WeightingConfig
from moalign.rl.estimators import combine_advantages, pareto_rank_scores, variance_adaptive
from moalign.rl.weighting import make_weighting

# one group of 4 rollouts, 2 objectives: accuracy (binary) and a continuous score
R = torch.tensor([[[1.0, 0.2], [0.0, 0.9], [0.0, 0.1], [1.0, 0.2]]])
W = torch.tensor([0.5, 0.5])


def test_dvao_by_hand():
    # accuracy: mean 0.5, sample sd sqrt(1/3) = 0.57735; score: mean 0.35, sd sqrt(0.41 / 3) = 0.36968
    den = 0.5 * 0.57735 + 0.5 * 0.36968 + 1e-4
    want = [(0.5 * 0.5 + 0.5 * -0.15) / den, (0.5 * -0.5 + 0.5 * 0.55) / den, (0.5 * -0.5 + 0.5 * -0.25) / den,
            (0.5 * 0.5 + 0.5 * -0.15) / den]
    got = combine_advantages(R, W, "grpo", "variance_adaptive")
    assert got[0].tolist() == pytest.approx(want, abs=1e-4)
    assert [round(v, 4) for v in want] == [0.3695, 0.0528, -0.7918, 0.3695]


def test_dvao_gives_no_weight_to_an_objective_without_spread_and_stays_bounded():
    r = R.clone()
    r[0, :, 1] = 0.7  # the score has no spread in this group: only accuracy drives it
    a = variance_adaptive(r, W)
    acc = (r[0, :, 0] - 0.5) / (0.57735 + 2e-4)  # accuracy's own normalised advantage, weight share 1
    assert a[0].tolist() == pytest.approx(acc.tolist(), abs=1e-3)
    g = torch.Generator().manual_seed(0)
    big = torch.rand(64, 8, 3, generator=g) * torch.tensor([1.0, 100.0, 0.01])  # wildly different scales
    assert variance_adaptive(big, torch.tensor([0.2, 0.3, 0.5])).abs().max() <= math.sqrt(8 - 1) + 1e-4


def test_mogrpo_weights_each_reward_by_its_inverse_spread():
    sd = R[0].std(0, unbiased=True)
    want = ((R[0] - R[0].mean(0)) / (sd + 1e-4) * W).sum(-1)
    got = combine_advantages(R, W, "grpo", make_weighting("mogrpo", ["a", "b"], WeightingConfig()).aggregation(0, 1))
    assert got[0].tolist() == pytest.approx(want.tolist(), abs=1e-5)
    # scale-free: multiplying one reward by 100 changes nothing but eps's share (what MO-GRPO is for)
    scaled = R * torch.tensor([1.0, 100.0])
    assert torch.allclose(combine_advantages(scaled, W, "grpo", "normalize_then_sum_unscaled"), got, atol=1e-3)


def test_pareto_rank_by_hand():
    # (1, .2) twice and (0, .9) are non-dominated (front 0); (0, .1) is dominated by (1, .2): front 1
    assert pareto_rank_scores(R, W)[0].tolist() == [0.0, 0.0, -1.0, 0.0]
    # group-normalised: scores mean -0.25, sample sd 0.5
    got = combine_advantages(R, W, "grpo", "pareto_rank")[0]
    assert got.tolist() == pytest.approx([0.25 / 0.5001, 0.25 / 0.5001, -0.75 / 0.5001, 0.25 / 0.5001], abs=1e-5)
    # an objective weighted 0 does not take part in the dominance: on accuracy alone 0s are dominated by 1s
    assert pareto_rank_scores(R, torch.tensor([1.0, 0.0]))[0].tolist() == [0.0, -1.0, -1.0, 0.0]
    # a chain a > b > c > d gets fronts 0, 1, 2, 3
    chain = torch.tensor([[[4.0, 4.0], [3.0, 3.0], [2.0, 2.0], [1.0, 1.0]]])
    assert pareto_rank_scores(chain, W)[0].tolist() == [0.0, -1.0, -2.0, -3.0]


def test_gdpo_is_trl_normalize_then_sum_whatever_train_aggregation():
    w = make_weighting("gdpo", ["a", "b"], WeightingConfig())
    assert w.aggregation(0, 10) == "normalize_then_sum"
    assert make_weighting("fixed", ["a", "b"], WeightingConfig()).aggregation(0, 10) is None


def test_paretopo_switches_from_hypervolume_weights_to_pareto_ranks():
    w = make_weighting("paretopo", ["a", "b"], WeightingConfig(pareto_switch=0.25))
    assert w.needs_validation  # stage 1 is the hypervolume-guided rule
    assert [w.aggregation(s, 8) for s in range(4)] == [None, None, "pareto_rank", "pareto_rank"]
    w.observe_validation(np.array([0.2, 0.5]), 0)
    w.observe_validation(np.array([0.4, 0.5]), 1)  # accuracy advanced the front: its weight grows
    assert w.weights()[0] > 0.5


@pytest.mark.parametrize("strategy", ["gdpo", "mogrpo", "dvao", "pareto", "paretopo"])
def test_each_field_strategy_trains(strategy):
    """Two updates on the learnable fixture: the policy moves and the metrics are those of every strategy."""
    from moalign.rl.trainer import train
    from tests.rl.learnable import cfg, learnable

    rows, tok, model = learnable()
    before = [p.detach().clone() for p in model.parameters()]
    res = train(cfg(max_steps=2, eval_every=1, weighting={"pareto_switch": 0.5}), strategy, model, tok,
                rows["train"], rows["val"], seed=0)
    assert len(res.history) == 2 and all(h["charts/grad_norm"] > 0 for h in res.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
