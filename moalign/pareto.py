"""Pareto utilities over objective vectors, with moocore doing the math.

Convention: every objective is maximised unless ``maximize`` (a bool per objective) says
otherwise. moocore minimises, so maximised coordinates are negated before each call.
Hypervolume against a reference point counts only points that strictly dominate the
reference in every coordinate; the others are *excluded* (they add 0), and
:func:`excluded_by_reference` says which.
"""

from __future__ import annotations

from typing import Sequence

import moocore
import numpy as np


def _as_min(points, maximize) -> np.ndarray:
    p = np.atleast_2d(np.asarray(points, dtype=float))
    mx = np.ones(p.shape[1], bool) if maximize is None else np.asarray(maximize, bool)
    return np.where(mx, -p, p)


def non_dominated(points, maximize=None) -> np.ndarray:
    """(N,) bool mask of the non-dominated points (duplicates of a front point are all kept)."""
    p = _as_min(points, maximize)
    if len(p) == 0:
        return np.zeros(0, bool)
    return np.asarray(moocore.is_nondominated(p, keep_weakly=True), bool)


def excluded_by_reference(points, ref, maximize=None) -> np.ndarray:
    """(N,) bool mask of points that do not strictly dominate ``ref`` in every coordinate."""
    p, r = _as_min(points, maximize), _as_min(ref, maximize)[0]
    return ~np.all(p < r, axis=1)


def hypervolume(points, ref, maximize=None) -> float:
    """Hypervolume of ``points`` w.r.t. ``ref``; points not dominating ``ref`` are excluded (0 if none remain)."""
    p, r = _as_min(points, maximize), _as_min(ref, maximize)[0]
    keep = np.all(p < r, axis=1)
    if not keep.any():
        return 0.0
    return float(moocore.hypervolume(p[keep], ref=r))


def dominates(a, b, maximize=None) -> bool:
    """a weakly better than b in every objective and strictly better in one."""
    pa, pb = _as_min(a, maximize)[0], _as_min(b, maximize)[0]
    return bool(np.all(pa <= pb) and np.any(pa < pb))


def dominance_table(names: Sequence[str], points, maximize=None) -> dict[str, dict[str, str]]:
    """table[a][b] in {dominates, dominated, equal, incomparable}."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    out: dict[str, dict[str, str]] = {}
    for i, a in enumerate(names):
        out[a] = {}
        for j, b in enumerate(names):
            if i == j:
                continue
            if np.allclose(pts[i], pts[j]):
                rel = "equal"
            elif dominates(pts[i], pts[j], maximize):
                rel = "dominates"
            elif dominates(pts[j], pts[i], maximize):
                rel = "dominated"
            else:
                rel = "incomparable"
            out[a][b] = rel
    return out


def steps_to_dominance(checkpoints: Sequence[tuple[int, Sequence[float]]], target, maximize=None,
                       tol: float = 0.0) -> int | None:
    """First step whose point dominates or matches ``target`` (>= target - tol in every coordinate)."""
    t = _as_min(target, maximize)[0]
    for step, pt in sorted(checkpoints, key=lambda c: c[0]):
        if np.all(_as_min(pt, maximize)[0] <= t + tol):
            return int(step)
    return None


def first_step_reaching(values: Sequence[tuple[int, float]], threshold: float) -> int | None:
    """First step whose value (e.g. hypervolume) is >= ``threshold``."""
    for step, v in sorted(values, key=lambda c: c[0]):
        if v >= threshold:
            return int(step)
    return None
