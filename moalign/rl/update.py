"""The policy update, one log-prob bucket at a time (``train.micro_batch_update``, on by default).

The whole batch's update holds one autograd graph for every rollout until the backward: on SmolLM2-135M with
32 rollouts of ~230 tokens that is ~9 GB of saved activations (measured with the trainer's phases; the policy
itself is 0.5 GB). Here each bucket of :func:`moalign.generation.bucket_slices` (rows of similar length, cut to
their real columns) runs its forward and at once its backward, so only one bucket's activations live at a time:
peak memory falls by about the number of buckets, with no extra compute (TRL's ``GRPOTrainer`` gets its lower
memory from gradient checkpointing, which recomputes every forward in the backward).

The gradient is the whole batch's: each bucket's loss is divided by the *batch's* valid-token count
(``policy_loss(n_tokens=...)``), so the bucket losses, their gradients and the stats (KL, clip fraction) sum to
the batch's; with one update per rollout batch the "old" log-probs are each bucket's values detached, as in the
whole-batch path. Under ``accelerate`` (DDP) every bucket but the last backwards inside ``no_sync``, so the
gradients are all-reduced once per step. Steps that compute per-objective gradients (the ``gradient``
strategy) keep the whole batch's graph: their K backward passes and the update's share one forward.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch

from moalign.generation import bucket_logprobs, bucket_slices
from moalign.rl.estimators import policy_loss


def bucketed_update(model, ref_model, ids: torch.Tensor, mask: torch.Tensor, cmask: torch.Tensor, first: int,
                    adv: torch.Tensor, *, buckets: int, temperature: float, clip_eps: float | None,
                    kl_coef: float, clock, backward: Callable[[torch.Tensor], None],
                    no_sync: Callable[[], object] | None = None) -> tuple[float, dict[str, float]]:
    """Forward and backward bucket by bucket, accumulating ``.grad``; returns (batch loss, batch stats).

    ``cmask`` (N, L-1) marks the completion tokens of columns 1..L-1; ``adv`` (N,); ``ref_model`` is scored
    under ``no_grad`` when not None (``kl_coef`` > 0 or the KL is to be reported); ``clock(phase)`` times the
    phases; ``backward(loss)`` runs the backward (``accelerator.backward`` or ``loss.backward``); ``no_sync()``
    is the context in which every bucket but the last backwards (DDP: one all-reduce per step).
    """
    n_tok = cmask.sum().clamp(min=1)
    slices = bucket_slices(mask, buckets, first)
    total, stats = 0.0, {"kl": 0.0, "clip_fraction": 0.0}
    for i, b in enumerate(slices):
        rows = b[0]
        with clock("forward"):
            logp = bucket_logprobs(model, ids, mask, b, temperature)[:, 1:]
            ref = None
            if ref_model is not None:
                with torch.no_grad():
                    ref = bucket_logprobs(ref_model, ids, mask, b, temperature)[:, 1:]
        with clock("backward"):
            loss, st = policy_loss(logp, logp.detach(), adv[rows], cmask[rows], clip_eps, ref, kl_coef, n_tok)
            last = i == len(slices) - 1
            with (nullcontext() if last or no_sync is None else no_sync()):
                backward(loss)
        total += float(loss.detach())
        for k in stats:
            stats[k] += float(st.get(k, 0.0))
    return total, stats
