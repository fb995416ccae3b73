"""Weighting strategies: presets, hypervolume by hand, the HV signal reaching the gradient, mirror descent."""

import numpy as np
import pytest
import torch

from moalign.pareto import hypervolume
from moalign.rl.config import TrainConfig
from moalign.rl.estimators import combine_advantages, policy_loss
from moalign.rl.hv_weighting import shapley_split
from moalign.rl.weighting import (WEIGHTINGS, WeightingConfig, hv_gain, influence, make_weighting, mirror_descent,
                                  parse_strategy)
from moalign.config import Params
from moalign.schema import ParamsError

OBJ = ["accuracy", "conciseness", "clarity"]


def make(name, objectives=OBJ, **kw):
    return WEIGHTINGS.get(name)(objectives, WeightingConfig(**kw))


def test_presets_and_interface():
    assert make("fixed", preset="accuracy").weights().tolist() == [0.5, 0.25, 0.25]
    assert make("fixed", preset="efficiency").weights().tolist() == [0.25, 0.375, 0.375]
    assert np.allclose(make("fixed", preset="balanced").weights(), 1 / 3)
    assert make("fixed", weights=[0.2, 0.3, 0.5]).weights().tolist() == [0.2, 0.3, 0.5]
    assert np.allclose(make("fixed", ["accuracy", "rubric"]).weights(), 0.5)  # balanced = uniform for any K
    f, h, g = make("fixed"), make("hypervolume"), make("gradient")
    assert (f.needs_validation, h.needs_validation, g.needs_validation) == (False, True, False)
    assert (f.needs_objective_grads, h.needs_objective_grads, g.needs_objective_grads) == (False, False, True)
    assert f.advantage_scale() == h.advantage_scale() == g.advantage_scale() == 1.0


def test_hypervolume_delta_by_hand_and_buffer_grows_only_with_gain():
    h = make("hypervolume", ["a", "b"], weights=[0.5, 0.5], hv_apply="advantage", reference="first",
             hv_relative=False, hv_scale=1.0)
    assert h.observe_validation(np.array([0.0, 0.0]), 0)["delta_hv"] == 0.0  # p0: reference and first entry
    info = h.observe_validation(np.array([0.5, 0.2]), 1)
    assert info["delta_hv"] == pytest.approx(0.1) and info["hypervolume"] == pytest.approx(0.1)
    assert h.advantage_scale() == pytest.approx(0.5 + 1.5 * np.tanh(0.1))  # hv_scale 1 = the paper's formula
    info = h.observe_validation(np.array([0.2, 0.5]), 2)
    assert info["delta_hv"] == pytest.approx(0.5 * 0.2 + 0.2 * 0.5 - 0.2 * 0.2 - 0.1)
    assert sorted(map(tuple, h.buffer)) == [(0.2, 0.5), (0.5, 0.2)]  # p0 was dominated: it left
    before = [b.copy() for b in h.buffer]
    info = h.observe_validation(np.array([0.4, 0.1]), 3)  # dominated by (0.5, 0.2): no gain
    assert info["delta_hv"] == 0.0 and h.advantage_scale() == pytest.approx(0.5)
    assert len(h.buffer) == 2 and all(np.array_equal(a, b) for a, b in zip(before, h.buffer))
    info = h.observe_validation(np.array([0.6, 0.6]), 4)  # dominates the whole front
    assert info["delta_hv"] == pytest.approx(0.36 - 0.16) and [b.tolist() for b in h.buffer] == [[0.6, 0.6]]
    assert info["hypervolume"] == pytest.approx(hypervolume(np.array([[0.6, 0.6]]), np.zeros(2)))


def test_shapley_split_by_hand():
    buf, ref = [np.array([0.4, 0.4])], np.zeros(2)
    # v({0}) = gain of (0.6, 0.4) = 0.08; v({1}) = gain of (0.4, 0.5) = 0.04; v({0,1}) = 0.30 - 0.16 = 0.14
    assert np.allclose(shapley_split(buf, np.array([0.6, 0.5]), ref), [0.09, 0.05])
    gap = [np.array([0.5, 0.3]), np.array([0.3, 0.5])]  # p exceeds no buffer maximum but fills a gap
    phi = shapley_split(gap, np.array([0.46, 0.45]), ref)
    gain = hypervolume(np.array(gap + [[0.46, 0.45]]), ref) - hypervolume(np.array(gap), ref)
    assert phi.sum() == pytest.approx(gain)  # efficiency: the credits add up to dHV
    assert phi[1] > 0 > phi[0]  # measured from the nearest point (0.5, 0.3): conciseness moved, accuracy fell


def test_objective_mode_weights_by_hand_and_favour_the_improving_objective():
    h = make("hypervolume", ["a", "b"], weights=[0.5, 0.5], hv_relative=False, hv_scale=10.0, hv_credit="shapley")
    h.observe_validation(np.array([0.2, 0.2]), 0)
    h.observe_validation(np.array([0.4, 0.4]), 1)
    w0 = h.weights()
    assert np.allclose(w0, 0.5)  # equal credit 0.06 each: the direction is unchanged
    info = h.observe_validation(np.array([0.6, 0.5]), 2)
    m = 0.5 + 1.5 * np.tanh(10 * np.array([0.09, 0.05]))
    assert np.allclose(h.weights(), m / m.sum()) and info["credit/a"] == pytest.approx(0.09)
    hp = make("hypervolume", ["a", "b"], weights=[0.5, 0.5], hv_relative=False, hv_scale=10.0)  # proportional
    hp.observe_validation(np.array([0.4, 0.4]), 0)
    info = hp.observe_validation(np.array([0.6, 0.5]), 1)  # dHV 0.14 split 2:1 by the gains 0.2 and 0.1
    assert info["credit/a"] == pytest.approx(0.14 * 2 / 3) and info["credit/b"] == pytest.approx(0.14 / 3)
    h3 = make("hypervolume")
    h3.observe_validation(np.array([0.2, 0.2, 0.2]), 0)
    h3.observe_validation(np.array([0.3, 0.3, 0.3]), 5)
    w0 = h3.weights()
    h3.observe_validation(np.array([0.3, 0.6, 0.3]), 10)  # only conciseness moved the front
    w1 = h3.weights()
    assert w1[1] > w0[1] and w1[0] < w0[0] and w1[2] < w0[2] and w1.sum() == pytest.approx(1)
    h3.observe_validation(np.array([0.25, 0.5, 0.25]), 15)  # no gain: weights unchanged
    assert np.array_equal(h3.weights(), w1)


def test_proportional_credit_has_no_structural_bias_shapley_has():
    """Under the origin reference the Shapley credit of a 0.1 gain scales with the product of the other
    coordinates (7x for accuracy at (0.1, 0.7, 0.9)); the proportional split credits equal gains equally."""
    start = np.array([0.1, 0.7, 0.9])
    for rule, check in (("proportional", lambda c: np.allclose(c, c[0], rtol=0.15)),
                        ("shapley", lambda c: c[0] > 5 * c[1] and c[0] > 5 * c[2])):
        credits = []
        for k in range(3):
            h = make("hypervolume", hv_credit=rule)
            h.observe_validation(start, 0)
            p = start.copy()
            p[k] += 0.05
            info = h.observe_validation(p, 1)
            credits.append(info[f"credit/{OBJ[k]}"])
        c = np.array(credits)  # relative gains dHV/HV: each single move's whole gain lands on its objective
        assert np.all(c > 0)
        if rule == "proportional":  # same relative dHV? no: dHV/HV = 0.05/p_k, so compare the split instead
            h = make("hypervolume", hv_credit=rule)
            h.observe_validation(start, 0)
            info = h.observe_validation(start + 0.05, 1)  # equal gains in every objective
            split = np.array([info[f"credit/{o}"] for o in OBJ])
            assert check(split), split
        else:
            h = make("hypervolume", hv_credit=rule)
            h.observe_validation(start, 0)
            info = h.observe_validation(start + 0.05, 1)
            split = np.array([info[f"credit/{o}"] for o in OBJ])
            assert check(split), split


def test_degenerate_reference_is_lowered_said_and_keeps_the_weights_moving(caplog):
    """Clarity 0 everywhere (one-line solutions): with the origin reference every hypervolume would be 0 and
    the weights frozen; the rule lowers clarity's reference, warns once and records it."""
    h = make("hypervolume")
    with caplog.at_level("WARNING", logger="moalign.train"):
        info = h.observe_validation(np.array([0.05, 0.6, 0.0]), 0)
    assert info["degenerate/clarity"] == 1.0 and "clarity" in caplog.text
    assert h.ref.tolist() == pytest.approx([0.0, 0.0, -0.05]) and info["hypervolume"] > 0
    info = h.observe_validation(np.array([0.15, 0.6, 0.0]), 1)  # accuracy rose, clarity still 0
    assert info["delta_hv"] > 0 and h.weights()[0] > 1 / 3
    assert h.degenerate() == {"adjusted": ["clarity"]}
    first = make("hypervolume", reference="first")  # the authors' reference: left alone, reported at the end
    first.observe_validation(np.array([0.1, 0.5, 1.0]), 0)  # clarity saturated at the first point
    first.observe_validation(np.array([0.2, 0.6, 1.0]), 1)  # better, but not strictly above p0 in clarity
    assert first.degenerate() == {"zero_hypervolume": True, "never_above_reference": ["clarity"]}
    assert make("hypervolume").degenerate() == {}


@pytest.mark.parametrize("rule", ["proportional", "shapley"])
def test_negative_credit_never_raises_a_weight(rule):
    """An objective that got worse (negative Shapley credit) must not gain weight, whatever the others did."""
    h = make("hypervolume", ["a", "b", "c"], hv_credit=rule)
    h.observe_validation(np.array([0.89, 0.32, 0.12]), 0)  # reference: origin; buffer: this point
    p = np.array([0.15, 0.52, 0.34])  # a fell by 0.74, b and c rose a little: the front still grew
    credit = shapley_split(h.buffer, p, h.ref)
    assert credit[0] < 0 < credit[1] < -credit[0] and credit[2] > 0  # |worsening| > one of the gains
    w0 = h.weights()
    assert h.observe_validation(p, 1)["delta_hv"] > 0
    assert h.weights()[0] < w0[0]
    rng = np.random.default_rng(0)
    hard = 0  # cases where the worsening is the largest credit in size
    for t in range(1000):
        K = 2 + t % 2
        buf = [rng.uniform(0.1, 0.9, K) for _ in range(int(rng.integers(1, 4)))]
        p = rng.uniform(0.1, 0.9, K)
        h = make("hypervolume", list("abc")[:K], hv_credit=rule)
        h.load_state_dict({"w": rng.dirichlet(np.full(K, 5.0)).tolist(), "ref": [0.0] * K,
                           "buffer": [b.tolist() for b in buf], "meta": 1.0})
        if hv_gain(h.buffer, p, h.ref) <= 0:
            continue
        credit, w0 = shapley_split(h.buffer, p, h.ref), h.weights()
        h.observe_validation(p, 1)
        for i in np.flatnonzero(credit < 0):
            assert h.weights()[i] <= w0[i] + 1e-12, (buf, p, credit)
        hard += bool((credit < 0).any() and -credit.min() > credit.max())
    assert hard >= 3


def test_relative_gain_by_hand_and_scale_free():
    """gain = dHV / HV(buffer): the same move on a front 10x smaller in every unit moves the weights alike."""
    moves = []
    for unit in (1.0, 0.1):
        h = make("hypervolume", ["a", "b"], weights=[0.5, 0.5], hv_scale=5.0)
        h.observe_validation(np.array([0.5, 0.5]) * unit, 0)  # HV(buffer) = 0.25 unit^2
        info = h.observe_validation(np.array([0.55, 0.5]) * unit, 1)  # dHV = 0.025 unit^2: +10%
        assert info["gain"] == pytest.approx(0.1) and info["credit/a"] == pytest.approx(0.1)
        assert info["credit/b"] == pytest.approx(0.0, abs=1e-12)
        m = 0.5 + 1.5 * np.tanh(5.0 * np.array([0.1, 0.0]))
        assert np.allclose(h.weights(), m / m.sum())
        moves.append(h.weights())
    assert np.allclose(moves[0], moves[1])
    ab = make("hypervolume", ["a", "b"], weights=[0.5, 0.5], hv_scale=5.0, hv_relative=False)
    ab.observe_validation(np.array([0.05, 0.05]), 0)
    ab.observe_validation(np.array([0.055, 0.05]), 1)
    assert abs(ab.weights()[0] - 0.5) < 0.01 < abs(moves[1][0] - 0.5)  # absolute dHV: blind at small scale


def test_symmetric_objectives_keep_uniform_weights():
    """The weights move because the signal says so, not because the step is large."""
    h = make("hypervolume")
    h.observe_validation(np.full(3, 0.3), 0)
    for t, v in enumerate([0.35, 0.4, 0.38, 0.45], 1):  # every objective improves alike (or not at all)
        h.observe_validation(np.full(3, v), t)
        assert np.allclose(h.weights(), 1 / 3)
    g = make("gradient", grad_step=0.5)
    rng = np.random.default_rng(0)
    for _ in range(200):  # exchangeable objectives: same-size gradients in random directions
        g.update_from_grads(torch.tensor(rng.normal(size=(3, 4096))), lr=1e-4)
    assert np.abs(g.weights() - 1 / 3).max() < 0.05
    g2 = make("gradient", grad_step=0.5)
    base = torch.tensor(rng.normal(size=(1, 4096)))
    for _ in range(50):  # objective 0 aligned with the others' common direction: its share is larger
        noise = torch.tensor(rng.normal(size=(3, 4096)))
        g2.update_from_grads(torch.cat([2 * base, base, base]) + 0.1 * noise, lr=1e-4)
    assert g2.weights()[0] > 0.5


def test_no_gain_leaves_weights_unchanged():
    h = make("hypervolume")
    h.observe_validation(np.array([0.5, 0.4, 0.6]), 0)
    w0 = h.weights()
    for t, p in enumerate([[0.5, 0.4, 0.6], [0.4, 0.3, 0.5], [0.5, 0.35, 0.6]], 1):  # none adds volume
        assert h.observe_validation(np.array(p), t)["delta_hv"] == 0.0
        assert np.array_equal(h.weights(), w0)


def test_authors_reward_meta_cancels_under_grpo_not_under_reinforce():
    """hv_apply: reward (rewards x meta): group normalisation cancels it; plain REINFORCE does not."""
    torch.manual_seed(0)
    r = torch.rand(2, 4, 3)  # (B, G, K)
    w = torch.tensor([1 / 3] * 3)
    h = make("hypervolume", hv_apply="reward")
    h.observe_validation(np.full(3, 0.2), 0)
    h.observe_validation(np.array([0.3, 0.25, 0.2]), 1)
    m = h.reward_scale()
    assert m != 1.0 and np.allclose(h.weights(), 1 / 3) and h.advantage_scale() == 1.0
    for agg in ("normalize_then_sum", "sum_then_normalize", "normalize_then_sum_unscaled"):
        # cancelled up to TRL's eps = 1e-4 in (r m - mean) / (std m + eps)
        assert torch.allclose(combine_advantages(r * m, w, "grpo", agg), combine_advantages(r, w, "grpo", agg),
                              atol=2e-3)
    for agg in ("sum_then_normalize", "normalize_then_sum_unscaled"):  # no std anywhere: the scale survives
        assert not torch.allclose(combine_advantages(r * m, w, "reinforce", agg),
                                  combine_advantages(r, w, "reinforce", agg), atol=1e-3)
    # TRL's normalize_then_sum re-normalises over the batch, which cancels it for REINFORCE too
    assert torch.allclose(combine_advantages(r * m, w, "reinforce"), combine_advantages(r, w, "reinforce"), atol=2e-3)


def test_hypervolume_signal_changes_the_gradient():
    """The paper's reward scalar cancels under GRPO normalisation; both of our modes reach the gradient."""
    torch.manual_seed(0)
    r = torch.rand(2, 4, 3)  # (B, G, K)
    logp = torch.randn(8, 5, requires_grad=True)  # (B*G, T)
    mask = torch.ones(8, 5)
    w = torch.tensor([1 / 3] * 3)

    def grad(adv):
        return torch.autograd.grad(policy_loss(logp, logp.detach(), adv, mask, None)[0], logp)[0]

    adv_plain = combine_advantages(r, w, "grpo").reshape(-1)
    assert torch.allclose(adv_plain, combine_advantages(r * 1.7, w, "grpo").reshape(-1), atol=1e-3)  # up to eps
    g1 = grad(adv_plain)
    h = make("hypervolume", hv_apply="advantage", reference="first", ref_margin=0.05, hv_relative=False,
             hv_scale=10.0)
    h.observe_validation(np.zeros(3) + 0.1, 0)
    h.observe_validation(np.zeros(3) + 0.9, 1)
    assert h.advantage_scale() > 1.5 and np.allclose(h.weights(), 1 / 3)  # advantage mode: weights untouched
    assert torch.allclose(grad(adv_plain * h.advantage_scale()), g1 * h.advantage_scale())
    assert not torch.allclose(grad(adv_plain * h.advantage_scale()), g1)
    ho = make("hypervolume")  # reference = origin, relative gain
    ho.observe_validation(np.array([0.5, 0.5, 0.5]), 0)
    ho.observe_validation(np.array([0.51, 0.56, 0.51]), 1)  # conciseness did most of the gain
    wo = ho.weights()
    assert ho.advantage_scale() == 1.0 and wo[1] > 1 / 3 > wo[0] and wo[0] == pytest.approx(wo[2])
    g3 = grad(combine_advantages(r, torch.tensor(ho.weights(), dtype=torch.float32), "grpo").reshape(-1))
    u, v = g1.flatten(), g3.flatten()
    ortho = v - (v @ u) / (u @ u) * u  # the part of the new gradient that no rescaling of g1 gives
    assert ortho.norm() / v.norm() > 0.01  # objective mode turns the update, not only resizes it


def test_reference_margin_keeps_saturated_objective_from_zeroing_hv():
    p0 = np.array([0.7, 0.5, 1.0])  # clarity saturated at the start
    strict = make("fixed", reference="first", ref_margin=0.0)  # the authors' reference
    strict.observe_validation(p0, 0)
    assert strict.observe_validation(np.array([0.8, 0.6, 1.0]), 5)["hypervolume"] == 0.0
    h = make("fixed", reference="first", ref_margin=0.05)
    h.observe_validation(p0, 0)
    assert h.observe_validation(np.array([0.8, 0.6, 1.0]), 5)["hypervolume"] == pytest.approx(0.15 * 0.15 * 0.05)
    o = make("fixed")  # origin: a point that trades accuracy for conciseness keeps its volume
    o.observe_validation(p0, 0)
    hv = o.observe_validation(np.array([0.6, 0.7, 1.0]), 5)["hypervolume"]
    assert hv == pytest.approx(0.7 * 0.5 + 0.6 * 0.7 - 0.6 * 0.5)  # both points' boxes, minus the overlap


def test_mirror_descent_by_hand():
    w = mirror_descent(np.array([0.5, 0.5]), np.array([1.0, -1.0]), lr=0.1, mu=0.1)
    assert np.allclose(w, np.exp([1.0, -1.0]) / np.exp([1.0, -1.0]).sum())
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # I = [<g1, g1+g2>, <g2, g1+g2>] = [1, 4]
    assert influence(g).tolist() == [1.0, 4.0]
    gw = make("gradient", ["a", "b"], weights=[0.25, 0.75], mu=0.1, influence="raw")
    info = gw.update_from_grads(g, lr=0.01)  # step lr / mu = 0.1
    e = np.array([0.25 * np.exp(0.1), 0.75 * np.exp(0.4)])
    assert np.allclose(gw.weights(), e / e.sum()) and info == {"influence/a": 1.0, "influence/b": 4.0}
    gs = make("gradient", ["a", "b"], weights=[0.25, 0.75], grad_step=0.5)  # shares I / ||G||^2 = [1, 4] / 5
    info = gs.update_from_grads(g * 1000.0, lr=0.01)  # scale-free: the gradients' size does not matter
    e = np.array([0.25 * np.exp(0.5 * 0.2), 0.75 * np.exp(0.5 * 0.8)])
    assert np.allclose(gs.weights(), e / e.sum())
    assert info["influence_share/a"] == pytest.approx(0.2) and info["influence_share/b"] == pytest.approx(0.8)
    gl = make("gradient", ["a", "b"], weights=[0.25, 0.75], mu=0.1, grad_lr=0.02, influence="raw")
    gl.update_from_grads(g, lr=123.0)  # grad_lr overrides the policy lr
    e = np.array([0.25 * np.exp(0.2), 0.75 * np.exp(0.8)])
    assert np.allclose(gl.weights(), e / e.sum())


def test_weights_stay_on_the_simplex():
    gw = make("gradient", mu=0.01)
    rng = np.random.default_rng(0)
    for _ in range(200):
        gw.update_from_grads(torch.tensor(rng.normal(size=(3, 7)), dtype=torch.float32), lr=1e-3)
        w = gw.weights()
        assert (w > 0).all() and w.sum() == pytest.approx(1)
    w = mirror_descent(np.array([0.5, 0.5]), np.array([1e9, -1e9]), lr=1.0, mu=1e-3)
    assert (w > 0).all() and w.sum() == pytest.approx(1)  # clamped log: strictly positive
    h = make("hypervolume", min_weight=0.02)
    h.observe_validation(np.full(3, 0.05), 0)
    for t in range(1, 30):
        h.observe_validation(rng.uniform(0, 1, 3), t)
        assert (h.weights() >= 0.02 - 1e-9).all() and h.weights().sum() == pytest.approx(1)


@pytest.mark.parametrize("name", ["fixed", "hypervolume", "gradient"])
def test_state_dict_round_trip(name):
    rng = np.random.default_rng(1)
    a = make(name)
    for t in range(4):
        a.observe_validation(rng.uniform(0, 1, 3), t)
        a.update_from_grads(torch.tensor(rng.normal(size=(3, 5))), lr=1e-4)
    b = make(name)
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    p, g = rng.uniform(0, 1, 3), torch.tensor(rng.normal(size=(3, 5)))
    assert a.observe_validation(p, 9) == b.observe_validation(p, 9)
    a.update_from_grads(g, lr=1e-4), b.update_from_grads(g, lr=1e-4)
    assert np.array_equal(a.weights(), b.weights()) and a.advantage_scale() == b.advantage_scale()


def _err(train_section):
    with pytest.raises(ParamsError) as e:
        Params({"train": train_section})
    return str(e.value)


def test_bad_inputs():
    assert "train.weighting.weights" in _err({"weighting": {"weights": [0.5, 0.6, -0.1]}})
    msg = _err({"weighting": {"weights": [0.5, 0.6, 0.1]}})
    assert "train.weighting.weights" in msg and "sum to 1" in msg and "Fix" in msg
    assert "train.weighting.bogus" in _err({"weighting": {"bogus": 1}})
    assert "valid names" in _err({"estimator": "ppo"})
    assert "fixed-accuracy" in _err({"strategies": ["fixed", "lexicographic"]})
    assert "preset in accuracy" in _err({"strategies": ["fixed-greedy"]})
    assert "repeats" in _err({"strategies": ["fixed-accuracy", "fixed-accuracy"]})
    assert parse_strategy("fixed-efficiency") == ("fixed", "efficiency") and parse_strategy("gradient") == ("gradient", None)
    assert make_weighting("fixed-accuracy", OBJ, WeightingConfig()).weights().tolist() == [0.5, 0.25, 0.25]
    assert "valid names" in _err({"objectives": ["accuracy", "helpfulness"]})
    assert "train.group_size" in _err({"group_size": 1, "estimator": "grpo"})
    assert "train.group_size" in _err({"group_size": 1, "estimator": "rloo"})
    with pytest.raises(KeyError, match="valid names: dvao, fixed, gdpo, gradient, hypervolume, mogrpo, pareto, paretopo"):
        WEIGHTINGS.get("lexicographic")
    with pytest.raises(ValueError, match="train.weighting.weights has 2 entries"):
        make("fixed", weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="train.weighting.preset"):
        make("fixed", ["accuracy", "rubric"], preset="accuracy")
    with pytest.raises(ValueError, match="expected"):
        make("gradient").update_from_grads(torch.zeros(2, 4), lr=1e-3)


def test_paper_strategies_apply_the_authors_rules():
    """'<weighting>-paper' trains with moalign/rl/paper.py's overrides; params.yaml lists exactly them."""
    import yaml

    from moalign.rl.paper import PAPER

    assert parse_strategy("hypervolume-paper") == ("hypervolume", "paper")
    cfg = TrainConfig(strategies=["hypervolume-paper", "gradient-paper", "fixed"])
    paper = cfg.for_strategy("gradient-paper")
    assert (paper.aggregation, paper.val_samples, paper.eval_every, paper.length_unit, paper.clip_eps) == \
        ("sum_then_normalize", 0, 1, "tokens", None)
    w = paper.weighting
    assert (w.reference, w.ref_margin, w.hv_apply, w.hv_relative, w.hv_scale, w.influence) == \
        ("first", 0.0, "reward", False, 1.0, "raw")
    # the authors' rule: the policy lr over their regularization_factor, on micro-batch-summed gradients
    assert (w.grad_lr, w.mu, w.grad_scale) == (None, 1e-5, 4.0)
    gp = make_weighting("gradient-paper", ["a", "b"], w)
    g = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    info = gp.update_from_grads(g, lr=1e-6)  # their lr: step 0.1
    # I = <g_i, g_a + g_b>: a 1.5, b 1.0, each x 4^2
    assert info["influence/a"] == pytest.approx(16 * 1.5) and info["influence/b"] == pytest.approx(16 * 1.0)
    z = np.log([0.5, 0.5]) + 0.1 * np.array([24.0, 16.0])
    assert gp.weights() == pytest.approx(np.exp(z) / np.exp(z).sum())
    assert cfg.for_strategy("hypervolume") is cfg  # other strategies keep the config
    g = make_weighting("gradient-paper", OBJ, w)
    assert np.allclose(g.weights(), 1 / 3)  # -paper is no preset
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["paper"] == PAPER
    with pytest.raises(ValueError, match="train.paper"):
        TrainConfig(paper={"aggregation": "mean"})
    with pytest.raises(ValueError, match="train.paper"):
        TrainConfig(paper={"no_such_key": 1})
