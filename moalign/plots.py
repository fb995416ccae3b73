"""PNG figures (matplotlib, Agg), written atomically: Pareto projections and step curves."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

from moalign.io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    _plt().close(fig)


def plot_pareto(points: dict[str, Sequence[float]], objective_names: Sequence[str], path: str | Path,
                front_mask: Sequence[bool] | None = None) -> None:
    """Scatter of policies; one panel for 2 objectives, all pairwise projections for 3+."""
    from moalign.pareto import non_dominated

    plt = _plt()
    names = list(points)
    import numpy as np

    pts = np.asarray([points[n] for n in names], dtype=float)
    front = np.asarray(front_mask, bool) if front_mask is not None else non_dominated(pts)
    pairs = list(itertools.combinations(range(len(objective_names)), 2)) or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.5 * len(pairs), 4), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs):
        for k, n in enumerate(names):
            ax.scatter(pts[k, i], pts[k, j], s=70 if front[k] else 30, marker="*" if front[k] else "o", label=n)
            ax.annotate(n, (pts[k, i], pts[k, j]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(objective_names[i])
        ax.set_ylabel(objective_names[j])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("policies on the test split (stars: non-dominated)")
    fig.tight_layout()
    _save(fig, path)


def plot_curves(series: dict[str, Sequence[tuple[float, float]]], path: str | Path, title: str, ylabel: str) -> None:
    """One line per series of (step, value)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in series.items():
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker=".", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
