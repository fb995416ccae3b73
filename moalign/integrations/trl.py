"""Dynamic reward weighting for TRL's ``GRPOTrainer`` (``pip install moalign[trl]``; tested with TRL 1.16).

TRL keeps the reward weights in the tensor ``trainer.reward_weights`` and reads it whenever it
turns a batch's rewards into advantages (both ``multi_objective_aggregation`` orders), so moving
the weights needs no patch of TRL. The rules are moalign's own strategies
(:func:`moalign.rl.weighting.make_weighting`: buffer, meta-reward, Shapley split, mirror descent);
this module only feeds them and writes their weights back.

- :class:`HypervolumeWeightingCallback` (a ``TrainerCallback``): a validation objective vector
  (moalign/integrations/trl_validation.py: the user's reward functions on held-out prompts, expected
  rewards of ``val_samples`` sampled decodes, or greedy) at the start and every ``eval_every``
  optimizer steps; ``observe_validation`` updates the buffer and the weights, which the next
  generated batch uses.
- :class:`GradientWeightingGRPOTrainer` (a ``GRPOTrainer`` subclass): on every ``grad_every``-th
  generated batch, the per-reward gradients g_k (moalign/integrations/trl_core.py), averaged over
  processes, go to ``update_from_grads``; the batch's advantages are then recomputed with the new
  weights, so the update that follows uses them (our trainer's order: weights before the step).

Both write ``trainer.reward_weights`` in place (same dtype and device) as ``scale * w``: w on the
simplex (logged as ``weights/<reward name>``), ``scale`` the sum of the initial
``GRPOConfig.reward_weights`` (K when unset), so the size of TRL's sum is kept (it matters with
``scale_rewards="none"``). Logged through TRL's metric buffer (every ``report_to`` backend sees
them, averaged over ``logging_steps``): ``weights/<name>`` (the weights the step used),
``eval/<name>`` and ``pareto/hypervolume`` (plus ``pareto/delta_hv``, ``pareto/meta``,
``pareto/credit/<name>``) at validation steps, ``influence/<name>`` and ``influence_share/<name>``
at gradient updates.

State: weights, validation buffer, the trajectory and the state of stateful reward functions
(``state_dict``/``load_state_dict``, e.g. conciseness' running mean) are kept in
``trainer.state.stateful_callbacks["moalign_reward_weighting"]``, i.e. in every checkpoint's
``trainer_state.json``, and restored by ``trainer.train(resume_from_checkpoint=...)`` whatever
folder the checkpoint was resumed from.

Per-reward gradients (the subclass) go through TRL's own loss (trl_core.py ``trl_reward_grads``: its
``loss_type`` aggregation, ``beta`` x KL, clipping inactive at the generation batch's ratio 1); settings
it cannot reproduce are refused at construction. A reward whose initial ``reward_weights`` entry is 0
(TRL's "log only") keeps weight 0. When a new weight takes effect: TRL reads ``reward_weights`` when it
scores a generation batch, i.e. every ``steps_per_generation x num_iterations`` optimizer steps; the
callback's weights (set at a validation step) reach the next generation batch, the subclass's (set on
the batch itself) act on that batch.

Departures from moalign's trainer, and why: hv_apply ``advantage`` is refused (TRL normalises
the advantages after the weights act; only the subclass sees them), ``reward`` is applied as
``reward_weights * meta`` (the same product); the per-reward advantages follow TRL's
``scale_rewards`` (trl_core.py). Several processes (``accelerate launch``): the validation point
is computed on every rank and rank 0's is used, the (K, D) gradient matrix is averaged before the
update, and stateful rewards are synchronised after each step (moalign/rl/distributed.py), so all
ranks hold the same weights. Not supported: DeepSpeed / FSDP with the gradient subclass.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from pydantic import Field
from transformers import TrainerCallback
from trl import GRPOTrainer

from moalign.rl import distributed as dist
from moalign.rl.rewards import make_reward
from moalign.rl.grads import select_params, step_seed
from moalign.rl.weighting import WeightingConfig, make_weighting
from moalign.integrations.trl_core import check_trl_loss, reward_advantages, trl_advantages, trl_reward_grads
from moalign.integrations.trl_validation import validation_point
from moalign.schema import StrictModel

STATE_KEY = "moalign_reward_weighting"


class TRLWeightingConfig(StrictModel):
    """Knobs of the TRL adapter; ``weighting`` is moalign's ``train.weighting`` section."""

    weighting: WeightingConfig = Field(
        default_factory=WeightingConfig, description="The strategies' knobs "
        "(moalign/rl/weighting.py). weights null = the trainer's reward_weights, normalised to sum 1.")
    eval_every: int = Field(10, ge=1, description="Optimizer steps between validation points (and the last step).")
    val_samples: int = Field(2, ge=0, description="Sampled decodes per validation prompt (0 = one greedy decode).")
    val_seed: int = Field(0, description="Seed of the validation decodes (per step: derived from (val_seed, step)).")
    val_batch_size: int = Field(64, ge=1, description="Sequences per validation generate() call.")
    grad_layers: list[str] = Field(["middle"], description="Gradient strategy: parameter-name regexes of the "
                                   "influence (middle = the middle decoder layers, as moalign's train.grad_layers).")
    grad_every: int = Field(1, ge=1, description="Gradient strategy: per-reward gradients every N generated batches.")


def _config(cfg: TRLWeightingConfig | dict | None) -> TRLWeightingConfig:
    return cfg if isinstance(cfg, TRLWeightingConfig) else TRLWeightingConfig(**(cfg or {}))


class RewardWeightingCallback(TrainerCallback):
    """Owns a moalign strategy for ``trainer``'s reward functions; writes, logs, saves and restores it.

    ``validation``: None, a dataset with a ``prompt`` column (built-in validation), or a callable
    ``(model, step) -> (K,) point`` (every coordinate maximised).
    """

    def __init__(self, trainer, strategy: str = "hypervolume", config: TRLWeightingConfig | dict | None = None,
                 validation: Any = None) -> None:
        for attr in ("reward_weights", "reward_func_names", "_metrics"):
            if not hasattr(trainer, attr):
                raise TypeError(f"{type(trainer).__name__} has no {attr!r}: the reward weighting needs TRL's "
                                "GRPOTrainer (trl>=1.16). Fix: pass a trl.GRPOTrainer")
        self.trainer, self.cfg, self.validation = trainer, _config(config), validation
        self.names = list(trainer.reward_func_names)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"reward function names {self.names} repeat; weights/<name> is logged per name. "
                             "Fix: give each reward function its own __name__")
        init = trainer.reward_weights.detach().double().cpu().numpy()
        if (init < 0).any() or init.sum() <= 0:
            raise ValueError(f"GRPOConfig.reward_weights = {init.tolist()}: dynamic weighting needs non-negative "
                             "weights with a positive sum. Fix: use e.g. [1.0, 1.0, 1.0]")
        self.scale = float(init.sum())
        self.active = init > 0  # a reward weighted 0 (TRL's "log only") stays at 0 whatever the strategy does
        wcfg = self.cfg.weighting
        if wcfg.hv_apply == "advantage":
            raise ValueError("weighting.hv_apply = 'advantage' is not available with TRL (its advantages are "
                             "normalised after the weights act). Fix: use hv_apply 'objective' (default)")
        if wcfg.weights is None:
            wcfg = wcfg.model_copy(update={"weights": (init / self.scale).tolist()})
        self.weighting = make_weighting(strategy, self.names, wcfg)
        if self.weighting.needs_validation and validation is None:
            raise ValueError(f"strategy {strategy!r} needs validation points. Fix: pass validation=<dataset with a "
                             "'prompt' column> or validation=<callable (model, step) -> point>")
        self.strategy = strategy
        self.stateful = {n: f for n, f in zip(self.names, trainer.reward_funcs)
                         if hasattr(f, "state_dict") and hasattr(f, "load_state_dict")
                         and not isinstance(f, torch.nn.Module)}
        self.history: dict[str, list] = {"weights": [], "validation": []}
        self._before: dict = {}
        self.write_weights()

    # -- weights ---------------------------------------------------------------------------------
    def weights(self) -> np.ndarray:
        """(K,) current weights on the simplex; rewards that started at weight 0 stay at 0."""
        w = self.weighting.weights() * self.active
        return w / w.sum() if w.sum() > 0 else self.active / self.active.sum()

    def write_weights(self) -> None:
        """trainer.reward_weights <- scale * w (* reward_scale), in place (same dtype and device)."""
        rw = self.trainer.reward_weights
        new = self.weights() * self.scale * self.weighting.reward_scale()
        rw.copy_(torch.as_tensor(new, dtype=rw.dtype, device=rw.device))

    def log(self, metrics: dict[str, float]) -> None:
        """Append metrics to TRL's buffer (averaged and logged at the next logging step)."""
        for k, v in metrics.items():
            self.trainer._metrics["train"][k].append(float(v))

    def update_from_grads(self, grads: torch.Tensor, lr: float) -> dict[str, float]:
        """(K, D) per-reward gradients (identical on every rank) -> new weights, written and logged."""
        metrics = self.weighting.update_from_grads(grads.detach().cpu(), lr)
        self.write_weights()
        self.log(metrics)
        return metrics

    def observe(self, step: int) -> dict[str, float]:
        """Validation point at ``step`` (rank 0's on every rank) -> strategy; returns the logged metrics."""
        tr = self.trainer
        seed = step_seed(self.cfg.val_seed, step, 2000)
        if callable(self.validation):
            point = np.asarray(self.validation(tr.accelerator.unwrap_model(tr.model), step), dtype=float)
        else:
            point = validation_point(tr, self.validation, self.cfg.val_samples, seed, self.cfg.val_batch_size)["point"]
        point = dist.broadcast_point(point, tr.accelerator)
        info = self.weighting.observe_validation(point, step)
        self.write_weights()
        self.history["validation"].append({"step": step, "point": point.tolist(), **info})
        return {**{f"eval/{n}": float(v) for n, v in zip(self.names, point)},
                **{f"pareto/{k}": float(v) for k, v in info.items()}}

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "objectives": self.names, "scale": self.scale,
                "weighting": self.weighting.state_dict(), "rewards": dist.reward_states(self.stateful),
                "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["objectives"] != self.names or state["strategy"] != self.strategy:
            raise ValueError(f"checkpoint holds {state['strategy']} weights for {state['objectives']}, this run "
                             f"uses {self.strategy} for {self.names}. Fix: resume with the same reward functions")
        self.scale = float(state["scale"])
        self.weighting.load_state_dict(state["weighting"])
        for n, s in state["rewards"].items():
            self.stateful[n].load_state_dict(s)
        self.history = state["history"]
        self.write_weights()

    # -- TrainerCallback events --------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        saved = (state.stateful_callbacks or {}).get(STATE_KEY)
        if state.global_step > 0:
            if saved is None:
                raise ValueError(f"resumed at step {state.global_step} from a checkpoint without {STATE_KEY} in "
                                 "trainer_state.json. Fix: resume from a checkpoint written with this weighting")
            self.load_state_dict(saved)
        elif self.validation is not None and self.weighting.ref is None:
            self.observe(0)  # p0: the reference and first buffer entry
        state.stateful_callbacks[STATE_KEY] = self.state_dict()

    def on_step_begin(self, args, state, control, **kwargs):
        self._before = dist.reward_states(self.stateful)

    def on_step_end(self, args, state, control, **kwargs):
        dist.sync_reward_state(self.stateful, self._before, self.trainer.accelerator)
        step, used = state.global_step, self.weights()
        self.history["weights"].append(used.tolist())
        metrics = {f"weights/{n}": float(w) for n, w in zip(self.names, used)}
        if self.validation is not None and (step % self.cfg.eval_every == 0 or step == state.max_steps):
            metrics.update(self.observe(step))
        self.log(metrics)
        state.stateful_callbacks[STATE_KEY] = self.state_dict()  # saved with the checkpoint that may follow


class HypervolumeWeightingCallback(RewardWeightingCallback):
    """Hypervolume-guided weighting for a ``GRPOTrainer``: ``trainer.add_callback(HypervolumeWeightingCallback(
    trainer, validation=val_dataset, config={"eval_every": 10}))``."""

    def __init__(self, trainer, validation: Any, config: TRLWeightingConfig | dict | None = None) -> None:
        super().__init__(trainer, "hypervolume", config, validation)


class GradientWeightingGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with gradient-based reward weighting (module docstring). Extra keywords:
    ``weighting`` (:class:`TRLWeightingConfig` or dict) and ``validation`` (optional: logs
    ``pareto/hypervolume`` as the other strategies do)."""

    def __init__(self, *args, weighting: TRLWeightingConfig | dict | None = None, validation: Any = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_trl_loss(self.args)
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise NotImplementedError("GradientWeightingGRPOTrainer takes per-reward gradients of the unsharded "
                                      "model. Fix: train with DDP (accelerate multi-GPU) or one process")
        self.weighting_callback = RewardWeightingCallback(self, "gradient", weighting, validation)
        self.add_callback(self.weighting_callback)
        cfg = self.weighting_callback.cfg
        self._grad_params = [p for p in self.model.parameters() if p.requires_grad]
        self._grad_chosen = {id(p) for _, p in select_params(self.model, cfg.grad_layers)}
        self._rewards_per_func: torch.Tensor | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func  # (N, K), gathered over processes

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        cfg = self.weighting_callback.cfg
        if not self.model.training or self.state.global_step % cfg.grad_every:
            return out
        rewards, G = self._rewards_per_func, self.num_generations
        n = out["advantages"].shape[0]
        local = slice(self.accelerator.process_index * n, (self.accelerator.process_index + 1) * n)
        args = (G, self.multi_objective_aggregation, self.scale_rewards)
        if not torch.allclose(trl_advantages(rewards, self.reward_weights, *args)[local], out["advantages"],
                              atol=1e-5, rtol=1e-4):
            raise RuntimeError("TRL's advantages differ from moalign.integrations.trl_core.trl_advantages (a TRL "
                               "version with another formula?). Fix: install trl 1.16, the version this adapter follows")
        # each reward's own advantages as TRL normalises it: per scale_rewards when summed first, by the
        # group std when normalised first (TRL's per-reward step of normalize_then_sum ignores scale_rewards)
        scale = self.scale_rewards if self.multi_objective_aggregation == "sum_then_normalize" else "group"
        grads = self.objective_grads(out, reward_advantages(rewards, G, scale)[local])  # (K, D)
        grads = self.accelerator.reduce(grads, "mean")  # every rank updates with the same matrix
        lr = self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else self.args.learning_rate
        self.weighting_callback.update_from_grads(grads, float(lr))
        out["advantages"] = trl_advantages(rewards, self.reward_weights, *args)[local]
        return out

    def objective_grads(self, batch: dict[str, torch.Tensor], adv: torch.Tensor) -> torch.Tensor:
        """(K, D) per-reward gradients on this rank's generation batch, adv (n, K) its per-reward advantages."""
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        mask = batch["completion_mask"] * batch["tool_mask"] if "tool_mask" in batch else batch["completion_mask"]
        items = batch.get("num_items_in_batch")  # TRL's dapo normaliser: the tokens of this rank's share
        items = items / self.accelerator.num_processes if items is not None else None
        with torch.enable_grad():
            logp, _, _ = self._get_per_token_logps_and_entropies(
                self.model, ids, att, batch["completion_ids"].shape[1], batch_size=self.args.per_device_train_batch_size)
            return trl_reward_grads(adv, logp, mask, self._grad_params, self._grad_chosen, self.loss_type, self.beta,
                                    batch.get("ref_per_token_logps"), bool(getattr(self.args, "use_bias_correction_kl",
                                                                                   False)),
                                    self.max_completion_length, items)


class TRLReward:
    """A moalign reward (moalign/rl/rewards.py) in TRL's calling convention: ``completion_lengths`` from
    ``completion_ids``, chat completions reduced to their text; ``state_dict`` passes through."""

    def __init__(self, name: str, **options: Any) -> None:
        self.fn, self.__name__ = make_reward(name, **options), name

    def __call__(self, completions: list, completion_ids: list[list[int]] | None = None, **kw: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        if completion_ids is not None:
            kw.setdefault("completion_lengths", [len(c) for c in completion_ids])
        return self.fn(texts, **kw)

    def __getattr__(self, attr: str) -> Callable:
        if attr in ("state_dict", "load_state_dict") and hasattr(self.__dict__.get("fn"), attr):
            return getattr(self.fn, attr)
        raise AttributeError(attr)


def moalign_reward_funcs(names: list[str], options: dict[str, dict] | None = None) -> list[TRLReward]:
    """moalign's rewards ``names`` (e.g. accuracy, conciseness, clarity) as TRL reward functions."""
    return [TRLReward(n, **(options or {}).get(n, {})) for n in names]
