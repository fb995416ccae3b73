"""Hypervolume-guided weighting (registered as ``hypervolume`` in ``moalign.rl.weighting.WEIGHTINGS``).

The authors' rule (``ray_trainer_vanilla.py``): the first validation point p0 is the reference and the first buffer entry; afterwards dHV = HV(buffer + p_t) - HV(buffer);
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
step). The split is set by ``hv_credit`` ((4) below): ``proportional`` (default) or the Shapley
value of the coordinates: with b the buffer point nearest to p_t and q_S the point taking coordinates S from p_t and the rest from b,
v(S) = HV(buffer + q_S) - HV(buffer) and dHV_i = sum_{S not i} |S|!(K-|S|-1)!/K! (v(S+i) - v(S)).
Since v(all) = dHV and v(empty) = 0, sum_i dHV_i = dHV exactly, and a point that fills a gap of
the front (exceeding no buffer coordinate-wise maximum) still gets credited. (If b sits on
the reference in some coordinate, only joint moves add volume and credit is split equally;
``ref_margin`` > 0 avoids this for the first point.) No gain
(dHV = 0): weights unchanged. Weights are floored at ``min_weight`` (then renormalised).
``hv_apply: reward`` is the authors' exact form (rewards x meta), kept as an ablation to show
that group normalisation cancels it (tests/rl/test_weighting.py).
(2) Calibration: the signal inside tanh is the *relative* gain dHV / HV(buffer)
(``hv_relative: true``, default), scaled by ``hv_scale``. The absolute dHV depends on the units
of the front (the authors' length axis is in raw tokens, ours in [0, 1], where dHV was ~1e-5 and
the meta-reward never left 0.5 + tiny, i.e. the weights did not move); the relative gain is
unit-free, so one ``hv_scale`` means the same on any scale. ``hv_relative: false, hv_scale: 1``
is the paper's formula.
(3) Reference: ``reference: origin`` (default) puts it at 0 in every coordinate, the worst value
of each [0, 1] objective, so a point that trades one objective for another still has volume.
``reference: first`` is the authors' (the first validation point, minus ``ref_margin``; 0 =
exact): with an objective saturated at p0 no later point strictly dominates p0 and every
hypervolume is 0.
(4) Credit (``hv_credit``). With the origin reference the hypervolume of one point is a product,
so its Shapley split credits a coordinate in proportion to the product of the *other*
coordinates: a 0.1 gain in accuracy at (0.1, 0.7, 0.9) gets 0.063 of volume, the same gain in
conciseness 0.009 - a 7x structural push toward whichever objective is currently smallest
(``hv_credit: shapley``, this project's earlier default). ``proportional`` (default) splits the
same dHV over the coordinates in proportion to each one's own improvement over the nearest buffer
point, max(p_i - b_i, 0) (equal shares when no coordinate improves, i.e. the point fills a gap):
equal gains earn equal credit whatever the other coordinates (tests/rl/test_weighting.py). It
assumes comparable units, which holds for the [0, 1] objectives of ``length_unit: fraction``.
(5) Degenerate reference. A coordinate in which the first validation point does not exceed the
reference (``reference: origin`` and an objective at 0, e.g. clarity when no answer has steps)
gives every point zero volume: no gain, weights frozen. Rule: such a coordinate's reference is
lowered to (that value - ``degenerate_margin``), said in one warning and in the metrics
(``degenerate/<objective>`` = 1). A constant objective then multiplies every volume by the same
factor, so the hypervolume still ranks points on the other objectives. ``reference: first`` is
left as the authors have it (the first point *is* the reference); :meth:`Weighting.degenerate`
reports at the end when every hypervolume stayed 0.
"""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np

from moalign.rl.weighting import WEIGHTINGS, Weighting, hv_gain


def proportional_split(buffer: list[np.ndarray], point: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(K,) split of dHV in proportion to max(p_i - b_i, 0), b the nearest buffer point (module docstring (4));
    equal shares when no coordinate improves on b. Sums to hv_gain(buffer, point, ref)."""
    delta = max(hv_gain(buffer, point, ref), 0.0)
    base = buffer[int(np.argmin([np.linalg.norm(point - b) for b in buffer]))]
    up = np.clip(point - base, 0.0, None)  # (K,)
    share = up / up.sum() if up.sum() > 0 else np.full(len(point), 1.0 / len(point))
    return delta * share


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


@WEIGHTINGS.register("hypervolume")
class HypervolumeGuided(Weighting):
    """Hypervolume-guided adaptation (module docstring: where the signal is applied and why)."""

    needs_validation = True

    def advantage_scale(self) -> float:
        return self.meta if self.cfg.hv_apply == "advantage" else 1.0

    def reward_scale(self) -> float:
        return self.meta if self.cfg.hv_apply == "reward" else 1.0

    def _unit(self) -> float:
        """Divisor of dHV: HV(buffer), before the new point joins it, when ``hv_relative`` and positive,
        else 1 (module docstring)."""
        hv = self._hv(self.buffer)
        return hv if self.cfg.hv_relative and hv > 0 else 1.0

    def _react(self, point: np.ndarray, delta: float) -> dict[str, float]:
        unit = self._unit()
        self.meta = 0.5 + 1.5 * float(np.tanh(self.cfg.hv_scale * delta / unit))
        if self.cfg.hv_apply != "objective":
            return {"gain": float(delta / unit)}
        split = shapley_split if self.cfg.hv_credit == "shapley" else proportional_split
        credit = split(self.buffer, point, self.ref) if delta > 0 else np.zeros(len(point))  # (K,)
        if delta > 0:
            meta_i = 0.5 + 1.5 * np.tanh(self.cfg.hv_scale * np.clip(credit, 0.0, None) / unit)  # (K,)
            w = self.w * meta_i
            w = np.maximum(w / w.sum(), self.cfg.min_weight)
            self.w = w / w.sum()
        return {"gain": float(delta / unit), **{f"credit/{o}": float(c / unit) for o, c in zip(self.objectives, credit)}}
