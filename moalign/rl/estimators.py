"""Advantage estimators (pure tensor functions, registry ``ESTIMATORS``) and the policy loss.

Shapes: rewards (B, G) = B prompts x G rollouts; per-objective rewards (B, G, K).
- ``grpo``: (r - mean_group) / (std_group + eps), population std (unbiased=False) so a
  group of two gives +-1; TRL uses the sample std - a constant factor per group size.
- ``rloo``: r_j - mean_{k != j} r_k (leave-one-out; G >= 2).
- ``reinforce``: r - mean over the whole batch.
- ``reinforce_pp``: (r - mean_batch) / (std_batch + eps) (REINFORCE++ whitening).

Design decision: with several objectives we normalise *per objective* and then scalarise,
A = sum_k w_k A_k (:func:`combine_advantages`), instead of normalising the scalarised reward.
This makes "total gradient = weighted sum of per-objective gradients" exact (the assumption of
the gradient-based weighting, which the authors obtain by disabling PPO clipping), keeps the
weights meaningful under group normalisation, and every strategy uses it, so the comparison
with the fixed-weight baseline is fair. Loss aggregation: token mean over all valid tokens of
the batch (DAPO style), so long and short completions weigh per token.
"""

from __future__ import annotations

import torch

from moalign.registry import Registry

ESTIMATORS: Registry = Registry("estimator")
EPS = 1e-6
_MIN_G = {"grpo": 2, "rloo": 2, "reinforce": 1, "reinforce_pp": 1}


@ESTIMATORS.register("grpo")
def grpo(r: torch.Tensor) -> torch.Tensor:
    """(B, G) -> (B, G): group-normalised rewards."""
    return (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True, unbiased=False) + EPS)


@ESTIMATORS.register("rloo")
def rloo(r: torch.Tensor) -> torch.Tensor:
    """(B, G) -> (B, G): r_j minus the mean of the other G-1 rollouts."""
    G = r.shape[-1]
    return r - (r.sum(-1, keepdim=True) - r) / (G - 1)


@ESTIMATORS.register("reinforce")
def reinforce(r: torch.Tensor) -> torch.Tensor:
    """(B, G) -> (B, G): batch-mean baseline."""
    return r - r.mean()


@ESTIMATORS.register("reinforce_pp")
def reinforce_pp(r: torch.Tensor) -> torch.Tensor:
    """(B, G) -> (B, G): batch whitening."""
    return (r - r.mean()) / (r.std(unbiased=False) + EPS)


def check_group_size(estimator: str, group_size: int) -> None:
    """grpo and rloo compare rollouts of the same prompt: they need G >= 2."""
    need = _MIN_G.get(estimator, 1)
    if group_size < need:
        raise ValueError(
            f"train.group_size = {group_size} is too small for estimator {estimator!r} (needs >= {need}). "
            "Fix: raise train.group_size or use estimator reinforce/reinforce_pp"
        )


def combine_advantages(rewards: torch.Tensor, weights: torch.Tensor, estimator: str) -> torch.Tensor:
    """(B, G, K) rewards, (K,) weights -> (B, G) advantages sum_k w_k * est(r[..., k])."""
    est = ESTIMATORS.get(estimator)
    per = torch.stack([est(rewards[..., k]) for k in range(rewards.shape[-1])], -1)  # (B, G, K)
    return (per * weights.to(per)).sum(-1)


def policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
    clip_eps: float | None, ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-ratio policy loss (PPO/GRPO), token mean over valid tokens.

    logp, old_logp, ref_logp, mask: (N, T); adv: (N,). loss_t = -min(rho A, clip(rho) A)
    (``clip_eps=None``: -rho A, the plain policy gradient at rho=1) + kl_coef * k3, with
    k3 = exp(ref - logp) - (ref - logp) - 1.
    """
    m = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    a = adv[:, None]
    pg = -ratio * a
    clip_frac = 0.0
    if clip_eps is not None:
        clipped = -torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a
        clip_frac = float((((clipped > pg).to(m) * m).sum() / m.sum().clamp(min=1)).item())
        pg = torch.maximum(pg, clipped)
    per_tok = pg
    kl_val = 0.0
    if ref_logp is not None and kl_coef > 0:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        per_tok = per_tok + kl_coef * kl
        kl_val = float(((kl * m).sum() / m.sum().clamp(min=1)).item())
    loss = (per_tok * m).sum() / m.sum().clamp(min=1)
    return loss, {"kl": kl_val, "clip_fraction": clip_frac}
