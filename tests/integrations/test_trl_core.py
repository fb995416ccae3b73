"""moalign.integrations.trl_core: TRL's advantages, per-reward advantages, per-reward gradients."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("trl", minversion="1.16")

from moalign.integrations.trl_core import reward_advantages, trl_reward_grads  # noqa: E402
from moalign.rl.estimators import combine_advantages  # noqa: E402
from moalign.rl.trainer import objective_grads, select_params  # noqa: E402


def test_importing_the_adapter_pulls_no_pipeline_tools():
    """TRL itself imports mlflow when it is installed (trl/extras/profiling.py) unless transformers' MLflow
    integration is disabled; with it disabled, any mlflow, dvc or prefect module would be the adapter's."""
    code = ("import sys, moalign.integrations.trl; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'dvc', 'prefect'}))")
    env = {**os.environ, "DISABLE_MLFLOW_INTEGRATION": "TRUE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"


def test_reward_advantages_normalise_each_reward_within_its_group_and_skip_nan():
    nan = float("nan")
    r = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, nan],  # group 1 (G = 3): reward 1 returned None once
                      [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])  # group 2: reward 0 constant
    adv = reward_advantages(r, 3, "group")
    s = 2 ** -0.5 + 1e-4  # sample std of [1, 0] (the NaN left out of mean and std) + TRL's eps
    assert torch.allclose(adv[:3, 1], torch.tensor([0.5 / s, -0.5 / s, 0.0]))
    assert torch.equal(adv[3:, 0], torch.zeros(3))
    s0 = (1 / 3) ** 0.5 + 1e-4  # sample std of [1, 0, 1]
    assert torch.allclose(adv[:3, 0], torch.tensor([1 / 3, -2 / 3, 1 / 3]) / s0)
    assert torch.allclose(reward_advantages(r, 3, "none")[:3, 1], torch.tensor([0.5, -0.5, 0.0]))


def test_gradients_from_advantages_equal_our_trainers_objective_grads():
    """Same advantages (our grpo estimator per objective) -> the same clipped, layer-restricted (K, D) matrix."""
    from tests.integrations.tiny_trl import model as tiny_model
    from moalign.generation import token_logprobs

    m = tiny_model()
    torch.manual_seed(1)
    B, G, K, L = 2, 4, 3, 12
    ids = torch.randint(5, 300, (B * G, L))
    mask = torch.ones_like(ids)
    cmask = torch.zeros(B * G, L - 1, dtype=torch.long)
    cmask[:, 5:] = 1
    r3 = torch.rand(B, G, K) * 10  # large rewards are normalised away, the gradient norms stay > 1 below
    params = [p for p in m.parameters() if p.requires_grad]
    chosen = {id(p) for _, p in select_params(m, ["layers\\.1\\."])}
    logp = token_logprobs(m, ids, mask)[:, 1:]  # (N, L-1)
    cfg = SimpleNamespace(estimator="grpo", std="sample", kl_coef=0.0, grad_kl=True)
    ours = objective_grads(cfg, r3, logp, logp.detach(), cmask, params, chosen)  # (K, D)
    adv = torch.stack([combine_advantages(r3, torch.eye(K)[k], "grpo", "normalize_then_sum_unscaled").reshape(-1)
                       for k in range(K)], 1)  # est(r_k): each objective's own group-normalised advantages
    full = [torch.autograd.grad(logp[:, 5:].sum(), params, retain_graph=True)]  # the full norm is > 1: clipping acts
    assert torch.sqrt(sum(g.pow(2).sum() for g in full[0])) > 1
    theirs = trl_reward_grads(adv, logp, cmask, params, chosen)  # dapo, one process, beta 0: our token mean
    assert theirs.shape == ours.shape == (K, sum(p.numel() for p in params if id(p) in chosen))
    assert torch.allclose(theirs, ours, atol=1e-7)
    assert (theirs.norm(dim=1) < 1).all()  # clipped over all parameters, then restricted
