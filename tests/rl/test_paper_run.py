"""The authors' configuration runs as written on the learnable fixture (moalign/rl/paper.py)."""

import numpy as np
import pytest

from moalign.rl.trainer import train
from tests.rl.learnable import cfg, learnable


@pytest.fixture(scope="module")
def fx():
    return learnable()


def test_hypervolume_paper_validates_greedily_every_step_in_raw_tokens_from_the_first_point(fx):
    rows, tok, model = fx
    c = cfg(max_steps=3, objectives=["t_digits", "conciseness"], strategies=["hypervolume-paper"], val_rows=4)
    res = train(c, "hypervolume-paper", model, tok, rows["train"], rows["val"], seed=0)
    steps = [v["step"] for v in res.validation]
    assert steps == [0, 1, 2, 3]  # greedy validation after every update (eval_every 1)
    lengths = [v["point"][1] for v in res.validation]
    assert all(-8 <= x < 0 for x in lengths)  # minus the mean length in tokens (max_new_tokens 8), not 1 - len/max
    assert res.validation[0]["hypervolume"] == 0.0  # the first point is the reference: nothing dominates it yet
    metas = [v["meta"] for v in res.validation[1:]]
    assert all(0.5 <= m <= 2.0 for m in metas)
    assert res.final_weights == pytest.approx([0.5, 0.5])  # hv_apply: reward moves the rewards, not the weights
    for v in res.validation[1:]:  # meta = 0.5 + 1.5 tanh(dHV) with the absolute gain (hv_relative false, scale 1)
        assert v["meta"] == pytest.approx(0.5 + 1.5 * np.tanh(v["delta_hv"]))


def test_gradient_paper_takes_the_raw_authors_step(fx):
    rows, tok, model = fx
    c = cfg(max_steps=2, objectives=["t_digits", "t_letters"], strategies=["gradient-paper"], val_rows=2)
    res = train(c, "gradient-paper", model, tok, rows["train"], rows["val"], seed=0)
    h = res.history[0]
    infl = np.array([h["influence/t_digits"], h["influence/t_letters"]])
    # the authors' rule: step = policy lr / mu (mu = 1e-5, their Qwen3 regularization_factor), on influences of
    # gradients summed over 4 micro-batches (x4 each, so 16x the influence of the batch-mean gradients)
    z = np.log([0.5, 0.5]) + c.lr / 1e-5 * infl
    w = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert res.weights[0] == pytest.approx(w.tolist(), abs=1e-6)  # updated before the step that measured it
    assert "influence_share/t_digits" not in h  # raw rule, not the share rule
