"""Report figure of a balance plan: share per domain per phase (and loss weights when used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moalign.io import atomic_path


def plot_plan(plan: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    doms, phases = plan["domains"], plan["phases"]
    weighted = any(abs(w - 1) > 1e-12 for ph in phases for w in ph["loss_weights"].values())
    fig, axes = plt.subplots(1, 2 if weighted else 1, figsize=(10 if weighted else 6, 4), squeeze=False)
    x = np.arange(len(doms))
    width = 0.8 / (len(phases) + 1)
    ax = axes[0, 0]
    n = np.array([plan["sizes"][d] for d in doms], dtype=float)
    ax.bar(x - 0.4 + width / 2, n / n.sum(), width, label="data share (tau=1)", color="lightgray")
    for k, ph in enumerate(phases):
        label = f"phase {k}: start {ph['start']:.2f}" + (f", tau={ph['tau']:g}" if ph["tau"] else "")
        ax.bar(x - 0.4 + width * (k + 1.5), [ph["probs"][d] for d in doms], width, label=label)
    ax.set_xticks(x, doms)
    ax.set_ylabel("sampling probability")
    ax.legend(fontsize=8)
    f = plan["F_tau"]
    ftxt = ", ".join(f"{v:.2f}" for v in f) if isinstance(f, list) else f"{f:.2f}"
    ax.set_title(f"{plan['strategy']}: F(tau) = {ftxt}")
    if weighted:
        ax2 = axes[0, 1]
        ax2.bar(x, [phases[0]["loss_weights"][d] for d in doms], color="tab:orange")
        ax2.set_xticks(x, doms)
        ax2.set_yscale("log")
        ax2.set_title("loss weights w_i = p_i(tau)/p_i(1)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
