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

Strategy names: ``<weighting>[-<preset>]``, e.g. ``fixed-accuracy``, ``fixed-efficiency``,
``gradient`` (:func:`parse_strategy`); a preset suffix overrides ``train.weighting.preset``, so the
default DAG trains the paper's three fixed presets beside both dynamic strategies. The suffix
``-paper`` (``hypervolume-paper``, ``gradient-paper``) trains with the authors' rules as written
(moalign/rl/paper.py: the whole train config, not only the weighting, is overridden).

- ``fixed``: linear scalarisation r = sum_i w_i r_i with constant w (the paper's baseline).
- ``hypervolume`` (authors' ``ray_trainer_vanilla.py``): moalign/rl/hv_weighting.py, whose docstring says
  where it departs from the paper and why.
- ``gradient`` (authors' ``ray_trainer_optimization.py``): influence I_i = <g_i, sum_k g_k> of
  the per-objective policy gradients on chosen layers; mirror descent on the simplex,
  w <- softmax(log w + step * I). Calibration (``influence: share``, default): the step uses the
  influence *shares* I_i / ||sum_k g_k||^2, which sum to 1 (sum_i <g_i, G> = <G, G>), so the
  step follows the measured relative size of the influences and not the raw gradient scale
  (the authors' step lr / mu = 0.1 on influences of ~3e-3 moved log-weights by ~3e-4 per step
  on our model: the weights stayed within 0.012 of uniform). step = ``grad_step``. Objectives
  that contribute equally get equal shares and keep their weights (the symmetric test).
  ``influence: raw`` is the authors' exact rule: step = (``grad_lr`` or the policy lr) / ``mu``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from moalign.pareto import hypervolume, non_dominated
from moalign.rl.config import WeightingConfig  # noqa: F401 - its home is the torch-free rl/config.py
from moalign.rl.names import PRESET_OBJECTIVES, PRESETS, WEIGHTINGS, parse_strategy  # noqa: F401 - re-exported

log = logging.getLogger("moalign.train")
_LOG_FLOOR = -30.0  # mirror descent: log-weights below max - 30 are clamped (weights stay > 0)


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


def make_weighting(name: str, objectives: list[str], cfg: WeightingConfig) -> "Weighting":
    """The strategy ``name`` (:func:`parse_strategy`) with its preset applied to ``cfg``."""
    base, preset = parse_strategy(name)
    if preset is not None and preset != "paper":  # -paper: the caller applied moalign/rl/paper.py already
        cfg = cfg.model_copy(update={"preset": preset, "weights": None})
    return WEIGHTINGS.get(base)(objectives, cfg)


def hv_gain(buffer: list[np.ndarray], point: np.ndarray, ref: np.ndarray) -> float:
    """dHV = HV(buffer + point) - HV(buffer), all coordinates maximised, w.r.t. ``ref``."""
    before = hypervolume(np.asarray(buffer), ref) if buffer else 0.0
    return hypervolume(np.asarray(buffer + [point]), ref) - before


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
        self.adjusted: list[int] = []  # coordinates whose reference was lowered (module docstring (5))
        self.hv_max = 0.0  # largest buffer hypervolume seen
        self.best: np.ndarray | None = None  # (K,) coordinate-wise maximum of every observed point

    def weights(self) -> np.ndarray:
        return self.w.copy()

    def advantage_scale(self) -> float:
        return 1.0

    def aggregation(self, step: int, max_steps: int) -> str | None:
        """How this strategy combines the objectives at ``step`` (moalign/rl/field.py); None = train.aggregation."""
        return None

    def reward_scale(self) -> float:
        """Multiplier of every reward before the advantages (the authors' meta-reward; 1.0 unless stated)."""
        return 1.0

    def _hv(self, pts: list[np.ndarray]) -> float:
        return hypervolume(np.asarray(pts), self.ref) if pts else 0.0

    def observe_validation(self, point: np.ndarray, step: int) -> dict[str, float]:
        """Add a validation point (K,), all coordinates maximised; the first is the reference."""
        p = np.asarray(point, dtype=float).reshape(-1)
        if p.shape != (len(self.objectives),):
            raise ValueError(f"validation point of shape {p.shape} for objectives {self.objectives}")
        self.best = p.copy() if self.best is None else np.maximum(self.best, p)
        if self.ref is None:
            self.ref = np.zeros_like(p) if self.cfg.reference == "origin" else p - self.cfg.ref_margin
            if self.cfg.reference == "origin":
                self.adjusted = [i for i in range(len(p)) if p[i] <= self.ref[i]]
                for i in self.adjusted:
                    self.ref[i] = p[i] - self.cfg.degenerate_margin
                if self.adjusted:
                    log.warning("hypervolume reference: %s at or below the origin in the first validation point "
                                "(%s); their reference is lowered by %g so the hypervolume stays informative",
                                [self.objectives[i] for i in self.adjusted], np.round(p, 4).tolist(),
                                self.cfg.degenerate_margin)
            self.buffer = [p.copy()]
            self.hv_max = self._hv(self.buffer)
            return {"hypervolume": self.hv_max, "delta_hv": 0.0, "meta": 1.0,
                    **{f"degenerate/{self.objectives[i]}": 1.0 for i in self.adjusted}}
        delta = max(hv_gain(self.buffer, p, self.ref), 0.0)
        info = self._react(p, delta)  # before the buffer changes: the split compares with it
        if delta > 0:
            pts = np.asarray(self.buffer + [p])
            self.buffer = [q for q, keep in zip(pts, non_dominated(pts)) if keep]
        hv = self._hv(self.buffer)
        self.hv_max = max(self.hv_max, hv)
        return {"hypervolume": hv, "delta_hv": float(delta), "meta": float(self.meta), **info}

    def degenerate(self) -> dict[str, object]:
        """What made the hypervolume uninformative in this run (empty when nothing did).

        ``adjusted``: objectives whose reference was lowered (module docstring (5));
        ``zero_hypervolume``: every buffer hypervolume stayed 0 (e.g. ``reference: first`` with an
        objective saturated at the first point, or no point ever dominating it), with
        ``never_above_reference``: the objectives no buffer point exceeded.
        """
        out: dict[str, object] = {}
        if self.adjusted:
            out["adjusted"] = [self.objectives[i] for i in self.adjusted]
        if self.ref is not None and self.hv_max <= 0:
            out["zero_hypervolume"] = True
            out["never_above_reference"] = [o for i, o in enumerate(self.objectives) if not self.best[i] > self.ref[i]]
        return out

    def _react(self, point: np.ndarray, delta: float) -> dict[str, float]:
        """Strategy hook after a validation point with HV gain ``delta``; returns extra metrics."""
        return {}

    def update_from_grads(self, grads: torch.Tensor, lr: float) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.tolist(), "ref": None if self.ref is None else self.ref.tolist(),
                "buffer": [b.tolist() for b in self.buffer], "meta": self.meta, "adjusted": list(self.adjusted),
                "hv_max": self.hv_max, "best": None if self.best is None else self.best.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = np.asarray(state["w"], dtype=float)
        self.ref = None if state["ref"] is None else np.asarray(state["ref"], dtype=float)
        self.buffer = [np.asarray(b, dtype=float) for b in state["buffer"]]
        self.meta = float(state["meta"])
        self.adjusted = [int(i) for i in state.get("adjusted", [])]
        self.hv_max = float(state.get("hv_max", 0.0))
        self.best = None if state.get("best") is None else np.asarray(state["best"], dtype=float)


@WEIGHTINGS.register("fixed")
class Fixed(Weighting):
    """Linear scalarisation with constant weights (the baseline)."""


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
        g = grads.double() * self.cfg.grad_scale  # the authors' micro-batch sum (moalign/rl/paper.py)
        infl = influence(g).detach().cpu().numpy()  # (K,)
        if self.cfg.influence == "share":
            total = float(g.sum(0).pow(2).sum())  # ||G||^2 = sum_i I_i
            signal = infl / total if total > 0 else np.zeros_like(infl)
            self.w = mirror_descent(self.w, signal, self.cfg.grad_step, 1.0)
        else:
            signal = infl
            self.w = mirror_descent(self.w, infl, self.cfg.grad_lr or lr, self.cfg.mu)
        return {**{f"influence/{o}": float(v) for o, v in zip(self.objectives, infl)},
                **{f"influence_share/{o}": float(v) for o, v in zip(self.objectives, signal)
                   if self.cfg.influence == "share"}}

