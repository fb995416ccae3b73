"""Advantage estimators (pure tensor functions, registry ``ESTIMATORS``) and the policy loss.

Shapes: rewards (B, G) = B prompts x G rollouts each; per-objective rewards (B, G, K).

- ``grpo``: A = (r - mean_group) / (std_group + eps). ``train.std: sample`` (default) is the
  Bessel-corrected std, as TRL's ``GRPOTrainer`` (``nanstd``) and verl's
  ``compute_grpo_outcome_advantage`` (``torch.std``); ``population`` divides by G instead, so a
  group [1, 0, 0, 1] gives [1, -1, -1, 1]. The two differ by the constant sqrt((G-1)/G).
- ``rloo``: A_j = r_j - mean_{k != j} r_k (leave-one-out baseline; G >= 2).
- ``reinforce``: A = r - mean over the whole batch (a constant baseline).
- ``reinforce_pp``: A = (r - mean_batch) / (std_batch + eps) (REINFORCE++ batch whitening,
  ``train.std`` as for grpo).

Order of aggregation (``train.aggregation``, TRL's names): ``sum_then_normalize`` applies the
estimator to the scalarised reward sum_k w_k r_k (the authors' verl code, TRL's default);
``normalize_then_sum`` normalises *per objective* and then scalarises, A = sum_k w_k A_k with
A_k = estimator(r[..., k]) (:func:`combine_advantages`). The default is normalise-then-sum, for
the reasons below (README, "Decisions"; a seeded comparison of both orders on the default world
is still to be run). Arguments for normalise-then-sum: (1) "total gradient = weighted sum of per-objective gradients" then
holds exactly (with clipping off), which is what the gradient-based weighting assumes (the
authors disable PPO clipping for the same reason); (2) the weights keep their meaning under
group normalisation: with normalise-after-scalarise, an objective with a tiny within-group
spread (e.g. clarity after SFT) barely moves the advantage whatever its weight, and a
batch-wide factor cancels; (3) every strategy, the fixed baseline included, uses it, so the
comparison is fair. For the un-normalised ``reinforce`` the two orders coincide.

Policy loss (:func:`policy_loss`): the PPO/GRPO clipped-ratio objective with an optional k3 KL
penalty to a reference policy, aggregated as a token mean over all valid tokens of the batch
(DAPO-style ``token-mean``), so every token weighs the same whatever its sequence length.
"""

from __future__ import annotations

import torch

from moalign.registry import Registry

ESTIMATORS: Registry = Registry("estimator")
EPS = 1e-6
_MIN_G = {"grpo": 2, "rloo": 2}


@ESTIMATORS.register("grpo")
def grpo(r: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """(B, G) -> (B, G): A = (r - mean_g r) / (std_g r + eps); sample std unless ``unbiased=False``."""
    return (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True, unbiased=unbiased) + EPS)


@ESTIMATORS.register("rloo")
def rloo(r: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """(B, G) -> (B, G): A_j = r_j - (sum_k r_k - r_j) / (G - 1)."""
    check_group_size("rloo", r.shape[-1])
    G = r.shape[-1]
    return r - (r.sum(-1, keepdim=True) - r) / (G - 1)


@ESTIMATORS.register("reinforce")
def reinforce(r: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """(B, G) -> (B, G): A = r - mean over the batch."""
    return r - r.mean()


@ESTIMATORS.register("reinforce_pp")
def reinforce_pp(r: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """(B, G) -> (B, G): A = (r - mean_batch) / (std_batch + eps); sample std unless ``unbiased=False``."""
    return (r - r.mean()) / (r.std(unbiased=unbiased) + EPS)


def min_group_size(estimator: str) -> int:
    """Smallest G the estimator accepts: grpo and rloo compare rollouts of one prompt (G >= 2)."""
    ESTIMATORS.get(estimator)  # unknown names list the valid ones
    return _MIN_G.get(estimator, 1)


def check_group_size(estimator: str, group_size: int) -> None:
    """Raise a ValueError naming ``train.group_size`` when G is too small for ``estimator``."""
    need = min_group_size(estimator)
    if group_size < need:
        raise ValueError(
            f"train.group_size = {group_size} is too small for estimator {estimator!r} (needs >= {need}). "
            "Fix: raise train.group_size or use estimator reinforce/reinforce_pp"
        )


AGGREGATIONS = ("normalize_then_sum", "sum_then_normalize")


def combine_advantages(rewards: torch.Tensor, weights: torch.Tensor, estimator: str,
                       aggregation: str = "normalize_then_sum", std: str = "sample") -> torch.Tensor:
    """(B, G, K) rewards, (K,) weights -> (B, G) advantages.

    normalize_then_sum: A = sum_k w_k est(r[..., k]); sum_then_normalize: A = est(sum_k w_k r[..., k]).
    ``std``: sample (Bessel) or population, for the estimators that divide by a std.
    """
    est = ESTIMATORS.get(estimator)
    check_group_size(estimator, rewards.shape[1])
    if weights.shape != (rewards.shape[-1],):
        raise ValueError(f"weights of shape {tuple(weights.shape)} for {rewards.shape[-1]} objectives")
    if aggregation not in AGGREGATIONS or std not in ("sample", "population"):
        raise ValueError(f"aggregation {aggregation!r} / std {std!r}: valid are {AGGREGATIONS} / sample, population")
    unbiased = std == "sample"
    w = weights.to(rewards.dtype)
    if aggregation == "sum_then_normalize":
        return est((rewards * w).sum(-1), unbiased=unbiased)  # (B, G)
    per = torch.stack([est(rewards[..., k], unbiased=unbiased) for k in range(rewards.shape[-1])], -1)  # (B, G, K)
    return (per * w).sum(-1)  # (B, G)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float | None,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-ratio policy loss (PPO/GRPO) with a k3 KL penalty, token mean over valid tokens.

    logp, old_logp, ref_logp, mask: (N, T) with N = B*G; adv: (N,). Per token, with
    rho = exp(logp - old_logp):
        l_t = -min(rho A, clip(rho, 1 - eps, 1 + eps) A) + kl_coef * k3_t,
        k3_t = exp(ref - logp) - (ref - logp) - 1   (Schulman's unbiased, non-negative KL estimate);
    ``clip_eps=None`` gives l_t = -rho A (plain policy gradient; at rho = 1 its gradient is
    -A d logp). loss = sum_{n,t} l_t mask / sum mask. Stats: ``kl`` (mean k3 over valid tokens,
    reported whenever ``ref_logp`` is given) and ``clip_fraction`` (valid tokens where the
    clipped term is the active one).
    """
    m = mask.to(logp.dtype)  # (N, T)
    n_tok = m.sum().clamp(min=1)
    ratio = torch.exp(logp - old_logp)  # (N, T)
    a = adv.to(logp.dtype)[:, None]  # (N, 1)
    per_tok = -ratio * a  # (N, T)
    clip_frac = 0.0
    if clip_eps is not None:
        clipped = -torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a
        clip_frac = float(((clipped > per_tok).to(m) * m).sum() / n_tok)
        per_tok = torch.maximum(per_tok, clipped)
    kl_val = 0.0
    if ref_logp is not None:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1  # (N, T)
        kl_val = float((kl.detach() * m).sum() / n_tok)
        if kl_coef:
            per_tok = per_tok + kl_coef * kl
    loss = (per_tok * m).sum() / n_tok
    return loss, {"kl": kl_val, "clip_fraction": clip_frac}
