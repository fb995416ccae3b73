"""Tensor functions of the TRL adapter (pure: tensors in, tensors out; no trainer state).

Shapes: N completions (the rows of TRL's ``rewards_per_func``, gathered over processes, groups of
``G = num_generations`` consecutive rows), K reward functions, T completion tokens.

- :func:`trl_advantages`: TRL's own advantages for given reward weights, both
  ``multi_objective_aggregation`` orders and the three ``scale_rewards`` modes, written after
  ``GRPOTrainer._generate_and_score_completions`` of TRL 1.16. The gradient trainer uses it to
  recompute a batch's advantages after it moved the weights, and first checks on every batch that
  it reproduces TRL's advantages for the weights TRL used (a changed TRL formula raises instead of
  training silently with another one).
- :func:`reward_advantages`: each reward's *own* advantages, TRL's per-reward normalisation
  (group mean removed; divided by the group std, the batch std or nothing, per ``scale_rewards``;
  NaN rewards, i.e. a function that returned None, give 0 and are left out of the statistics).
  The gradient trainer passes TRL's ``scale_rewards`` with ``sum_then_normalize`` and ``group``
  with ``normalize_then_sum`` (whose per-reward step always divides by the group std).
  Our trainer takes the same from its estimator (``combine_advantages(r, e_k)``): here the
  estimator is TRL's, so g_k is the gradient TRL would follow for reward k alone.
- :func:`trl_reward_grads`: (K, D) per-reward policy gradients through TRL's own loss (``loss_type``'s
  token aggregation, ``beta`` x its k3 KL to the reference, ``use_bias_correction_kl``), at the ratio 1
  of the generation batch (where TRL's clipping cannot bind: min(r A, clip(r) A) has the gradient of
  A log pi at r = 1), each clipped to norm 1 over all parameters and restricted to the chosen ones.
  :func:`check_trl_loss` refuses, in one line, the settings whose gradient it cannot reproduce
  (``cispo``, ``sapo``, ``vespo``, sequence-level importance sampling, an entropy mask). Clipping and
  selection are the trainer's (``moalign.rl.grads.clip_and_select``); with ``dapo`` on one process and
  ``beta`` 0 the result is ``moalign.rl.grads.objective_grads`` on the same advantages
  (tests/integrations/test_trl_core.py).
"""

from __future__ import annotations

import torch
from trl.trainer.utils import nanstd

from moalign.rl.grads import clip_and_select



EPS = 1e-4  # TRL's std epsilon
SCALES = ("group", "batch", "none")
ORDERS = ("sum_then_normalize", "normalize_then_sum")


def _check(rewards: torch.Tensor, G: int, aggregation: str | None, scale_rewards: str) -> None:
    if rewards.ndim != 2 or rewards.shape[0] % G:
        raise ValueError(f"rewards_per_func of shape {tuple(rewards.shape)}: expected (N, K) with N a multiple of "
                         f"num_generations = {G}")
    if aggregation is not None and aggregation not in ORDERS:
        raise ValueError(f"multi_objective_aggregation = {aggregation!r}; valid: {', '.join(ORDERS)}")
    if scale_rewards not in SCALES:
        raise ValueError(f"scale_rewards = {scale_rewards!r}; valid: {', '.join(SCALES)}")


def trl_advantages(rewards: torch.Tensor, weights: torch.Tensor, G: int, aggregation: str,
                   scale_rewards: str) -> torch.Tensor:
    """(N, K) rewards per function, (K,) weights -> (N,) advantages exactly as TRL computes them."""
    _check(rewards, G, aggregation, scale_rewards)
    K = rewards.shape[1]
    w = weights.to(rewards.device).unsqueeze(0)  # (1, K)
    unscorable = torch.isnan(rewards).all(dim=1)  # (N,)
    if aggregation == "sum_then_normalize":
        r = (rewards * w).nansum(dim=1)  # (N,)
        r[unscorable] = torch.nan
        mean = torch.nanmean(r.view(-1, G), dim=1).repeat_interleave(G)  # (N,)
        if scale_rewards == "batch":
            std = nanstd(r).expand_as(r) if r.numel() > 1 else torch.zeros_like(r)
        else:
            std = nanstd(r.view(-1, G), dim=1).repeat_interleave(G) if G > 1 else torch.zeros_like(r)
        adv = r - mean
        if scale_rewards != "none":
            adv = adv / (std + EPS)
    else:
        grouped = rewards.view(-1, G, K)
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = nanstd(grouped, dim=1, keepdim=True) if G > 1 else torch.zeros_like(mean_k)
        r = (((grouped - mean_k) / (std_k + EPS)).view(-1, K) * w).nansum(dim=1)  # (N,)
        r[unscorable] = torch.nan
        std = nanstd(r).expand_as(r) if r.numel() > 1 else torch.zeros_like(r)
        adv = (r - torch.nanmean(r)) / (std + EPS)
    return torch.nan_to_num(adv, nan=0.0)


def reward_advantages(rewards: torch.Tensor, G: int, scale_rewards: str = "group") -> torch.Tensor:
    """(N, K) rewards per function -> (N, K) advantages of each reward alone (module docstring)."""
    _check(rewards, G, None, scale_rewards)
    K = rewards.shape[1]
    grouped = rewards.view(-1, G, K)  # (B, G, K)
    adv = grouped - torch.nanmean(grouped, dim=1, keepdim=True)
    if scale_rewards == "group" and G > 1:
        adv = adv / (nanstd(grouped, dim=1, keepdim=True) + EPS)
    elif scale_rewards == "batch" and rewards.shape[0] > 1:
        adv = adv / (nanstd(rewards, dim=0).view(1, 1, K) + EPS)
    return torch.nan_to_num(adv.reshape(-1, K), nan=0.0)


LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")  # TRL's clipped-ratio losses: gradient A * grad log pi at r = 1


def check_trl_loss(args) -> None:
    """One-line ValueError for the GRPOConfig settings :func:`trl_reward_grads` does not reproduce."""
    bad = []
    if getattr(args, "loss_type", "dapo") not in LOSSES:
        bad.append(f"loss_type={args.loss_type!r} (supported: {', '.join(LOSSES)})")
    if getattr(args, "importance_sampling_level", "token") != "token":
        bad.append(f"importance_sampling_level={args.importance_sampling_level!r} (supported: 'token')")
    if getattr(args, "top_entropy_quantile", 1.0) < 1.0:
        bad.append(f"top_entropy_quantile={args.top_entropy_quantile} (supported: 1.0)")
    if bad:
        raise ValueError("GradientWeightingGRPOTrainer computes per-reward gradients through TRL's loss and cannot "
                         f"match {'; '.join(bad)}. Fix: use the supported values")


def trl_loss(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, max_completion_length: int | None = None,
             num_items: float | None = None) -> torch.Tensor:
    """TRL's aggregation of a (N, T) per-token loss over the generation batch (``GRPOTrainer._compute_loss``)."""
    m = mask.to(per_token.dtype)
    if loss_type == "grpo":
        return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token * m).sum() / m.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return (per_token * m).sum() / (per_token.shape[0] * (max_completion_length or per_token.shape[1]))
    if loss_type == "dapo":  # num_items_in_batch / num_processes: tokens of this rank's share of the batch
        return (per_token * m).sum() / (num_items if num_items is not None else m.sum()).clamp(min=1.0)
    if loss_type == "luspo":
        return (per_token * m).sum(-1).mean()
    raise ValueError(f"loss_type {loss_type!r}: supported {', '.join(LOSSES)}")


def trl_reward_grads(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor, params: list[torch.nn.Parameter],
                     chosen: set[int], loss_type: str = "dapo", beta: float = 0.0, ref_logp: torch.Tensor | None = None,
                     bias_correction_kl: bool = False, max_completion_length: int | None = None,
                     num_items: torch.Tensor | None = None) -> torch.Tensor:
    """(N, K) per-reward advantages, (N, T) log-probs with their graph -> (K, D): g_k = grad of TRL's loss for
    reward k alone (module docstring), clipped to norm 1 over all ``params``, then the ``chosen`` ones."""
    ratio = torch.exp(logp - logp.detach())  # 1, with the gradient of log pi
    kl = None
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs the reference log-probs (TRL's ref_per_token_logps)")
        kl = torch.exp(ref_logp - logp) - (ref_logp - logp) - 1
        if bias_correction_kl:
            kl = kl * ratio
    K = adv.shape[1]
    gs = []
    for k in range(K):
        per_token = -ratio * adv[:, k:k + 1] + (beta * kl if kl is not None else 0.0)
        loss = trl_loss(per_token, mask, loss_type, max_completion_length, num_items)
        gs.append(clip_and_select(loss, params, chosen, k < K - 1))  # the trainer's rule (moalign/rl/grads.py)
    return torch.stack(gs)
