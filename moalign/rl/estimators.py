"""Advantage estimators (pure tensor functions, registry ``ESTIMATORS``) and the policy loss.

Shapes: rewards (B, G) = B prompts x G rollouts each; per-objective rewards (B, G, K).

- ``grpo``: A = (r - mean_group) / (std_group + eps). ``train.std: sample`` (default) is the
  Bessel-corrected std, as TRL's ``GRPOTrainer`` (``nanstd``) and verl's
  ``compute_grpo_outcome_advantage`` (``torch.std``); ``population`` divides by G instead, so a
  group [1, 0, 0, 1] gives [1, -1, -1, 1]. The two differ by the constant sqrt((G-1)/G).
  eps = 1e-4, TRL's (``grpo_trainer.py``, ``(std_rewards + 1e-4)``); verl uses 1e-6. With rewards
  in [0, 1] the two differ only for groups whose std is below ~1e-3.
- ``rloo``: A_j = r_j - mean_{k != j} r_k (leave-one-out baseline; G >= 2).
- ``reinforce``: A = r - mean over the whole batch (a constant baseline).
- ``reinforce_pp``: A = (r - mean_batch) / (std_batch + eps) (REINFORCE++ batch whitening,
  ``train.std`` as for grpo).

Batch statistics (reinforce, reinforce_pp and the last step of ``normalize_then_sum``) are over
the *global* batch: with several processes the trainer passes ``reduce`` (a sum over ranks), as
TRL gathers every process's rewards before it normalises.

Order of aggregation (``train.aggregation``; TRL's ``multi_objective_aggregation`` names and
formulas, TRL 1.16 ``grpo_trainer.py`` ``_generate_and_score_completions``, the two branches at
``if self.multi_objective_aggregation == "sum_then_normalize"`` / ``elif ... == "normalize_then_sum"``):

- ``sum_then_normalize`` (TRL's default, the authors' verl code): A = est(sum_k w_k r_k).
- ``normalize_then_sum`` (TRL's GDPO-style branch; default here): each objective normalised
  within its group, A_k = est(r_k); weighted sum s = sum_k w_k A_k; then **normalised again over
  the batch**, A = (s - mean_batch s) / (std_batch s + eps), sample std, eps 1e-4 - TRL's lines
  ``std_rewards = nanstd(rewards)`` / ``advantages = (rewards - torch.nanmean(rewards)) / (std_rewards + 1e-4)``.
- ``normalize_then_sum_unscaled``: s alone, without the batch step (this project's earlier
  ``normalize_then_sum``). Its advantages are about half the scale (std 0.47 vs 0.93 on a synthetic
  batch), so the same ``kl_coef`` pulls about twice as hard; kept for comparison with earlier runs.

For group-centred estimators (grpo, rloo) and reinforce, s has batch mean exactly 0, so the batch
step only divides by std(s) + eps: the update direction is still the weighted sum of the
per-objective directions, "total gradient = (1/c) sum_k w_k g_k" holds (exactly, with clipping off),
which the gradient-based weighting assumes; and a weight keeps its meaning whatever an objective's
within-group spread (with sum-then-normalise an objective with a tiny spread barely moves the
advantage whatever its weight). The default is ``normalize_then_sum`` for these reasons; every
strategy, the fixed baseline included, uses it, so the comparison is fair. The seeded comparison
of the orders is in benchmarks/README.md ("Order of aggregation").

Policy loss (:func:`policy_loss`): the PPO/GRPO clipped-ratio objective with an optional k3 KL
penalty to a reference policy, aggregated as a token mean over all valid tokens of the batch
(DAPO-style ``token-mean``), so every token weighs the same whatever its sequence length.
"""

from __future__ import annotations

from typing import Callable

import torch

from moalign.registry import Registry

ESTIMATORS: Registry = Registry("estimator")
EPS = 1e-4  # TRL's GRPOTrainer
_MIN_G = {"grpo": 2, "rloo": 2}
Reduce = Callable[[torch.Tensor], torch.Tensor] | None  # sum over processes (None: one process)


def batch_moments(x: torch.Tensor, unbiased: bool = True, reduce: Reduce = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of every element of ``x`` over the global batch (``reduce`` sums across ranks)."""
    stats = torch.stack([x.sum(), x.pow(2).sum(), torch.tensor(float(x.numel()), dtype=x.dtype, device=x.device)])
    if reduce is not None:
        stats = reduce(stats.double()).to(x.dtype)
    total, sq, n = stats[0], stats[1], stats[2]
    mean = total / n
    var = (sq - n * mean**2).clamp(min=0) / ((n - 1).clamp(min=1) if unbiased else n)
    return mean, var.sqrt()


@ESTIMATORS.register("grpo")
def grpo(r: torch.Tensor, unbiased: bool = True, reduce: Reduce = None) -> torch.Tensor:
    """(B, G) -> (B, G): A = (r - mean_g r) / (std_g r + eps); sample std unless ``unbiased=False``."""
    return (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True, unbiased=unbiased) + EPS)


@ESTIMATORS.register("rloo")
def rloo(r: torch.Tensor, unbiased: bool = True, reduce: Reduce = None) -> torch.Tensor:
    """(B, G) -> (B, G): A_j = r_j - (sum_k r_k - r_j) / (G - 1)."""
    check_group_size("rloo", r.shape[-1])
    G = r.shape[-1]
    return r - (r.sum(-1, keepdim=True) - r) / (G - 1)


@ESTIMATORS.register("reinforce")
def reinforce(r: torch.Tensor, unbiased: bool = True, reduce: Reduce = None) -> torch.Tensor:
    """(B, G) -> (B, G): A = r - mean over the (global) batch."""
    return r - batch_moments(r, unbiased, reduce)[0]


@ESTIMATORS.register("reinforce_pp")
def reinforce_pp(r: torch.Tensor, unbiased: bool = True, reduce: Reduce = None) -> torch.Tensor:
    """(B, G) -> (B, G): A = (r - mean_batch) / (std_batch + eps); sample std unless ``unbiased=False``."""
    mean, std = batch_moments(r, unbiased, reduce)
    return (r - mean) / (std + EPS)


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


AGGREGATIONS = ("normalize_then_sum", "sum_then_normalize", "normalize_then_sum_unscaled")
# the field's aggregations (moalign/rl/field.py names the strategies that use them): not train.aggregation values
FIELD_AGGREGATIONS = ("variance_adaptive", "pareto_rank")


def variance_adaptive(rewards: torch.Tensor, weights: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """(B, G, K) -> (B, G): DVAO-style combination, per group b (moalign/rl/field.py ``dvao``).

    A_bg = sum_k c_k (r_bgk - mu_bk) / (sum_j c_j sd_bj + eps) = sum_k lambda_bk (r_bgk - mu_bk) / sd_bk with
    lambda_bk = c_k sd_bk / sum_j c_j sd_bj: each objective's normalised advantage weighted by its share of
    the group's (weighted) spread, so an objective with no spread in a group (no learning signal) gets
    weight 0 there and the others share its weight; |A| <= sqrt(G - 1) (sample std) whatever the weights.
    """
    mu = rewards.mean(1, keepdim=True)
    sd = rewards.std(1, unbiased=unbiased, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(mu)
    w = weights.to(rewards.dtype)
    return ((rewards - mu) * w).sum(-1) / ((sd * w).sum(-1) + EPS)


def pareto_rank_scores(rewards: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, G, K) -> (B, G) scores -rank, rank = the non-dominated sorting front (0 = first) of each rollout
    among its group's G reward vectors (all maximised), over the objectives whose weight is > 0
    (moocore.pareto_rank). ParetoPO's stage-2 signal before the group normalisation."""
    import moocore
    import numpy as np

    keep = (weights > 0).cpu().numpy()
    r = rewards.detach().cpu().double().numpy()[..., keep]
    ranks = np.stack([moocore.pareto_rank(g, maximise=True) for g in r])
    return torch.as_tensor(-ranks, dtype=rewards.dtype, device=rewards.device)


def combine_advantages(rewards: torch.Tensor, weights: torch.Tensor, estimator: str,
                       aggregation: str = "normalize_then_sum", std: str = "sample",
                       reduce: Reduce = None) -> torch.Tensor:
    """(B, G, K) rewards, (K,) weights -> (B, G) advantages (module docstring: the three orders).

    sum_then_normalize: A = est(sum_k w_k r_k); normalize_then_sum_unscaled: s = sum_k w_k est(r_k);
    normalize_then_sum: A = (s - mean_batch s) / (std_batch s + eps). ``std``: sample (Bessel) or
    population, for every std taken; ``reduce`` sums batch statistics over processes.
    """
    est = ESTIMATORS.get(estimator)
    check_group_size(estimator, rewards.shape[1])
    if weights.shape != (rewards.shape[-1],):
        raise ValueError(f"weights of shape {tuple(weights.shape)} for {rewards.shape[-1]} objectives")
    if aggregation not in AGGREGATIONS + FIELD_AGGREGATIONS or std not in ("sample", "population"):
        raise ValueError(f"aggregation {aggregation!r} / std {std!r}: valid are {AGGREGATIONS + FIELD_AGGREGATIONS}"
                         " / sample, population")
    unbiased = std == "sample"
    w = weights.to(rewards.dtype)
    if aggregation == "variance_adaptive":
        return variance_adaptive(rewards, w, unbiased)
    if aggregation == "pareto_rank":
        return est(pareto_rank_scores(rewards, w), unbiased=unbiased, reduce=reduce)
    if aggregation == "sum_then_normalize":
        return est((rewards * w).sum(-1), unbiased=unbiased, reduce=reduce)  # (B, G)
    per = torch.stack([est(rewards[..., k], unbiased=unbiased, reduce=reduce)
                       for k in range(rewards.shape[-1])], -1)  # (B, G, K)
    s = (per * w).sum(-1)  # (B, G)
    if aggregation == "normalize_then_sum_unscaled":
        return s
    mean, sd = batch_moments(s, unbiased, reduce)
    return (s - mean) / (sd + EPS)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float | None,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    n_tokens: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-ratio policy loss (PPO/GRPO) with a k3 KL penalty, token mean over valid tokens.

    logp, old_logp, ref_logp, mask: (N, T) with N = B*G; adv: (N,). Per token, with
    rho = exp(logp - old_logp):
        l_t = -min(rho A, clip(rho, 1 - eps, 1 + eps) A) + kl_coef * k3_t,
        k3_t = exp(ref - logp) - (ref - logp) - 1   (Schulman's unbiased, non-negative KL estimate);
    ``clip_eps=None`` gives l_t = -rho A (plain policy gradient; at rho = 1 its gradient is
    -A d logp). loss = sum_{n,t} l_t mask / sum mask. Stats: ``kl`` (mean k3 over valid tokens,
    reported whenever ``ref_logp`` is given) and ``clip_fraction`` (valid tokens where the
    clipped term is the active one). ``n_tokens``: the denominator (default: the valid tokens of ``mask``);
    a micro-batch passes the whole batch's count, so its loss, gradient and stats sum to the batch's.
    """
    m = mask.to(logp.dtype)  # (N, T)
    n_tok = m.sum().clamp(min=1) if n_tokens is None else torch.as_tensor(n_tokens, dtype=logp.dtype).clamp(min=1)
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
