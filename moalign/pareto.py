"""Pareto utilities over objective vectors, with moocore doing the math.

Convention: every objective is *maximised* unless ``maximize`` (one bool per objective)
says otherwise. moocore minimises, so each call first maps points into "minimisation
space" by negating the maximised coordinates (:func:`_as_min`); all comparisons below are
done there, where smaller is better in every coordinate.

Hypervolume (the Lebesgue measure of the region dominated by the points and bounded by
the reference point ``ref``) only counts points that *strictly* dominate ``ref`` in every
coordinate. The others are **excluded**: they add nothing, and the hypervolume is 0 when
none remain. :func:`excluded_by_reference` returns which points were excluded, so callers
can report them instead of silently dropping a policy.

Shapes: ``points`` is (N, K) for N policies and K objectives; a point or ``ref`` is (K,).
"""

from __future__ import annotations

from typing import Literal, Sequence

import moocore
import numpy as np
from numpy.typing import ArrayLike

Relation = Literal["dominates", "dominated", "equal", "incomparable"]
MaskLike = Sequence[bool] | np.ndarray | None


def _mask(maximize: MaskLike, k: int) -> np.ndarray:
    """(K,) bool mask of maximised objectives; ``None`` means all maximised."""
    if maximize is None:
        return np.ones(k, bool)
    mx = np.asarray(maximize, dtype=bool).reshape(-1)
    if mx.shape != (k,):
        raise ValueError(f"maximize has {mx.size} entries but the points have {k} objectives. "
                         f"Fix: pass one bool per objective, or None to maximise all.")
    return mx


def _as_min(points: ArrayLike, maximize: MaskLike, k: int | None = None) -> np.ndarray:
    """(N, K) float copy of ``points`` in minimisation space (maximised coordinates negated)."""
    p = np.asarray(points, dtype=float)
    if p.ndim == 1:
        p = p.reshape(1, -1) if p.size or k is None else p.reshape(0, k)
    if p.ndim != 2:
        raise ValueError(f"points must be (N, K) or (K,), got shape {p.shape}")
    if k is not None and p.shape[1] != k:
        raise ValueError(f"expected {k} objectives, got shape {p.shape}. Fix: give every point "
                         f"(and the reference) one value per objective.")
    if np.isnan(p).any():
        raise ValueError("objective values contain NaN. Fix: score every policy on every objective.")
    return np.where(_mask(maximize, p.shape[1]), -p, p)


def _point(x: ArrayLike, maximize: MaskLike, k: int | None = None) -> np.ndarray:
    """(K,) single point in minimisation space."""
    p = _as_min(np.asarray(x, dtype=float).reshape(1, -1), maximize, k)
    return p[0]


def non_dominated(points: ArrayLike, maximize: MaskLike = None) -> np.ndarray:
    """(N,) bool mask of the non-dominated points.

    A point is kept unless another point is weakly better in every objective and strictly
    better in one; exact duplicates of a front point are all kept.
    """
    p = np.asarray(points, dtype=float)
    if p.size == 0:
        return np.zeros(len(p), bool)
    p = _as_min(p, maximize)
    return np.asarray(moocore.is_nondominated(p, keep_weakly=True), bool)


def excluded_by_reference(points: ArrayLike, ref: ArrayLike, maximize: MaskLike = None) -> np.ndarray:
    """(N,) bool mask of points that do **not** strictly dominate ``ref`` in every coordinate.

    These points are excluded from :func:`hypervolume` (they contribute 0).
    """
    r = _point(ref, maximize)
    p = _as_min(points, maximize, k=r.size)
    return ~np.all(p < r, axis=1)


def hypervolume(points: ArrayLike, ref: ArrayLike, maximize: MaskLike = None) -> float:
    """Hypervolume of ``points`` (N, K) with respect to ``ref`` (K,), computed by moocore.

    Points that do not strictly dominate ``ref`` in every coordinate are excluded
    (see :func:`excluded_by_reference`); the result is 0.0 when none remain.
    """
    r = _point(ref, maximize)
    p = _as_min(points, maximize, k=r.size)
    keep = np.all(p < r, axis=1)
    if not keep.any():
        return 0.0
    return float(moocore.hypervolume(p[keep], ref=r))


def dominates(a: ArrayLike, b: ArrayLike, maximize: MaskLike = None) -> bool:
    """True when ``a`` is weakly better than ``b`` in every objective and strictly better in one."""
    pa = _point(a, maximize)
    pb = _point(b, maximize, k=pa.size)
    return bool(np.all(pa <= pb) and np.any(pa < pb))


def relation(a: ArrayLike, b: ArrayLike, maximize: MaskLike = None) -> Relation:
    """How ``a`` compares with ``b``: ``dominates``, ``dominated``, ``equal`` or ``incomparable``."""
    pa = _point(a, maximize)
    pb = _point(b, maximize, k=pa.size)
    if np.array_equal(pa, pb):
        return "equal"
    if np.all(pa <= pb):
        return "dominates"
    if np.all(pb <= pa):
        return "dominated"
    return "incomparable"


def dominance_table(names: Sequence[str], points: ArrayLike,
                    maximize: MaskLike = None) -> dict[str, dict[str, Relation]]:
    """Pairwise relations: ``table[a][b]`` is :func:`relation` of policy ``a`` to policy ``b``.

    The diagonal (``a`` against itself) is left out; ``names`` must be unique and match
    the rows of ``points``.
    """
    p = np.asarray(points, dtype=float)
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    if len(p) != len(names):
        raise ValueError(f"{len(names)} names but {len(p)} points. Fix: one row of points per name.")
    return {a: {b: relation(p[i], p[j], maximize) for j, b in enumerate(names) if j != i}
            for i, a in enumerate(names)}


def steps_to_dominance(checkpoints: Sequence[tuple[int, ArrayLike]], target: ArrayLike,
                       maximize: MaskLike = None, tol: float = 0.0) -> int | None:
    """First step whose point dominates or matches ``target`` within ``tol``.

    "Matches within tol" means weakly at least ``target - tol`` on every maximised
    objective (at most ``target + tol`` on minimised ones). Checkpoints are visited in
    step order; returns None when no checkpoint reaches the target.
    """
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    t = _point(target, maximize)
    for step, pt in sorted(checkpoints, key=lambda c: c[0]):
        if np.all(_point(pt, maximize, k=t.size) <= t + tol):
            return int(step)
    return None


def first_step_reaching(values: Sequence[tuple[int, float]], threshold: float) -> int | None:
    """First step (in step order) whose value, e.g. hypervolume, is >= ``threshold``; else None."""
    for step, v in sorted(values, key=lambda c: c[0]):
        if v >= threshold:
            return int(step)
    return None
