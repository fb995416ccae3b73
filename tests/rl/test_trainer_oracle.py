"""The trainer's updates against independent oracles, on the learnable fixture (tests/rl/learnable.py).

Each test recomputes what the trainer should have done from the rollouts it sampled (recorded by
the ``t_record`` backend): the first step's gradient for every estimator / aggregation / std,
the per-objective gradients of the gradient strategy (clipped over all parameters, then
restricted to ``grad_layers``), the hypervolume strategy's weights from the validation points,
and a bit-identical policy when every advantage is 0.
"""

import numpy as np
import pytest
import torch

from moalign.rl.estimators import combine_advantages, policy_loss
from moalign.rl.trainer import objective_grads, select_params, train
from moalign.rl.hv_weighting import HypervolumeGuided
from moalign.rl.weighting import GradientBased, make_weighting
from tests.rl.learnable import (SEED, GradSpy, cfg, completion_logprobs, flat, learnable, oracle_grads, recorded_rollouts,
                                recording, rollout_rewards)

OBJ = ["t_digits", "t_space"]
# The settings' gradients must differ by more than the 1e-3 tolerance of the match (so a trainer that used another
# setting fails it); 3x that. Worst relative difference over seeds 0-19 x fits 0-1 x kernels: 0.021; at fit 5
# under ATEN_CPU_CAPABILITY=default reinforce vs reinforce_pp: 0.0057 (a 1e-2 threshold failed there).
SEPARATE = 3e-3


def contrasts(estimator: str, aggregation: str, std: str) -> list[tuple[str, str, str]]:
    """The settings whose first-step gradient must differ from this one's (so the match test can tell them apart)."""
    out = [] if estimator == "grpo" else [("grpo", "normalize_then_sum", "sample")]
    if estimator in ("grpo", "reinforce_pp"):  # these normalise, so the order of aggregation matters
        out.append((estimator, "sum_then_normalize" if aggregation == "normalize_then_sum" else "normalize_then_sum", std))
    if estimator == "grpo" and aggregation != "normalize_then_sum_unscaled":  # (no population case for it)
        out.append(("grpo", aggregation, "population" if std == "sample" else "sample"))
    return out
W = [0.7, 0.3]
SETTINGS = [(e, a, "sample") for e in ("grpo", "rloo", "reinforce", "reinforce_pp")
            for a in ("normalize_then_sum", "sum_then_normalize", "normalize_then_sum_unscaled")] + \
           [("grpo", a, "population") for a in ("normalize_then_sum", "sum_then_normalize")]


@pytest.fixture(scope="module")
def fx():
    return learnable()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def first_step(fx, monkeypatch, c, strategy="fixed"):
    """Train one step of ``c``; return (the policy before, the policy after, the rollouts, the stepped gradient)."""
    rows, tok, model = fx
    GradSpy.steps = []
    monkeypatch.setattr(torch.optim, "AdamW", GradSpy)
    m = learnable()[2]
    with recording() as rec:
        train(c, strategy, m, tok, rows["train"], rows["val"], seed=SEED)
    (g,) = recorded_rollouts(rec, rows["train"])
    (grads,) = GradSpy.steps
    return model, m, g, grads


@pytest.mark.parametrize("estimator,aggregation,std", SETTINGS)
def test_first_update_is_the_policy_gradient_of_the_configured_advantages(fx, monkeypatch, estimator, aggregation, std):
    c = cfg(objectives=OBJ, weighting={"weights": W}, estimator=estimator, aggregation=aggregation, std=std,
            max_steps=1, eval_every=100, grad_clip=1e6, generation_backend="t_record")
    before, after, g, grads = first_step(fx, monkeypatch, c)
    want = flat(oracle_grads(before, c, g, torch.tensor(W)))
    assert want.norm() > 0.01  # there is something to learn (worst over 120 seeded runs x settings: 0.036)
    assert rel(flat(grads), want) < 1e-3  # the trainer stepped with the oracle's gradient
    others = {s: flat(oracle_grads(before, cfg(objectives=OBJ, weighting={"weights": W}, estimator=s[0],
                                                aggregation=s[1], std=s[2]), g, torch.tensor(W)))
              for s in SETTINGS if s != (estimator, aggregation, std)}
    # the rollouts tell the settings apart, so a trainer that ignored this one would have failed above
    for other in contrasts(estimator, aggregation, std):
        assert rel(others[other], want) > SEPARATE, other
    if (estimator, aggregation, std) == ("grpo", "normalize_then_sum", "sample"):
        # first AdamW step: delta = -lr * m_hat / (sqrt(v_hat) + eps) with m_hat = g, v_hat = g^2 (any betas)
        delta = flat([a.detach() - b.detach() for a, b in zip(after.parameters(), before.parameters())])
        big = want.abs() > 1e-5
        assert torch.allclose(delta[big], -c.lr * want[big] / (want[big].abs() + 1e-8), atol=c.lr * 1e-3)


def test_the_settings_give_different_updates_on_the_fixture(fx, monkeypatch):
    """Self-check of the oracle test: the four estimators' gradients differ pairwise on the fixture's rollouts."""
    c = cfg(objectives=OBJ, weighting={"weights": W}, max_steps=1, eval_every=100, generation_backend="t_record")
    before, _, g, _ = first_step(fx, monkeypatch, c)
    gs = [flat(oracle_grads(before, cfg(objectives=OBJ, weighting={"weights": W}, estimator=e), g, torch.tensor(W)))
          for e in ("grpo", "rloo", "reinforce", "reinforce_pp")]
    for i in range(4):
        for j in range(i + 1, 4):
            assert rel(gs[i], gs[j]) > SEPARATE, (i, j)


@pytest.mark.parametrize("objectives,weights", [(["t_const"], None), (["t_const", "t_digits"], [1.0, 0.0])])
@pytest.mark.parametrize("aggregation", ["normalize_then_sum", "sum_then_normalize"])
def test_zero_advantages_leave_the_policy_bit_identical(fx, objectives, weights, aggregation):
    """weight_decay 0 and every advantage 0 (constant reward, or all weight on it): nothing may move."""
    rows, tok, _ = fx
    m = learnable()[2]
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    c = cfg(objectives=objectives, weighting={"weights": weights}, aggregation=aggregation, max_steps=2,
            eval_every=100)
    res = train(c, "fixed", m, tok, rows["train"], rows["val"], seed=0)
    assert all(torch.equal(p, before[n]) for n, p in m.named_parameters())
    assert [h["charts/grad_norm"] for h in res.history] == [0.0, 0.0]
    if weights:  # the zero-weight objective did vary: only its weight kept it out of the update
        assert res.history[0]["rewards/t_digits/std"] > 0


def oracle_objective_grads(model, c, g, chosen: set[str]) -> tuple[torch.Tensor, list[float], list[float]]:
    """(K, D) g_k: objective k's policy gradient, scaled to norm <= 1 over ALL parameters, then restricted to
    ``chosen``; with each g_k's norm over all parameters and over the chosen ones."""
    r3 = rollout_rewards(c, g)
    K = r3.shape[-1]
    logp = completion_logprobs(model, g)
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    rows, full, part = [], [], []
    for k in range(K):
        adv = combine_advantages(r3, torch.eye(K)[k], c.estimator, "normalize_then_sum_unscaled", c.std).reshape(-1)
        loss, _ = policy_loss(logp, logp.detach(), adv, g.completion_mask[:, 1:], None)
        grads = torch.autograd.grad(loss, params, retain_graph=True)
        sel = torch.cat([x.reshape(-1) for n, x in zip(names, grads) if n in chosen])
        full.append(float(flat(list(grads)).norm()))
        part.append(float(sel.norm()))
        rows.append(sel * min(1.0, 1.0 / full[-1]))
    return torch.stack(rows), full, part


def test_gradient_strategy_gets_per_objective_gradients_clipped_over_all_parameters(fx, monkeypatch):
    """g_k clipped to norm 1 over every parameter, then cut to grad_layers: with ||g_digits|| > 1 over all
    parameters but < 1 over the chosen ones, clipping over the chosen ones only would not scale it.

    The first step's rollouts do not depend on the rewards' scale, so a first pass at scale 1 measures
    t_digits' norms over all parameters (full) and over the chosen ones (part), and the test scales the
    reward by s = 1 / sqrt(full * part): then s * full = sqrt(full / part) > 1 > sqrt(part / full) = s * part
    on any draw. (A fixed scale 10 put full between 0.61 and 3.3 over seeds 0-19: the clip was inactive on
    some.) part / full over seeds 0-19 x fits 0-1 x kernels default/avx2/avx512: worst 0.23, so the
    scaled norms sit at >= 2.08 and <= 0.48.
    """
    rows, tok, model = fx
    base = dict(objectives=["t_digits", "t_letters"], estimator="rloo", max_steps=1, eval_every=100,
                generation_backend="t_record")
    chosen = {n for n, _ in select_params(model, cfg(**base).grad_layers)}
    with recording() as rec:
        train(cfg(**base), "gradient", learnable()[2], tok, rows["train"], rows["val"], seed=SEED)
    (g1,) = recorded_rollouts(rec, rows["train"])
    _, full1, part1 = oracle_objective_grads(model, cfg(**base), g1, chosen)
    scale = 1.0 / float(np.sqrt(full1[0] * part1[0]))
    c = cfg(**base, reward_options={"t_digits": {"scale": scale}})
    seen = []
    orig = GradientBased.update_from_grads
    monkeypatch.setattr(GradientBased, "update_from_grads",
                        lambda self, grads, lr: seen.append(grads.detach().clone()) or orig(self, grads, lr))
    with recording() as rec:
        train(c, "gradient", learnable()[2], tok, rows["train"], rows["val"], seed=SEED)
    (g,) = recorded_rollouts(rec, rows["train"])
    assert torch.equal(g.ids, g1.ids)  # the same rollouts
    want, full, part = oracle_objective_grads(model, c, g, chosen)
    assert full[0] > 1.2 and part[0] < 0.8, (full, part)  # the clip is active for t_digits, only over all parameters
    assert full[1] < 1.0, full  # and inactive for t_letters (worst over the 120 runs: 0.56)
    (got,) = seen
    assert got.shape == want.shape
    for k in range(2):
        assert rel(got[k], want[k]) < 1e-3, k


def test_objective_grads_clip_over_all_parameters_before_selecting():
    """Unit test on a linear toy policy: a big unselected parameter and a small selected one."""
    torch.manual_seed(0)
    big, small = torch.nn.Parameter(torch.randn(8)), torch.nn.Parameter(torch.randn(8))
    x = torch.randn(6, 5, 8)  # N = B*G = 2*3 sequences of 5 tokens, 8 features
    logp = 3.0 * x @ big + 0.02 * x @ small  # (N, T)
    mask = torch.ones(6, 5)
    r3 = torch.tensor([[[1.0, 0.0], [0.0, 0.2], [0.5, 0.1]], [[0.0, 0.3], [1.0, 0.0], [0.2, 0.0]]])  # (B, G, K)
    c = cfg(objectives=["t_digits", "t_letters"], estimator="grpo")
    got = objective_grads(c, r3, logp, logp.detach(), mask, [big, small], {id(small)})  # (K, 8)
    for k in range(2):
        adv = combine_advantages(r3, torch.eye(2)[k], "grpo").reshape(-1)
        gb, gs = torch.autograd.grad(policy_loss(logp, logp.detach(), adv, mask, None)[0], [big, small],
                                     retain_graph=True)
        full = torch.cat([gb, gs]).norm()
        assert full > 1 > gs.norm()  # the case where the two orders differ
        assert torch.allclose(got[k], gs / full, rtol=1e-5, atol=1e-8)


def test_hypervolume_weights_follow_the_trainer_validation_points(fx, monkeypatch):
    """Every validation point reaches the strategy, and the weights used are those its points imply."""
    rows, tok, _ = fx
    c = cfg(objectives=["t_digits", "t_letters"], max_steps=5, eval_every=1)
    seen = []
    orig = HypervolumeGuided.observe_validation
    monkeypatch.setattr(HypervolumeGuided, "observe_validation",
                        lambda self, p, step: seen.append((step, np.asarray(p).tolist())) or orig(self, p, step))
    res = train(c, "hypervolume", learnable()[2], tok, rows["train"], rows["val"], seed=0)
    assert seen == [(v["step"], v["point"]) for v in res.validation] and [s for s, _ in seen] == list(range(6))
    replay = make_weighting("hypervolume", c.objectives, c.weighting)
    after = []
    for v in res.validation:
        replay.observe_validation(np.array(v["point"]), v["step"])
        after.append(replay.weights().tolist())
    # the weights used at step t are those after point t - 1 (res.weights holds them in float32)
    assert np.allclose(res.weights, after[:-1], rtol=0, atol=1e-6) and res.final_weights == after[-1]
    gains = [v["delta_hv"] > 0 for v in res.validation[1:]]
    assert any(gains) and any(a != b for a, b in zip(after, after[1:]))  # the fixture moves the front and the weights
