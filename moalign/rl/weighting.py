"""Reward-weighting strategies (registry ``WEIGHTINGS``): fixed, hypervolume-guided, gradient-based.

Interface (every strategy): ``weights() -> (K,)`` on the simplex; ``advantage_scale()``
(multiplier of the combined advantages, 1.0 unless stated); ``needs_validation`` and
``observe_validation(point (K,), step) -> metrics``; ``needs_objective_grads`` and
``update_from_grads(grads (K, D), lr) -> metrics``; ``state_dict()`` / ``load_state_dict()``.

Validation points: every coordinate is *maximised* (the trainer reports conciseness as
``1 - length / max_new_tokens``; the paper minimises raw length). moocore minimises, so
``moalign.pareto.hypervolume`` negates the coordinates before calling ``moocore.hypervolume``.
Every strategy keeps the non-dominated validation buffer, so all of them log the same
``pareto/hypervolume``; only ``hypervolume`` acts on it.

- ``fixed``: linear scalarisation r = sum_i w_i r_i with constant w (the paper's baseline).
- ``hypervolume`` (authors' ``ray_trainer_vanilla.py``): the first validation point p0 is
  the reference and the first buffer entry; afterwards dHV = HV(buffer + p_t) - HV(buffer);
  p_t joins the buffer only if dHV > 0 (points it dominates leave, so the buffer stays
  non-dominated); meta = 0.5 + 1.5 tanh(dHV) multiplies the next steps' rewards.
  Departures, and why:
  (1) the reward-level scalar cancels under group normalisation and batch whitening (and,
  here, under per-objective normalisation), so we apply the signal where it changes the
  update. ``hv_apply: advantage`` multiplies the combined advantages by meta (survives
  normalisation, but only rescales the step, which Adam largely undoes over steps).
  ``hv_apply: objective`` (default) splits dHV over the objectives and sets
  w <- normalise(w * meta_i), meta_i = 0.5 + 1.5 tanh(hv_scale * max(dHV_i, 0)), which changes
  the *direction* of the update: objectives whose movement advanced the front gain weight
  (the meta-reward reinforces what made progress, as the paper's scalar does for a whole
  step). The split is the Shapley value of the coordinates: with b the buffer point nearest to
  p_t and q_S the point taking coordinates S from p_t and the rest from b,
  v(S) = HV(buffer + q_S) - HV(buffer) and dHV_i = sum_{S not i} |S|!(K-|S|-1)!/K! (v(S+i) - v(S)).
  Since v(all) = dHV and v(empty) = 0, sum_i dHV_i = dHV exactly, and a point that fills a gap of
  the front (exceeding no buffer coordinate-wise maximum) still gets credited. (If b sits on
  the reference in some coordinate, only joint moves add volume and credit is split equally;
  ``ref_margin`` > 0 avoids this for the first point.) No gain
  (dHV = 0): weights unchanged. Weights are floored at ``min_weight`` (then renormalised).
  (2) dHV is scaled inside tanh by ``hv_scale`` in both modes: our coordinates live in [0, 1],
  so dHV is ~1e-3 and tanh(dHV) ~ dHV; the authors' length axis is in raw tokens, where dHV is
  orders of magnitude larger. ``hv_scale: 1`` is the paper's formula.
  (3) the reference is p0 minus ``ref_margin``: with an objective saturated at p0 (clarity = 1
  after SFT) no later point strictly dominates p0 and every hypervolume would be 0.
- ``gradient`` (authors' ``ray_trainer_optimization.py``): influence I_i = <g_i, sum_k g_k> of
  the per-objective policy gradients on chosen layers; mirror descent on the simplex,
  w <- softmax(log w + lr * I / mu), lr = ``grad_lr`` or the policy lr, mu = ``mu``.
"""

from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from moalign.pareto import hypervolume, non_dominated
from moalign.registry import Registry
from moalign.schema import StrictModel

WEIGHTINGS: Registry = Registry("weighting strategy")
PRESET_OBJECTIVES = ["accuracy", "conciseness", "clarity"]
PRESETS = {  # weights for PRESET_OBJECTIVES, as in the paper
    "accuracy": [0.5, 0.25, 0.25],
    "balanced": [1 / 3, 1 / 3, 1 / 3],
    "efficiency": [0.25, 0.375, 0.375],
}
_LOG_FLOOR = -30.0  # mirror descent: log-weights below max - 30 are clamped (weights stay > 0)


class WeightingConfig(StrictModel):
    """train.weighting: initial weights and the strategies' knobs."""

    preset: Literal["accuracy", "balanced", "efficiency"] | None = Field(
        "balanced", description="Paper presets for objectives (accuracy, conciseness, clarity); other objective "
        "lists accept only balanced (uniform) or explicit weights. Ignored when weights is set."
    )
    weights: list[float] | None = Field(
        None, description="Explicit initial weights, one per objective in train.objectives order, on the simplex."
    )
    hv_apply: Literal["objective", "advantage"] = Field(
        "objective", description="Where the hypervolume meta-reward acts: per-objective weights (objective) or a "
        "scale of the combined advantages (advantage)."
    )
    hv_scale: float = Field(
        10.0, gt=0, description="Scale of dHV inside tanh: meta = 0.5 + 1.5 tanh(hv_scale * dHV); 1 = the paper."
    )
    min_weight: float = Field(0.02, ge=0, lt=0.5, description="Floor of every weight in the hypervolume strategy.")
    ref_margin: float = Field(
        0.05, ge=0, description="Reference = first validation point minus this margin (a saturated objective "
        "at the reference would otherwise make every hypervolume 0)."
    )
    mu: float = Field(1e-3, gt=0, description="Mirror-descent regularisation (authors' regularization_factor); "
                      "step size = lr / mu.")
    grad_lr: float | None = Field(None, gt=0, description="Mirror-descent lr; null = the policy lr (as the authors).")

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


def initial_weights(objectives: list[str], cfg: WeightingConfig) -> np.ndarray:
    """(K,) starting weights: explicit ``weights``, else the preset (uniform for ``balanced``/null)."""
    K = len(objectives)
    if cfg.weights is not None:
        if len(cfg.weights) != K:
            raise ValueError(f"train.weighting.weights has {len(cfg.weights)} entries for {K} objectives "
                             f"{objectives}. Fix: give one weight per objective")
        return np.asarray(cfg.weights, dtype=float)
    if cfg.preset is not None and objectives == PRESET_OBJECTIVES:
        return np.asarray(PRESETS[cfg.preset], dtype=float)
    if cfg.preset in (None, "balanced"):
        return np.full(K, 1.0 / K)
    raise ValueError(f"train.weighting.preset = {cfg.preset!r} is defined for objectives {PRESET_OBJECTIVES}, "
                     f"not {objectives}. Fix: set train.weighting.weights (one per objective) or preset balanced")


def hv_gain(buffer: list[np.ndarray], point: np.ndarray, ref: np.ndarray) -> float:
    """dHV = HV(buffer + point) - HV(buffer), all coordinates maximised, w.r.t. ``ref``."""
    before = hypervolume(np.asarray(buffer), ref) if buffer else 0.0
    return hypervolume(np.asarray(buffer + [point]), ref) - before


def shapley_split(buffer: list[np.ndarray], point: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(K,) Shapley split of dHV over coordinates (module docstring); sums to hv_gain(buffer, point, ref)."""
    K = len(point)
    base = buffer[int(np.argmin([np.linalg.norm(point - b) for b in buffer]))]  # nearest buffer point
    v: dict[frozenset[int], float] = {}
    for size in range(K + 1):
        for S in combinations(range(K), size):
            q = base.copy()
            q[list(S)] = point[list(S)]
            v[frozenset(S)] = hv_gain(buffer, q, ref)
    phi = np.zeros(K)
    for i in range(K):
        for S, val in v.items():
            if i not in S:
                phi[i] += factorial(len(S)) * factorial(K - len(S) - 1) / factorial(K) * (v[S | {i}] - val)
    return phi


class Weighting:
    """Base: constant weights + the shared validation buffer (every strategy logs pareto/hypervolume)."""

    needs_validation = False  # True: the strategy cannot work without validation points
    needs_objective_grads = False  # True: the trainer must call update_from_grads every step

    def __init__(self, objectives: list[str], cfg: WeightingConfig) -> None:
        self.objectives, self.cfg = list(objectives), cfg
        self.w = initial_weights(self.objectives, cfg)  # (K,)
        self.ref: np.ndarray | None = None  # (K,)
        self.buffer: list[np.ndarray] = []  # non-dominated validation points, each (K,)
        self.meta = 1.0

    def weights(self) -> np.ndarray:
        return self.w.copy()

    def advantage_scale(self) -> float:
        return 1.0

    def _hv(self, pts: list[np.ndarray]) -> float:
        return hypervolume(np.asarray(pts), self.ref) if pts else 0.0

    def observe_validation(self, point: np.ndarray, step: int) -> dict[str, float]:
        """Add a validation point (K,), all coordinates maximised; the first is the reference."""
        p = np.asarray(point, dtype=float).reshape(-1)
        if p.shape != (len(self.objectives),):
            raise ValueError(f"validation point of shape {p.shape} for objectives {self.objectives}")
        if self.ref is None:
            self.ref, self.buffer = p - self.cfg.ref_margin, [p.copy()]
            return {"hypervolume": 0.0, "delta_hv": 0.0, "meta": 1.0}
        delta = max(hv_gain(self.buffer, p, self.ref), 0.0)
        info = self._react(p, delta)  # before the buffer changes: the split compares with it
        if delta > 0:
            pts = np.asarray(self.buffer + [p])
            self.buffer = [q for q, keep in zip(pts, non_dominated(pts)) if keep]
        return {"hypervolume": self._hv(self.buffer), "delta_hv": float(delta), "meta": float(self.meta), **info}

    def _react(self, point: np.ndarray, delta: float) -> dict[str, float]:
        """Strategy hook after a validation point with HV gain ``delta``; returns extra metrics."""
        return {}

    def update_from_grads(self, grads: torch.Tensor, lr: float) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.tolist(), "ref": None if self.ref is None else self.ref.tolist(),
                "buffer": [b.tolist() for b in self.buffer], "meta": self.meta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = np.asarray(state["w"], dtype=float)
        self.ref = None if state["ref"] is None else np.asarray(state["ref"], dtype=float)
        self.buffer = [np.asarray(b, dtype=float) for b in state["buffer"]]
        self.meta = float(state["meta"])


@WEIGHTINGS.register("fixed")
class Fixed(Weighting):
    """Linear scalarisation with constant weights (the baseline)."""


@WEIGHTINGS.register("hypervolume")
class HypervolumeGuided(Weighting):
    """Hypervolume-guided adaptation (module docstring: where the signal is applied and why)."""

    needs_validation = True

    def advantage_scale(self) -> float:
        return self.meta if self.cfg.hv_apply == "advantage" else 1.0

    def _react(self, point: np.ndarray, delta: float) -> dict[str, float]:
        self.meta = 0.5 + 1.5 * float(np.tanh(self.cfg.hv_scale * delta))
        if self.cfg.hv_apply != "objective":
            return {}
        credit = shapley_split(self.buffer, point, self.ref) if delta > 0 else np.zeros(len(point))  # (K,)
        if delta > 0:
            meta_i = 0.5 + 1.5 * np.tanh(self.cfg.hv_scale * np.clip(credit, 0.0, None))  # (K,)
            w = self.w * meta_i
            w = np.maximum(w / w.sum(), self.cfg.min_weight)
            self.w = w / w.sum()
        return {f"credit/{o}": float(c) for o, c in zip(self.objectives, credit)}


def influence(grads: torch.Tensor) -> torch.Tensor:
    """(K, D) per-objective gradients -> (K,) influences I_i = <g_i, sum_k g_k>."""
    return grads @ grads.sum(0)


def mirror_descent(w: np.ndarray, infl: np.ndarray, lr: float, mu: float) -> np.ndarray:
    """w <- softmax(log w + lr * I / mu) (exponentiated gradient ascent on the simplex).

    log w is clamped at log(1e-12), and log-weights more than 30 below the largest are raised
    to that floor, so every weight stays strictly positive and can recover later.
    """
    z = np.log(np.clip(w, 1e-12, None)) + lr * np.asarray(infl, dtype=float) / mu  # (K,)
    z = np.maximum(z - z.max(), _LOG_FLOOR)
    e = np.exp(z)
    return e / e.sum()


@WEIGHTINGS.register("gradient")
class GradientBased(Weighting):
    """Gradient-based weight optimisation: mirror descent on the influences I_i."""

    needs_objective_grads = True

    def update_from_grads(self, grads: torch.Tensor, lr: float) -> dict[str, float]:
        """grads (K, D): flattened per-objective policy gradients; lr: the current policy lr."""
        if grads.ndim != 2 or grads.shape[0] != len(self.objectives):
            raise ValueError(f"grads of shape {tuple(grads.shape)}; expected (K={len(self.objectives)}, D)")
        infl = influence(grads.double()).detach().cpu().numpy()  # (K,)
        self.w = mirror_descent(self.w, infl, self.cfg.grad_lr or lr, self.cfg.mu)
        return {f"influence/{o}": float(v) for o, v in zip(self.objectives, infl)}
