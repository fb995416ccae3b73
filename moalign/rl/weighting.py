"""Reward-weighting strategies (registry ``WEIGHTINGS``): fixed, hypervolume-guided, gradient-based.

Every strategy keeps the validation buffer, so all of them log the same
``pareto/hypervolume`` (hypervolume of the non-dominated validation points w.r.t. the
initial point p0 minus ``ref_margin``, computed by moocore); only ``hypervolume`` acts on it.
Departure: the paper's reference is p0 itself; with an objective already saturated at p0
(clarity = 1 after SFT) no point can strictly dominate it and every hypervolume would be 0.

- ``fixed``: linear scalarisation with constant weights (presets from the paper).
- ``hypervolume`` (authors' code: p0 = reference and first buffer entry; dHV = HV(buffer + p_t)
  - HV(buffer); p_t joins only if dHV > 0; meta = 0.5 + 1.5 tanh(dHV) multiplies the next
  step's rewards). A batch-wide scalar on the rewards cancels under group normalisation or
  whitening, so we apply the signal where it changes the update:
  ``hv_apply: advantage`` multiplies the combined advantages by meta (survives normalisation,
  but Adam largely cancels a global scale over steps); ``hv_apply: objective`` (default) gives
  each objective its own meta_i = 0.5 + 1.5 tanh(hv_scale * dHV * share_i), share_i being
  objective i's share of the improvement of p_t over the buffer's best coordinates, then sets
  w <- normalise(max(w * meta_i, min_weight)): objectives that move the front gain weight,
  which changes the direction of the update, not only its size.
- ``gradient`` (authors' optimisation trainer): influence I_i = <g_i, sum_k g_k> of the
  per-objective policy gradients on chosen layers; mirror descent on the simplex,
  w <- softmax(log w + lr * I / mu).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from moalign.pareto import hypervolume
from moalign.registry import Registry
from moalign.schema import StrictModel

WEIGHTINGS: Registry = Registry("weighting strategy")
PRESETS = {
    "accuracy": [0.5, 0.25, 0.25],
    "balanced": [1 / 3, 1 / 3, 1 / 3],
    "efficiency": [0.25, 0.375, 0.375],
}
PRESET_OBJECTIVES = ["accuracy", "conciseness", "clarity"]


class WeightingConfig(StrictModel):
    """train.weighting: initial weights and the strategies' knobs."""

    preset: Literal["accuracy", "balanced", "efficiency"] | None = Field(
        "balanced", description="Paper presets for (accuracy, conciseness, clarity); ignored when weights is set."
    )
    weights: list[float] | None = Field(None, description="Explicit initial weights, one per objective, on the simplex.")
    hv_apply: Literal["objective", "advantage"] = Field("objective", description="Where the HV meta-reward acts.")
    hv_scale: float = Field(10.0, gt=0, description="Scale of dHV inside tanh (our HVs are small: objectives in [0,1]).")
    min_weight: float = Field(0.02, ge=0, lt=0.5, description="Floor of every weight in the hypervolume strategy.")
    ref_margin: float = Field(
        0.05, ge=0, description="Reference = first validation point minus this margin (a saturated objective "
        "at the reference would otherwise make every hypervolume 0)."
    )
    mu: float = Field(1e-3, gt=0, description="Mirror-descent regularisation (authors' regularization_factor).")
    grad_lr: float | None = Field(None, gt=0, description="Mirror-descent lr; null = the policy lr (as the authors).")

    @field_validator("weights")
    @classmethod
    def _simplex(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if any(w < 0 for w in v):
            raise ValueError("weights must be non-negative. Fix: e.g. [0.5, 0.25, 0.25]")
        if abs(sum(v) - 1) > 1e-6:
            raise ValueError(f"weights must sum to 1 (they sum to {sum(v):.6g}). Fix: divide each by their sum")
        return v


def initial_weights(objectives: list[str], cfg: WeightingConfig) -> np.ndarray:
    if cfg.weights is not None:
        if len(cfg.weights) != len(objectives):
            raise ValueError(f"train.weighting.weights has {len(cfg.weights)} entries for {len(objectives)} "
                             f"objectives {objectives}. Fix: give one weight per objective")
        return np.asarray(cfg.weights, dtype=float)
    if cfg.preset and objectives == PRESET_OBJECTIVES:
        return np.asarray(PRESETS[cfg.preset], dtype=float)
    return np.full(len(objectives), 1.0 / len(objectives))


class Weighting:
    """Base: constant weights + the shared validation buffer (every strategy logs pareto/hypervolume)."""

    needs_objective_grads = False

    def __init__(self, objectives: list[str], cfg: WeightingConfig) -> None:
        self.objectives, self.cfg = list(objectives), cfg
        self.w = initial_weights(self.objectives, cfg)
        self.ref: np.ndarray | None = None
        self.buffer: list[np.ndarray] = []
        self.meta = 1.0

    def weights(self) -> np.ndarray:
        return self.w.copy()

    def advantage_scale(self) -> float:
        return 1.0

    def _hv(self, pts: list[np.ndarray]) -> float:
        return hypervolume(np.asarray(pts), self.ref) if pts else 0.0

    def observe_validation(self, point: np.ndarray, step: int) -> dict[str, float]:
        """Add a validation point (K,); the first one is the reference. Returns pareto metrics."""
        p = np.asarray(point, dtype=float)
        if self.ref is None:
            self.ref, self.buffer = p - self.cfg.ref_margin, [p.copy()]
            return {"hypervolume": 0.0, "delta_hv": 0.0, "meta": 1.0}
        before = self._hv(self.buffer)
        delta = self._hv(self.buffer + [p]) - before
        best = np.max(np.asarray(self.buffer), axis=0)
        if delta > 0:
            self.buffer = [b for b in self.buffer if not (np.all(p >= b) and np.any(p > b))] + [p]
        self._react(p, best, delta)
        return {"hypervolume": self._hv(self.buffer), "delta_hv": float(delta), "meta": float(self.meta)}

    def _react(self, point: np.ndarray, best: np.ndarray, delta: float) -> None:
        """Strategy hook after a validation point."""

    def update_from_grads(self, grads: torch.Tensor, lr: float) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.tolist(), "ref": None if self.ref is None else self.ref.tolist(),
                "buffer": [b.tolist() for b in self.buffer], "meta": self.meta}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.w = np.asarray(s["w"], dtype=float)
        self.ref = None if s["ref"] is None else np.asarray(s["ref"], dtype=float)
        self.buffer = [np.asarray(b, dtype=float) for b in s["buffer"]]
        self.meta = float(s["meta"])


@WEIGHTINGS.register("fixed")
class Fixed(Weighting):
    """Linear scalarisation with constant weights (the baseline)."""


@WEIGHTINGS.register("hypervolume")
class HypervolumeGuided(Weighting):
    """Hypervolume-guided adaptation (see module docstring for where the signal is applied)."""

    def advantage_scale(self) -> float:
        return self.meta if self.cfg.hv_apply == "advantage" else 1.0

    def _react(self, point: np.ndarray, best: np.ndarray, delta: float) -> None:
        self.meta = 0.5 + 1.5 * float(np.tanh(delta))
        if self.cfg.hv_apply != "objective":
            return
        gain = np.clip(point - best, 0, None)
        share = gain / gain.sum() if gain.sum() > 0 else np.zeros_like(gain)
        meta_i = 0.5 + 1.5 * np.tanh(self.cfg.hv_scale * delta * share)
        w = np.maximum(self.w * meta_i, self.cfg.min_weight)
        self.w = w / w.sum()


def influence(grads: torch.Tensor) -> torch.Tensor:
    """(K, D) per-objective gradients -> (K,) I_i = <g_i, sum_k g_k>."""
    return grads @ grads.sum(0)


def mirror_descent(w: np.ndarray, infl: np.ndarray, lr: float, mu: float) -> np.ndarray:
    """w <- softmax(log w + lr * I / mu) (exponentiated gradient on the simplex)."""
    z = np.log(np.clip(w, 1e-12, None)) + lr * np.asarray(infl, dtype=float) / mu
    z -= z.max()
    e = np.exp(z)
    return e / e.sum()


@WEIGHTINGS.register("gradient")
class GradientBased(Weighting):
    """Gradient-based weight optimisation by mirror descent on the influences."""

    needs_objective_grads = True

    def update_from_grads(self, grads: torch.Tensor, lr: float) -> dict[str, float]:
        infl = influence(grads.float()).detach().cpu().numpy()
        self.w = mirror_descent(self.w, infl, self.cfg.grad_lr or lr, self.cfg.mu)
        return {f"influence/{o}": float(v) for o, v in zip(self.objectives, infl)}
