import pytest
import torch

from moalign.rl.estimators import (
    ESTIMATORS,
    check_group_size,
    combine_advantages,
    grpo,
    policy_loss,
    reinforce,
    reinforce_pp,
    rloo,
)


def test_grpo_hand_values():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    assert torch.allclose(grpo(r), torch.tensor([[1.0, -1.0, -1.0, 1.0]]), atol=1e-5)
    assert torch.allclose(grpo(torch.ones(2, 3)), torch.zeros(2, 3))


def test_rloo_hand_values():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    assert torch.allclose(rloo(r), torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3]]))


def test_reinforce_and_pp():
    r = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert torch.allclose(reinforce(r), r - 0.25)
    w = reinforce_pp(r)
    assert w.mean().abs() < 1e-6 and (w.std(unbiased=False) - 1).abs() < 1e-4


@pytest.mark.parametrize("name", ["grpo", "rloo", "reinforce", "reinforce_pp"])
def test_vectorised_equals_loop(name):
    torch.manual_seed(0)
    r = torch.rand(4, 5)
    got = ESTIMATORS.get(name)(r)
    exp = torch.zeros_like(r)
    for b in range(4):
        for g in range(5):
            if name == "grpo":
                row = r[b]
                exp[b, g] = (r[b, g] - row.mean()) / (row.std(unbiased=False) + 1e-6)
            elif name == "rloo":
                exp[b, g] = r[b, g] - (r[b].sum() - r[b, g]) / 4
            elif name == "reinforce":
                exp[b, g] = r[b, g] - r.mean()
            else:
                exp[b, g] = (r[b, g] - r.mean()) / (r.std(unbiased=False) + 1e-6)
    assert torch.allclose(got, exp, atol=1e-5)


def test_combine_is_linear_in_weights():
    torch.manual_seed(1)
    r = torch.rand(3, 4, 2)
    w = torch.tensor([0.3, 0.7])
    a = combine_advantages(r, w, "grpo")
    assert torch.allclose(a, 0.3 * grpo(r[..., 0]) + 0.7 * grpo(r[..., 1]), atol=1e-6)


def test_policy_loss_gradient_without_clip():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.1, -0.2]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, _ = policy_loss(logp, logp.detach(), adv, mask, None)
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.allclose(g, -adv[:, None] * mask / mask.sum())


def test_policy_loss_clip_and_kl():
    logp = torch.tensor([[0.0]], requires_grad=True)
    old = torch.tensor([[-1.0]])  # ratio e > 1 + eps
    loss, st = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), 0.2)
    assert loss.item() == pytest.approx(-1.2) and st["clip_fraction"] == 1.0
    (g,) = torch.autograd.grad(loss, logp)
    assert g.abs().sum() == 0  # clipped: no gradient
    loss, st = policy_loss(logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 1), None,
                           ref_logp=torch.tensor([[-1.0]]), kl_coef=0.5)
    assert st["kl"] == pytest.approx(torch.exp(torch.tensor(-1.0)).item() + 1 - 1, abs=1e-6)


def test_total_gradient_equals_weighted_sum_of_objective_gradients():
    """With clipping off, grad of the loss on sum_k w_k A_k = sum_k w_k grad(loss on A_k)."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 5)
    x = torch.randn(6, 4, 3)  # N=6 sequences of 4 tokens
    mask = (torch.rand(6, 4) > 0.2).float()
    rewards = torch.rand(2, 3, 2)  # B=2, G=3, K=2
    w = torch.tensor([0.25, 0.75])

    def loss_for(adv):
        logp = torch.log_softmax(lin(x), -1)[..., 0]
        return policy_loss(logp, logp.detach(), adv, mask, None)[0]

    params = list(lin.parameters())
    total = torch.autograd.grad(loss_for(combine_advantages(rewards, w, "grpo").reshape(-1)), params)
    parts = [torch.autograd.grad(loss_for(combine_advantages(rewards, torch.eye(2)[k], "grpo").reshape(-1)), params)
             for k in range(2)]
    for i, t in enumerate(total):
        assert torch.allclose(t, w[0] * parts[0][i] + w[1] * parts[1][i], atol=1e-6)


def test_group_size_checks_and_unknown_names():
    with pytest.raises(ValueError, match="train.group_size"):
        check_group_size("grpo", 1)
    with pytest.raises(ValueError, match="train.group_size"):
        check_group_size("rloo", 1)
    check_group_size("reinforce", 1)
    with pytest.raises(KeyError, match="valid names: grpo, reinforce, reinforce_pp, rloo"):
        ESTIMATORS.get("ppo")
