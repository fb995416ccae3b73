"""PNG figures (matplotlib, Agg backend), each written atomically via :func:`moalign.io.atomic_path`.

- :func:`plot_pareto`: policies in objective space, non-dominated ones highlighted; one
  panel for 2 objectives, every 2-D projection (pair of objectives) for 3 or more.
- :func:`plot_curves`: one line per named series of ``(step, value)`` pairs (weights vs
  step, hypervolume vs step, reward curves, ...).

The backend is chosen inside each function so importing this module never touches the
display or changes matplotlib state for other code.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any, Sequence

import numpy as np

from moalign.io import atomic_path

PathLike = str | os.PathLike[str]


def _plt() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: PathLike) -> None:
    """Write ``fig`` as PNG to ``path`` atomically, then free it."""
    plt = _plt()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


def plot_pareto(points: dict[str, Sequence[float]], objective_names: Sequence[str], path: PathLike,
                front_mask: Sequence[bool] | None = None, maximize: Sequence[bool] | None = None,
                title: str = "policies (stars: non-dominated)") -> None:
    """Scatter the policies in objective space and write a PNG to ``path``.

    Args:
        points: policy name -> (K,) objective vector.
        objective_names: K axis labels, in the order of the vectors.
        path: PNG destination (parent folders are created).
        front_mask: (N,) bool per policy, in ``points`` order, marking the highlighted
            (non-dominated) ones; computed with :func:`moalign.pareto.non_dominated` when None.
        maximize: per-objective direction used when ``front_mask`` is computed (None: all maximised).
        title: figure title.

    With 2 objectives there is one panel; with 3+ there is one panel per pair of
    objectives (K*(K-1)/2 panels, up to 3 per row); a single objective is drawn against
    the policy index.
    """
    from moalign.pareto import non_dominated

    names = list(points)
    k = len(objective_names)
    if k < 1:
        raise ValueError("plot_pareto needs at least 1 objective name")
    pts = np.asarray([points[n] for n in names], dtype=float).reshape(len(names), -1)  # (N, K)
    if names and pts.shape[1] != k:
        raise ValueError(f"points have {pts.shape[1]} objectives but {k} names were given: {list(objective_names)}")
    if front_mask is not None:
        front = np.asarray(front_mask, dtype=bool)
        if front.shape != (len(names),):
            raise ValueError(f"front_mask has {front.size} entries for {len(names)} policies")
    else:
        front = non_dominated(pts, maximize) if names else np.zeros(0, bool)

    plt = _plt()
    pairs: list[tuple[int | None, int]] = list(itertools.combinations(range(k), 2)) or [(None, 0)]
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 4.2 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (i, j) in zip(axes.flat, pairs):
        for n_idx, name in enumerate(names):
            on_front = bool(front[n_idx])
            x = float(n_idx) if i is None else pts[n_idx, i]
            ax.scatter(x, pts[n_idx, j], color=colors[n_idx % len(colors)],
                       marker="*" if on_front else "o", s=160 if on_front else 40,
                       edgecolors="black" if on_front else "none", zorder=3 if on_front else 2,
                       label=f"{name}{' (front)' if on_front else ''}")
            ax.annotate(name, (x, pts[n_idx, j]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("policy" if i is None else objective_names[i])
        ax.set_ylabel(objective_names[j])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.set_visible(False)
    if names:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(names), 4), fontsize=7,
                   frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title)
    legend_rows = math.ceil(len(names) / 4) if names else 0
    fig.tight_layout(rect=(0, min(0.04 * legend_rows / nrows, 0.3), 1, 1))
    _save(fig, path)


def plot_curves(series: dict[str, Sequence[tuple[float, float]]], path: PathLike, title: str,
                ylabel: str, xlabel: str = "step") -> None:
    """Draw one line per named series of ``(step, value)`` pairs and write a PNG to ``path``.

    Pairs are sorted by step; empty series are skipped (the figure is still written, so a
    DVC-declared plot always exists).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = 0
    for name, pairs in series.items():
        pairs = sorted(pairs, key=lambda p: p[0])
        if not pairs:
            continue
        xs, ys = zip(*pairs)
        ax.plot(xs, ys, marker="." if len(xs) < 60 else None, label=name)
        drawn += 1
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, loc="best", ncol=2 if drawn > 8 else 1)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    _save(fig, path)
