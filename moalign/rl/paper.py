"""The authors' configuration as written: what the ``<weighting>-paper`` strategies change.

``hypervolume-paper`` and ``gradient-paper`` train with the rules of the authors' code
(``yining610/dynamic-reward-weighting``, a modified verl) instead of this project's calibrated
defaults. Each entry of :data:`PAPER` names where the authors' code does it:

- ``aggregation: sum_then_normalize``: the weighted token-level scores are summed
  (``torch.einsum("bse,s->be", stacked_reward_tensor, self.weights)``) and GRPO's advantage is
  computed on that sum (``compute_advantage``) - ``ray_trainer_optimization.py``.
- ``val_samples: 0, eval_every: 1``: ``_validate()`` after every update with the rollout's
  ``val_kwargs`` (``do_sample`` false: greedy) - ``ray_trainer_vanilla.py``.
- ``length_unit: tokens``: the validation point's length coordinate is the mean response length
  in raw tokens, minimised (``reward_names`` maps ``concise`` to ``response_length``).
- ``clip_eps: null``: ``clip_ratio_low``/``high``/``c`` = 100 in the run scripts, i.e. no clipping
  (so "total gradient = linear combination" holds for the gradient method).
- ``grad_kl: true``: each per-reward gradient includes the KL loss (``compute_gradients`` adds
  ``kl_loss * kl_loss_coef``); ``grad_layers: [middle]``: ``target_layer_ids`` 10..25 of 36.
- ``weighting.reference: first, ref_margin: 0``: the first validation point is the reference and
  the first buffer entry (``hypervolumn_contribution.py``: ``reference_point = buffer[0]``).
- ``weighting.hv_apply: reward, hv_relative: false, hv_scale: 1``: meta = 0.5 + 1.5 tanh(dHV) with the
  absolute dHV multiplies the next step's rewards (``reward_tensor * meta_reward``).
- ``weighting.influence: raw, grad_lr: null, mu: 1e-5``: w <- softmax(log w + lr_t I / mu) with the
  policy's lr_t (``actor.optim.lr``) and their ``regularization_factor`` mu = 1e-5 (Qwen3 scripts;
  the DeepSeek scripts use 1e-4), I_i = <g_i, sum_k g_k>. Their step is 1e-6 / 1e-5 = 0.1; the same
  rule at this project's lr 1e-4 is 10 (earlier versions fixed the step at 0.1, i.e. 100x smaller).
- ``weighting.grad_scale: 4``: ``compute_gradients`` in their ``dp_actor.py`` sums the per-reward
  gradients over micro-batches without dividing by their number (the policy update divides), so
  their g_i is (micro-batches) x the batch-mean gradient: 32 prompts x 8 rollouts per mini-batch
  over 8 GPUs at micro-batch 8 = 4 micro-batches per GPU (Qwen3 optimization scripts); influences
  are then 16x ours before the step.
- ``weighting.min_weight: 0``: no floor.

What stays the project's (the world, not the method): the model, data, batch (8 prompts x 8
rollouts, the authors 64 x 8), lr and KL coefficient (ours are tuned to a 1M-parameter model; the
authors' 1e-6 and 0.001 are for 8B models and would learn nothing here in 150 steps), max tokens,
one optimizer step per batch (the authors' ppo_mini_batch_size 32 of 64 prompts takes two).

``train.paper`` in params.yaml lists these overrides; an empty ``train.paper`` means :data:`PAPER`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from moalign.schema import deep_merge

C = TypeVar("C", bound=BaseModel)  # the TrainConfig (not imported: moalign/rl/config.py imports this module)

PAPER: dict[str, Any] = {
    "aggregation": "sum_then_normalize",
    "val_samples": 0,
    "eval_every": 1,
    "length_unit": "tokens",
    "clip_eps": None,
    "grad_kl": True,
    "grad_layers": ["middle"],
    "weighting": {"reference": "first", "ref_margin": 0.0, "hv_apply": "reward", "hv_relative": False,
                  "hv_scale": 1.0, "min_weight": 0.0, "influence": "raw", "grad_lr": None, "mu": 1e-5,
                  "grad_scale": 4.0},
}


def apply_paper(cfg: C) -> C:
    """``cfg`` with ``cfg.paper`` (or :data:`PAPER` when empty) applied; raises a ValueError naming ``train.paper``."""
    over = cfg.paper or PAPER
    merged = deep_merge(cfg.model_dump(exclude={"paper"}), over)
    try:
        return type(cfg)(**merged)
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise ValueError(f"train.paper overrides give an invalid train config ({errs}). "
                         "Fix: use keys and values of the train section (moalign/rl/paper.py)") from None
