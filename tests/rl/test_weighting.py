import numpy as np
import pytest
import torch

from moalign.pareto import hypervolume
from moalign.rl.config import TrainConfig
from moalign.rl.weighting import WEIGHTINGS, WeightingConfig, influence, mirror_descent
from moalign.schema import ParamsError, validate_section

OBJ = ["accuracy", "conciseness", "clarity"]


def make(name, **kw):
    return WEIGHTINGS.get(name)(OBJ, WeightingConfig(**kw))


def test_presets():
    assert make("fixed", preset="accuracy").weights().tolist() == [0.5, 0.25, 0.25]
    assert make("fixed", preset="efficiency").weights().tolist() == [0.25, 0.375, 0.375]
    assert np.allclose(make("fixed", preset="balanced").weights(), 1 / 3)
    assert make("fixed", weights=[0.2, 0.3, 0.5]).weights().tolist() == [0.2, 0.3, 0.5]


def test_hypervolume_buffer_and_delta_by_hand():
    h = make("hypervolume", hv_apply="advantage", ref_margin=0.0)
    h.observe_validation(np.array([0.2, 0.2, 0.2]), 0)  # reference
    info = h.observe_validation(np.array([0.4, 0.3, 0.5]), 5)
    assert info["delta_hv"] == pytest.approx(0.2 * 0.1 * 0.3)
    assert h.advantage_scale() == pytest.approx(0.5 + 1.5 * np.tanh(0.006))
    n = len(h.buffer)
    info = h.observe_validation(np.array([0.3, 0.25, 0.4]), 10)  # dominated: no gain, not added
    assert info["delta_hv"] == 0 and len(h.buffer) == n and h.advantage_scale() == pytest.approx(0.5)
    assert info["hypervolume"] == pytest.approx(hypervolume(np.array([[0.4, 0.3, 0.5]]), np.array([0.2] * 3)))


def test_hypervolume_objective_mode_shifts_weight_to_improving_objective():
    h = make("hypervolume", ref_margin=0.0)
    h.observe_validation(np.array([0.2, 0.2, 0.2]), 0)
    h.observe_validation(np.array([0.3, 0.3, 0.3]), 5)
    w0 = h.weights()
    h.observe_validation(np.array([0.3, 0.6, 0.3]), 10)  # only conciseness moved the front
    w1 = h.weights()
    assert w1[1] > w0[1] and w1[0] < w0[0] and w1.sum() == pytest.approx(1)


def test_hypervolume_signal_changes_the_gradient():
    """A scalar on rewards cancels under GRPO normalisation; the advantage scale does not."""
    from moalign.rl.estimators import combine_advantages, policy_loss

    torch.manual_seed(0)
    r = torch.rand(2, 4, 3)
    logp = torch.randn(8, 5, requires_grad=True)
    mask = torch.ones(8, 5)
    w = torch.tensor([1 / 3] * 3)
    adv_plain = combine_advantages(r, w, "grpo").reshape(-1)
    adv_scaled_rewards = combine_advantages(r * 1.7, w, "grpo").reshape(-1)
    assert torch.allclose(adv_plain, adv_scaled_rewards, atol=1e-5)  # the paper's scalar cancels
    h = make("hypervolume", hv_apply="advantage")
    h.observe_validation(np.zeros(3) + 0.1, 0)
    h.observe_validation(np.zeros(3) + 0.9, 1)
    g1 = torch.autograd.grad(policy_loss(logp, logp.detach(), adv_plain, mask, None)[0], logp)[0]
    g2 = torch.autograd.grad(policy_loss(logp, logp.detach(), adv_plain * h.advantage_scale(), mask, None)[0], logp)[0]
    assert not torch.allclose(g1, g2)
    # objective mode changes the direction, not only the size
    ho = make("hypervolume", ref_margin=0.0)
    ho.observe_validation(np.array([0.1, 0.1, 0.1]), 0)
    ho.observe_validation(np.array([0.2, 0.9, 0.2]), 1)  # conciseness did most of the gain
    adv_o = combine_advantages(r, torch.tensor(ho.weights(), dtype=torch.float32), "grpo").reshape(-1)
    g3 = torch.autograd.grad(policy_loss(logp, logp.detach(), adv_o, mask, None)[0], logp)[0]
    cos = torch.nn.functional.cosine_similarity(g1.flatten(), g3.flatten(), dim=0)
    assert cos < 0.999


def test_reference_margin_keeps_saturated_objective_from_zeroing_hv():
    p0 = np.array([0.7, 0.5, 1.0])  # clarity saturated at the start
    strict = make("fixed", ref_margin=0.0)
    strict.observe_validation(p0, 0)
    assert strict.observe_validation(np.array([0.8, 0.6, 1.0]), 5)["hypervolume"] == 0.0
    h = make("fixed", ref_margin=0.05)
    h.observe_validation(p0, 0)
    assert h.observe_validation(np.array([0.8, 0.6, 1.0]), 5)["hypervolume"] == pytest.approx(0.15 * 0.15 * 0.05)


def test_mirror_descent_by_hand_and_simplex():
    w = mirror_descent(np.array([0.5, 0.5]), np.array([1.0, -1.0]), lr=0.1, mu=0.1)
    e = np.exp([1.0, -1.0])
    assert np.allclose(w, e / e.sum())
    g = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert influence(g).tolist() == [2.0, 3.0]
    gw = make("gradient", mu=0.01)
    rng = np.random.default_rng(0)
    for _ in range(200):
        gw.update_from_grads(torch.tensor(rng.normal(size=(3, 7)), dtype=torch.float32), lr=1e-3)
        w = gw.weights()
        assert (w > 0).all() and w.sum() == pytest.approx(1)


def test_state_dict_round_trip():
    h = make("hypervolume")
    h.observe_validation(np.array([0.1, 0.2, 0.3]), 0)
    h.observe_validation(np.array([0.4, 0.5, 0.6]), 1)
    h2 = make("hypervolume")
    h2.load_state_dict(h.state_dict())
    assert np.allclose(h2.weights(), h.weights()) and len(h2.buffer) == len(h.buffer)


def _err(train_section):
    with pytest.raises(ParamsError) as e:
        validate_section(TrainConfig, train_section, "train")
    return str(e.value)


def test_bad_inputs():
    assert "train.weighting.weights" in _err({"weighting": {"weights": [0.5, 0.6, -0.1]}})
    assert "sum to 1" in _err({"weighting": {"weights": [0.5, 0.6, 0.1]}})
    assert "valid names" in _err({"estimator": "ppo"})
    assert "valid names" in _err({"strategies": ["fixed", "pareto"]})
    assert "valid names" in _err({"objectives": ["accuracy", "helpfulness"]})
    assert "train.group_size" in _err({"group_size": 1, "estimator": "grpo"})
    assert "train.group_size" in _err({"group_size": 1, "estimator": "rloo"})
