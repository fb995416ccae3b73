"""Pure helpers of the update, outside the training loop: per-step seeds, the parameters the gradient strategy
reads, and the per-objective gradients (the trainer and the TRL integration both use them).
"""

from __future__ import annotations

import re

import numpy as np
import torch

from moalign.rl.config import TrainConfig
from moalign.rl.estimators import combine_advantages, policy_loss


def step_seed(seed: int, step: int, index: int = 0, rnd: int = 0) -> int:
    """Per-step seeds derived from (seed, step, index); dynamic sampling's extra rounds rnd >= 1 add the round."""
    return int(np.random.SeedSequence([seed, step, index] + ([rnd] if rnd else [])).generate_state(1)[0])


MIDDLE = (10 / 36, 26 / 36)  # the authors' target_layer_ids 10-25 of 36 (Qwen3-8B), as fractions of depth


def middle_layers_pattern(n_layers: int) -> str:
    """Regex of every parameter of the middle decoder layers (``grad_layers: [middle]``)."""
    lo = int(round(MIDDLE[0] * n_layers))
    hi = max(lo + 1, int(round(MIDDLE[1] * n_layers)))
    return r"layers\.(" + "|".join(str(i) for i in range(lo, hi)) + r")\."


def select_params(model, patterns: list[str]) -> list[tuple[str, torch.nn.Parameter]]:
    """Trainable parameters whose name matches any regex in ``train.grad_layers`` ('middle': see above)."""
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if "middle" in patterns and not n_layers:
        raise ValueError("train.grad_layers = ['middle'] needs a model config with num_hidden_layers. "
                         "Fix: list parameter-name regexes instead")
    patterns = [middle_layers_pattern(n_layers) if p == "middle" else p for p in patterns]
    regs = [re.compile(p) for p in patterns]
    chosen = [(n, p) for n, p in model.named_parameters() if p.requires_grad and any(r.search(n) for r in regs)]
    if not chosen:
        names = [n for n, _ in model.named_parameters()][:8]
        raise ValueError(
            f"train.grad_layers = {patterns!r} matches no parameter. Fix: use a regex that matches "
            f"parameter names, e.g. one of {names}"
        )
    return chosen


def objective_grads(cfg: TrainConfig, r3: torch.Tensor, logp: torch.Tensor, old: torch.Tensor, cmask: torch.Tensor,
                    params: list[torch.nn.Parameter], chosen: set[int], ref: torch.Tensor | None = None,
                    reduce=None) -> torch.Tensor:
    """(K, D) per-objective policy gradients g_k on the ``grad_layers`` parameters.

    g_k is the gradient of objective k's loss: the unclipped policy-gradient term with objective k's
    own advantages est(r_k) (whatever ``train.aggregation``), plus ``kl_coef`` * KL when
    ``grad_kl`` (the authors' per-reward loss includes their KL loss); see :func:`grads_from_advantages`.
    """
    K = r3.shape[-1]
    adv = torch.stack([combine_advantages(r3, torch.eye(K, device=r3.device)[k], cfg.estimator,
                                          "normalize_then_sum_unscaled", cfg.std, reduce).reshape(-1)
                       for k in range(K)], -1)  # (N, K): est(r_k)
    kl = cfg.kl_coef if cfg.grad_kl and ref is not None else 0.0
    return grads_from_advantages(adv, logp, old, cmask, params, chosen, ref if kl else None, kl)


def clip_and_select(loss: torch.Tensor, params: list[torch.nn.Parameter], chosen: set[int],
                    retain_graph: bool) -> torch.Tensor:
    """(D,) gradient of ``loss`` clipped to norm 1 over *all* ``params``, then restricted to those in ``chosen``
    (the authors' order), flattened in ``params`` order."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    grads = [gr if gr is not None else torch.zeros_like(p) for gr, p in zip(grads, params)]
    norm = torch.sqrt(sum(gr.float().pow(2).sum() for gr in grads)).item()  # over all parameters
    flat = torch.cat([gr.reshape(-1).float() for gr, p in zip(grads, params) if id(p) in chosen])
    return flat * min(1.0, 1.0 / (norm + 1e-12))  # clip(1.0) on the full norm, then select


def grads_from_advantages(adv: torch.Tensor, logp: torch.Tensor, old: torch.Tensor, cmask: torch.Tensor,
                          params: list[torch.nn.Parameter], chosen: set[int], ref: torch.Tensor | None = None,
                          kl_coef: float = 0.0, keep_graph: bool = True) -> torch.Tensor:
    """(N, K) advantages -> (K, D): g_k = grad of policy_loss(logp, old, adv[:, k], no clip, + kl_coef * KL to
    ``ref``), clipped to norm 1 over *all* ``params`` and then restricted to those in ``chosen`` (the
    authors' order), flattened in ``params`` order. One backward pass per objective through the graph of
    ``logp`` (kept afterwards when ``keep_graph``).
    """
    K = adv.shape[1]
    return torch.stack([clip_and_select(policy_loss(logp, old, adv[:, k], cmask, None, ref, kl_coef)[0], params,
                                        chosen, keep_graph or k < K - 1) for k in range(K)])
