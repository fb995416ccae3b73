"""Typed config of the train stage (``train:`` in params.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from moalign.schema import StrictModel


def distinct_objectives(v: list[str], fix: str = "") -> list[str]:
    """``v`` if it is a non-empty list of objective names without repeats, else a ValueError (+ ``fix``)."""
    if not v or len(set(v)) != len(v):
        raise ValueError("objectives must be a non-empty list without repeats" + fix)
    return v


class WeightingConfig(StrictModel):
    """train.weighting: initial weights and the strategies' knobs."""

    preset: Literal["accuracy", "balanced", "efficiency"] | None = Field(
        "balanced", description="Paper presets for objectives (accuracy, conciseness, clarity); other objective "
        "lists accept only balanced (uniform) or explicit weights. Ignored when weights is set."
    )
    weights: list[float] | None = Field(
        None, description="Explicit initial weights, one per objective in train.objectives order, on the simplex."
    )
    hv_apply: Literal["objective", "advantage", "reward"] = Field(
        "objective", description="Where the hypervolume meta-reward acts: per-objective weights (objective), a "
        "scale of the combined advantages (advantage), or the authors' rewards x meta (reward; cancelled by "
        "group normalisation, kept as an ablation)."
    )
    hv_scale: float = Field(
        5.0, gt=0, description="Scale inside tanh: meta = 0.5 + 1.5 tanh(hv_scale * gain); 1 with hv_relative "
        "false = the paper."
    )
    hv_relative: bool = Field(True, description="gain = dHV / HV(buffer) (unit-free, default) instead of dHV.")
    min_weight: float = Field(0.05, ge=0, lt=0.5, description="Floor of every weight in the hypervolume strategy.")
    reference: Literal["origin", "first"] = Field(
        "origin", description="Hypervolume reference: origin (0 in every objective) or first (the first "
        "validation point minus ref_margin, the authors' choice with ref_margin 0)."
    )
    ref_margin: float = Field(0.0, ge=0, description="With reference 'first': subtract this from the first point.")
    degenerate_margin: float = Field(0.05, gt=0, description="reference origin: a coordinate where the first "
                                     "validation point does not exceed the reference is lowered to (value - this); "
                                     "module docstring (5).")
    hv_credit: Literal["proportional", "shapley"] = Field(
        "proportional", description="hv_apply objective: split of dHV over objectives - proportional to each "
        "objective's own improvement (default) or Shapley values of the coordinates (favours the currently "
        "smallest objective under the origin reference; module docstring (4))."
    )
    influence: Literal["share", "raw"] = Field(
        "share", description="Gradient strategy: mirror descent on influence shares I_i/||G||^2 with step "
        "grad_step (default), or on raw influences with step lr/mu (the authors)."
    )
    grad_step: float = Field(0.2, gt=0, description="Mirror-descent step on influence shares (influence: share).")
    mu: float = Field(1e-3, gt=0, description="influence raw: mirror-descent regularisation (authors' "
                      "regularization_factor); step = lr / mu.")
    grad_lr: float | None = Field(None, gt=0, description="influence raw: mirror-descent lr; null = the policy lr.")
    grad_scale: float = Field(1.0, gt=0, description="influence raw: per-objective gradients are multiplied by "
                              "this before the influences (the authors sum their micro-batches' gradients without "
                              "dividing: 4 micro-batches in their Qwen3 scripts, moalign/rl/paper.py).")
    pareto_switch: float = Field(0.5, ge=0, le=1, description="paretopo: fraction of train.max_steps after which "
                                 "Pareto-ranking advantages replace the hypervolume-guided weights (moalign/rl/field.py).")

    @field_validator("weights")
    @classmethod
    def _simplex(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("weights must not be empty. Fix: one weight per objective, or null to use the preset")
        if any(w < 0 for w in v):
            raise ValueError("weights must be non-negative. Fix: e.g. [0.5, 0.25, 0.25]")
        if abs(sum(v) - 1) > 1e-6:
            raise ValueError(f"weights must sum to 1 (they sum to {sum(v):.6g}). Fix: divide each by their sum")
        return v


class DynamicSamplingConfig(StrictModel):
    """train.dynamic_sampling: DAPO's dynamic sampling (verl's ``filter_groups``), moalign/rl/filtering.py."""

    enabled: bool = Field(False, description="Keep only the groups whose rewards vary in one of `objectives` "
                          "(non-zero advantages there) and refill the batch with extra generation rounds. Off by "
                          "default: every group is trained on, as before.")
    objectives: list[str] = Field(
        default_factory=lambda: ["accuracy"],
        description="Objectives (names in train.objectives) a group must vary in to be kept; a group is kept when "
        "it varies in any of them. Default accuracy, DAPO's and verl's metric (filter_groups.metric: acc).",
    )
    max_rounds: int = Field(3, ge=0, description="Extra generation rounds per step (prompts_per_step new prompts "
                            "each) while fewer than prompts_per_step groups are kept (verl's max_num_gen_batches, "
                            "counting the extra rounds only). If the batch is still short after them, it is "
                            "filled with the first uninformative groups; 0 = no extra round (only the metrics).")

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        return distinct_objectives(v, ". Fix: e.g. [accuracy]")


class PromptSelectionConfig(StrictModel):
    """train.prompt_selection: train on prompts the starting policy solves sometimes (moalign/rl/selection.py)."""

    enabled: bool = Field(False, description="Before the first update, measure each prompt of a pool's pass rate "
                          "under the starting (SFT) policy and train only on those with low < rate < high. Off by "
                          "default: every training row can be drawn.")
    pool: int = Field(256, ge=1, description="Training prompts whose pass rate is measured (drawn with the run's "
                      "seed; all rows when fewer).")
    samples: int = Field(4, ge=2, description="Sampled decodes per pooled prompt (train.temperature / top_p).")
    objective: str = Field("accuracy", description="The reward whose mean over the samples is the pass rate (a "
                           "registered objective; train.reward_options apply).")
    low: float = Field(0.0, ge=0, lt=1, description="Keep prompts whose rate is above this (0: solved at least once).")
    high: float = Field(1.0, gt=0, le=1, description="... and below this (1: failed at least once).")
    min_keep: int = Field(8, ge=1, description="If fewer prompts qualify, keep the min_keep closest to the band "
                          "instead (highest rate below `high`), with a warning: a policy that solves nothing still "
                          "trains on its best prompts.")

    @model_validator(mode="after")
    def _band(self) -> "PromptSelectionConfig":
        if self.low >= self.high:
            raise ValueError(f"low {self.low} >= high {self.high}: no rate fits. Fix: e.g. low: 0.0, high: 1.0")
        return self


class TrainConfig(StrictModel):
    """train: multi-objective online RL from the SFT policy with a reward-weighting strategy."""

    strategies: list[str] = Field(
        default_factory=lambda: ["fixed-accuracy", "fixed-balanced", "fixed-efficiency", "hypervolume", "gradient"],
        description="Strategies dvc.yaml trains side by side (train@<name>): <weighting>[-<preset>], e.g. "
        "fixed-accuracy (a preset suffix overrides weighting.preset).",
    )
    estimator: str = Field("grpo", description="Advantage estimator: grpo, rloo, reinforce, reinforce_pp.")
    aggregation: Literal["normalize_then_sum", "sum_then_normalize", "normalize_then_sum_unscaled"] = Field(
        "normalize_then_sum", description="Order of scalarising and normalising the objectives' rewards, with "
        "TRL's names and formulas (moalign/rl/estimators.py): normalize_then_sum (per-objective group "
        "normalisation, weighted sum, batch re-normalisation), sum_then_normalize (the authors'), "
        "normalize_then_sum_unscaled (no batch step; this project's earlier default)."
    )
    std: Literal["sample", "population"] = Field(
        "sample", description="Std of grpo/reinforce_pp normalisation: sample (Bessel, as TRL and verl) or population."
    )
    objectives: list[str] = Field(
        default_factory=lambda: ["accuracy", "conciseness", "clarity"],
        description="Reward objectives (REWARDS names); the weighting acts on them in this order.",
    )
    reward_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Extra keyword options per objective, e.g. {rubric: {judge: rules}}."
    )
    weighting: WeightingConfig = Field(
        default_factory=WeightingConfig, description="Weighting-strategy settings (preset, weights, mu, hv_apply, ...)."
    )
    max_steps: int = Field(40, ge=1, description="RL updates.")
    prompts_per_step: int = Field(8, ge=1, description="Prompts per update (B).")
    group_size: int = Field(8, ge=1, description="Rollouts per prompt (G); grpo/rloo need >= 2.")
    max_new_tokens: int = Field(128, ge=1, description="Rollout length budget.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling of rollouts.")
    lr: float = Field(2e-4, gt=0, description="Policy AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay of the policy update. 0 (default): "
                                "the update is the policy gradient (+ KL) alone, so a zero gradient leaves the policy "
                                "unchanged; torch's AdamW default 0.01 would shrink every weight each step.")
    kl_coef: float = Field(0.0, ge=0, description="KL(policy || SFT reference) coefficient; 0 skips the reference model.")
    clip_eps: float | None = Field(0.2, description="PPO ratio clip; null disables clipping.")
    grad_clip: float = Field(1.0, gt=0, description="Max gradient norm of the policy update.")
    grad_layers: list[str] = Field(
        default_factory=lambda: ["middle"],
        description="Parameters whose gradients form g_i for the gradient strategy: 'middle' (every parameter "
        "of the middle decoder layers, the authors' 10-25 of 36 scaled to the model's depth) or regexes of names.",
    )
    grad_kl: bool = Field(True, description="gradient strategy: include the KL term (kl_coef * k3) in every "
                          "per-objective gradient g_i, as the authors' compute_gradients does (their per-reward loss "
                          "adds kl_loss); false = policy-gradient term only.")
    grad_every: int = Field(1, ge=1, description="gradient strategy: take the K per-objective gradients (K extra "
                            "backward passes) and update the weights every this many steps; 1 = every step, as the "
                            "authors. Between updates the weights stay as they are.")
    eval_every: int = Field(5, ge=1, description="Steps between validation points (hypervolume, curves).")
    val_rows: int = Field(96, ge=1, description="Validation prompts per validation point.")
    val_samples: int = Field(
        2, ge=0, description="Sampled decodes per validation prompt at the rollout temperature (expected rewards); "
        "0 = one greedy decode (the paper's validation). moalign/evaluate.py says why sampled is the default."
    )
    length_unit: Literal["fraction", "tokens"] = Field(
        "fraction", description="Length coordinate of the validation points: fraction = 1 - length/max_new_tokens "
        "in [0, 1] (maximised, like every objective); tokens = minus the mean length in tokens (the authors' raw "
        "length, minimised; stored negated so every coordinate is maximised)."
    )
    paper: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of this section applied to the '<weighting>-paper' strategies "
        "(the authors' code as written: moalign/rl/paper.py lists the defaults and why)."
    )
    snapshot_every: int = Field(10, ge=1, description="Steps between saved policy snapshots (evaluate scores them).")
    checkpoint_every: int = Field(10, ge=1, description="Steps between resumable checkpoints.")
    logprob_buckets: int = Field(4, ge=1, description="Length-sorted groups the log-prob forward runs in, each cut "
                                 "to its own real tokens (1 = one padded batch; same numbers, less padding).")
    micro_batch_update: bool = Field(True, description="Run each log-prob bucket's backward right after its forward "
                                     "(the batch's gradient, one bucket's activations in memory: moalign/rl/update.py); "
                                     "false holds the whole batch's graph. Steps of the gradient strategy always do.")
    prompt_selection: PromptSelectionConfig = Field(
        default_factory=PromptSelectionConfig, description="Train on prompts the starting policy solves sometimes: "
        "pass rates of a pool measured once before training (off by default; moalign/rl/selection.py)."
    )
    dynamic_sampling: DynamicSamplingConfig = Field(
        default_factory=DynamicSamplingConfig, description="DAPO's dynamic sampling: train only on groups whose "
        "rewards vary in the named objectives, refilling the batch with extra generation rounds (off by default)."
    )
    generation_backend: str = Field("fast", description="Rollout engine (generation BACKENDS registry): fast (our KV-cached loop, moalign/fastgen.py) | fast-bf16 (the same, bf16 decode matmuls: an option, fp32 is the reference) | hf (model.generate).")

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        return distinct_objectives(v)

    @field_validator("clip_eps")
    @classmethod
    def _clip(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v < 1:
            raise ValueError("clip_eps must be in (0, 1) or null. Fix: e.g. 0.2, or null to disable clipping")
        return v

    @model_validator(mode="after")
    def _names(self) -> "TrainConfig":
        from moalign.generation import BACKENDS
        from moalign.rl.estimators import ESTIMATORS, check_group_size
        from moalign.rl.rewards import REWARDS
        from moalign.rl.names import parse_strategy

        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator {self.estimator!r} is unknown; valid names: {', '.join(ESTIMATORS.names())}")
        for o in self.objectives:
            if o not in REWARDS:
                raise ValueError(f"objective {o!r} is unknown; valid names: {', '.join(REWARDS.names())}")
        stray = sorted(set(self.reward_options) - set(self.objectives))
        if stray:
            raise ValueError(f"reward_options for {stray}, which are not in objectives {self.objectives}. "
                             "Fix: add them to train.objectives or remove their reward_options")
        for s in self.strategies:
            parse_strategy(s)
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"strategies {self.strategies} has repeats. Fix: list each strategy once")
        BACKENDS.check(self.generation_backend, "generation_backend")
        check_group_size(self.estimator, self.group_size)
        if self.prompt_selection.objective not in REWARDS:
            raise ValueError(f"prompt_selection.objective {self.prompt_selection.objective!r} is unknown; valid "
                             f"names: {', '.join(REWARDS.names())}")
        ds = self.dynamic_sampling
        for o in ds.objectives:
            if o not in REWARDS:
                raise ValueError(f"dynamic_sampling.objectives names {o!r}, an unknown objective; valid names: "
                                 f"{', '.join(REWARDS.names())}")
        if ds.enabled:
            stray = [o for o in ds.objectives if o not in self.objectives]
            if stray:
                raise ValueError(f"dynamic_sampling.objectives {stray} are not in objectives {self.objectives}. "
                                 "Fix: name objectives the run trains on, e.g. dynamic_sampling.objectives: "
                                 f"[{self.objectives[0]}]")
            if self.group_size < 2:
                raise ValueError(f"dynamic_sampling.enabled needs group_size >= 2 (got {self.group_size}): a group "
                                 "of one rollout never varies. Fix: raise group_size or disable dynamic_sampling")
        if self.paper:
            self.for_strategy("gradient-paper")  # the overrides must form a valid config too
        return self

    def for_strategy(self, strategy: str) -> "TrainConfig":
        """The config a strategy trains with: ``<weighting>-paper`` gets the ``paper`` overrides applied."""
        from moalign.rl.paper import apply_paper

        return apply_paper(self) if strategy.endswith("-paper") else self
