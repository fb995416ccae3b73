"""Estimators against hand values and loop versions; TRL's aggregation recomputed from TRL's own code;
combine linearity; policy loss gradients."""

import pytest
import torch

from moalign.rl.estimators import (
    ESTIMATORS,
    check_group_size,
    combine_advantages,
    grpo,
    min_group_size,
    policy_loss,
    reinforce,
    reinforce_pp,
    rloo,
)


def test_grpo_hand_values():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    # sample std (default, as TRL and verl): sqrt(sum (r - 0.5)^2 / (G - 1)) = sqrt(1 / 3)
    # eps = 1e-4, TRL's GRPOTrainer
    assert torch.allclose(grpo(r), torch.tensor([[1.0, -1.0, -1.0, 1.0]]) * 0.5 / ((1 / 3) ** 0.5 + 1e-4), atol=1e-6)
    assert torch.allclose(grpo(r, unbiased=False), torch.tensor([[1.0, -1.0, -1.0, 1.0]]) * 0.5 / (0.5 + 1e-4),
                          atol=1e-6)  # population std 0.5
    assert torch.allclose(grpo(torch.ones(2, 3)), torch.zeros(2, 3))  # no spread: no signal


def test_rloo_hand_values():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    assert torch.allclose(rloo(r), torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3]]))


def test_reinforce_and_pp_hand_values():
    r = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # batch mean 0.25, population std sqrt(3)/4, sample 1/2
    assert torch.allclose(reinforce(r), r - 0.25)
    assert torch.allclose(reinforce_pp(r, unbiased=False), (r - 0.25) / (3**0.5 / 4 + 1e-4), atol=1e-6)
    assert torch.allclose(reinforce_pp(r), (r - 0.25) / (0.5 + 1e-4), atol=1e-6)


@pytest.mark.parametrize("std", ["sample", "population"])
@pytest.mark.parametrize("name", ["grpo", "rloo", "reinforce", "reinforce_pp"])
def test_vectorised_equals_loop(name, std):
    torch.manual_seed(0)
    B, G = 4, 5
    r = torch.rand(B, G)
    flat = r.flatten().tolist()
    mu_all = sum(flat) / len(flat)
    dof = 1 if std == "sample" else 0  # Bessel's correction, computed here independently of torch.std
    sd_all = (sum((x - mu_all) ** 2 for x in flat) / (len(flat) - dof)) ** 0.5
    exp = torch.zeros_like(r)
    for b in range(B):
        row = r[b].tolist()
        mu = sum(row) / G
        sd = (sum((x - mu) ** 2 for x in row) / (G - dof)) ** 0.5
        for g in range(G):
            if name == "grpo":
                exp[b, g] = (row[g] - mu) / (sd + 1e-4)
            elif name == "rloo":
                exp[b, g] = row[g] - sum(x for k, x in enumerate(row) if k != g) / (G - 1)
            elif name == "reinforce":
                exp[b, g] = row[g] - mu_all
            else:
                exp[b, g] = (row[g] - mu_all) / (sd_all + 1e-4)
    assert torch.allclose(ESTIMATORS.get(name)(r, unbiased=std == "sample"), exp, atol=1e-5)
    w = torch.tensor([1.0])
    assert torch.allclose(combine_advantages(r[..., None], w, name, "sum_then_normalize", std=std), exp, atol=1e-5)
    assert torch.allclose(combine_advantages(r[..., None], w, name, "normalize_then_sum_unscaled", std=std), exp,
                          atol=1e-5)


def test_sum_then_normalize_by_hand():
    """The authors' order: the estimator sees the scalarised reward sum_k w_k r_k."""
    r = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # (1, 4, 2)
    w = torch.tensor([0.75, 0.25])
    s = torch.tensor([[0.75, 0.0, 0.25, 1.0]])  # scalarised, mean 0.5
    sd = (((s - 0.5) ** 2).sum() / 3) ** 0.5
    assert torch.allclose(combine_advantages(r, w, "grpo", "sum_then_normalize"), (s - 0.5) / (sd + 1e-4), atol=1e-6)
    per = combine_advantages(r, w, "grpo", "normalize_then_sum_unscaled")
    assert not torch.allclose(per, (s - 0.5) / sd, atol=1e-3)  # the two orders differ here
    assert torch.allclose(combine_advantages(r, w, "reinforce", "sum_then_normalize"),
                          combine_advantages(r, w, "reinforce", "normalize_then_sum_unscaled"), atol=1e-6)  # no std
    with pytest.raises(ValueError, match="aggregation"):
        combine_advantages(r, w, "grpo", "mean")


@pytest.mark.parametrize("name", ["grpo", "rloo", "reinforce", "reinforce_pp"])
def test_combine_is_per_objective_then_linear(name):
    torch.manual_seed(1)
    r = torch.rand(3, 4, 2)  # (B, G, K)
    est = ESTIMATORS.get(name)
    w = torch.tensor([0.3, 0.7])
    a = combine_advantages(r, w, name, "normalize_then_sum_unscaled")
    assert a.shape == (3, 4)
    assert torch.allclose(a, 0.3 * est(r[..., 0]) + 0.7 * est(r[..., 1]), atol=1e-6)
    a2 = combine_advantages(r, torch.tensor([0.6, 0.1]), name, "normalize_then_sum_unscaled")
    both = combine_advantages(r, torch.tensor([0.9, 0.8]), name, "normalize_then_sum_unscaled")
    assert torch.allclose(both, a + a2, atol=1e-6)  # linear in the weights
    # TRL's normalize_then_sum = the same sum, divided by its batch std (its batch mean is 0 for group- or
    # batch-centred estimators), so the direction is still the weighted sum of per-objective directions
    if name != "reinforce_pp":
        scaled = combine_advantages(r, w, name, "normalize_then_sum")
        assert torch.allclose(scaled, a / (a.flatten().std() + 1e-4), atol=1e-5)


def _trl_reference(rewards_per_func: torch.Tensor, reward_weights: torch.Tensor, num_generations: int,
                   order: str) -> torch.Tensor:
    """TRL 1.16 GRPOTrainer._generate_and_score_completions, both branches of ``multi_objective_aggregation``
    (scale_rewards='group', the default), transcribed with TRL's own ``nanstd``; (N, K) -> (N,)."""
    from trl.trainer.utils import nanstd

    if order == "sum_then_normalize":
        rewards = (rewards_per_func * reward_weights.unsqueeze(0)).nansum(dim=1)
        mean_grouped = torch.nanmean(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
        std_rewards = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
        return (rewards - mean_grouped) / (std_rewards + 1e-4)
    grouped = rewards_per_func.view(-1, num_generations, rewards_per_func.shape[1])
    mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
    std_k = nanstd(grouped, dim=1, keepdim=True)
    reward_k = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, rewards_per_func.shape[1])
    rewards = (reward_k * reward_weights.unsqueeze(0)).nansum(dim=1)
    std_rewards = nanstd(rewards).expand_as(rewards)
    return (rewards - torch.nanmean(rewards)) / (std_rewards + 1e-4)


@pytest.mark.parametrize("order", ["normalize_then_sum", "sum_then_normalize"])
@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_aggregation_equals_trl(order, kind):
    """combine_advantages under TRL's names == TRL's formulas on a random batch (binary rewards include
    groups with zero spread in one objective, where eps decides)."""
    pytest.importorskip("trl")
    g = torch.Generator().manual_seed(7)
    B, G, K = 6, 8, 3
    r = torch.rand(B, G, K, generator=g)
    if kind == "binary":
        r = (r > 0.6).float()
        r[0, :, 1] = 1.0  # a group with no spread in one objective
    w = torch.tensor([0.5, 0.2, 0.3])
    ours = combine_advantages(r, w, "grpo", order)
    trl = _trl_reference(r.reshape(B * G, K), w, G, order).view(B, G)
    assert torch.allclose(ours, trl, atol=1e-5), (ours - trl).abs().max()
    if order == "normalize_then_sum":  # the batch step is what the unscaled variant leaves out
        assert ours.std().item() == pytest.approx(1.0, abs=1e-3)
        assert not torch.allclose(ours, combine_advantages(r, w, "grpo", "normalize_then_sum_unscaled"), atol=1e-2)


def _two_ranks(fn):
    """Run fn(rank, reduce) on two threads whose ``reduce`` sums a tensor over both (an all-reduce)."""
    import threading

    barrier, box, out = threading.Barrier(2), [None, None], [None, None]

    def reduce_for(i):
        def reduce(t):
            box[i] = t.clone()
            barrier.wait()
            total = box[0] + box[1]
            barrier.wait()  # both have read before the next call overwrites the box
            return total
        return reduce

    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(i, reduce_for(i)))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize("agg,est", [("normalize_then_sum", "grpo"), ("sum_then_normalize", "reinforce_pp"),
                                     ("normalize_then_sum", "reinforce"), ("normalize_then_sum", "rloo")])
def test_batch_statistics_use_the_reduce_over_ranks(agg, est):
    """Two ranks' halves with reduce = an all-reduce give exactly the advantages of the whole batch."""
    torch.manual_seed(3)
    r = torch.rand(4, 4, 2)
    r[2:] += 0.5  # the ranks see different data
    w = torch.tensor([0.4, 0.6])
    halves = [r[:2], r[2:]]
    full = combine_advantages(r, w, est, agg)
    parts = _two_ranks(lambda i, reduce: combine_advantages(halves[i], w, est, agg, reduce=reduce))
    assert torch.allclose(torch.cat(parts), full, atol=1e-5)
    local = torch.cat([combine_advantages(h, w, est, agg) for h in halves])
    assert not torch.allclose(local, full, atol=1e-4)  # without the reduce each rank uses its own stats


def test_policy_loss_gradient_without_clip_is_token_mean():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.1, -0.2]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, st = policy_loss(logp, logp.detach(), adv, mask, None, None, 0.0)
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.allclose(g, -adv[:, None] * mask / mask.sum())  # d loss / d logp = -A mask / n_tokens
    assert loss.item() == pytest.approx(-(2 * 2 - 1 * 3) / 5)
    assert st == {"kl": 0.0, "clip_fraction": 0.0}


def test_policy_loss_clip_and_kl():
    logp = torch.tensor([[0.0]], requires_grad=True)
    old = torch.tensor([[-1.0]])  # ratio e > 1 + eps
    loss, st = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), 0.2)
    assert loss.item() == pytest.approx(-1.2) and st["clip_fraction"] == 1.0
    (g,) = torch.autograd.grad(loss, logp)
    assert g.abs().sum() == 0  # clipped: no gradient
    loss, st = policy_loss(logp, old, torch.tensor([-1.0]), torch.ones(1, 1), 0.2)
    assert loss.item() == pytest.approx(torch.e) and st["clip_fraction"] == 0.0  # A < 0: the unclipped term
    loss, st = policy_loss(logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 1), None,
                           ref_logp=torch.tensor([[-1.0]]), kl_coef=0.5)
    k3 = torch.exp(torch.tensor(-1.0)).item() + 1 - 1  # exp(d) - d - 1 with d = -1
    assert st["kl"] == pytest.approx(k3, abs=1e-6) and loss.item() == pytest.approx(0.5 * k3, abs=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    assert g.item() == pytest.approx(0.5 * (1 - torch.exp(torch.tensor(-1.0)).item()), abs=1e-6)


def test_total_gradient_equals_weighted_sum_of_objective_gradients():
    """With clipping off, grad(loss on sum_k w_k A_k) = sum_k w_k grad(loss on A_k) (tiny linear policy)."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 5)
    x = torch.randn(6, 4, 3)  # N = B*G = 6 sequences of 4 tokens
    mask = (torch.rand(6, 4) > 0.2).float()
    rewards = torch.rand(2, 3, 3)  # B=2, G=3, K=3
    w = torch.tensor([0.2, 0.3, 0.5])
    ref = torch.randn(6, 4)

    def loss_for(adv):
        logp = torch.log_softmax(lin(x), -1)[..., 0]  # (N, T)
        return policy_loss(logp, logp.detach(), adv, mask, None, ref, 0.0)[0]

    params = list(lin.parameters())
    unscaled = combine_advantages(rewards, w, "grpo", "normalize_then_sum_unscaled")
    total = torch.autograd.grad(loss_for(unscaled.reshape(-1)), params)
    parts = [torch.autograd.grad(loss_for(combine_advantages(rewards, torch.eye(3)[k], "grpo",
                                                             "normalize_then_sum_unscaled").reshape(-1)), params)
             for k in range(3)]
    for i, t in enumerate(total):
        assert torch.allclose(t, sum(w[k] * parts[k][i] for k in range(3)), atol=1e-6)
    # TRL's normalize_then_sum: the same combination, times 1 / (std of the unscaled sum + eps)
    c = 1.0 / (unscaled.flatten().std() + 1e-4)
    trl = torch.autograd.grad(loss_for(combine_advantages(rewards, w, "grpo").reshape(-1)), params)
    for i, t in enumerate(trl):
        assert torch.allclose(t, c * sum(w[k] * parts[k][i] for k in range(3)), atol=1e-5)


def test_group_size_checks_and_unknown_names():
    assert (min_group_size("grpo"), min_group_size("rloo"), min_group_size("reinforce")) == (2, 2, 1)
    for name in ("grpo", "rloo"):
        with pytest.raises(ValueError, match="train.group_size"):
            check_group_size(name, 1)
        with pytest.raises(ValueError, match="train.group_size"):
            combine_advantages(torch.rand(4, 1, 2), torch.tensor([0.5, 0.5]), name)
    with pytest.raises(ValueError, match="train.group_size"):
        rloo(torch.rand(3, 1))
    check_group_size("reinforce", 1)
    check_group_size("reinforce_pp", 1)
    with pytest.raises(KeyError, match="valid names: grpo, reinforce, reinforce_pp, rloo"):
        ESTIMATORS.get("ppo")
    with pytest.raises(KeyError, match="valid names"):
        combine_advantages(torch.rand(2, 2, 1), torch.ones(1), "ppo")
