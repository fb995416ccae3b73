"""Report figure of a balance plan: sampling share per domain per phase, and loss weights when used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moalign.io import atomic_path


def _f_text(f: float | list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in f) + "]" if isinstance(f, list) else f"{f:.2f}"


def plot_plan(plan: dict[str, Any], path: str | Path) -> None:
    """Write a PNG of ``plan`` (from :func:`build_plan`) to ``path`` atomically.

    Left panel: grouped bars per domain, the data share p_i(1) then one bar per phase (p_k).
    Right panel (only when some loss weight != 1, i.e. scalarization): w_i per phase, log scale.
    The title names the strategy and F(tau) (Theorem 2).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    doms, phases = plan["domains"], plan["phases"]
    weighted = any(abs(w - 1.0) > 1e-12 for ph in phases for w in ph["loss_weights"].values())
    fig, axes = plt.subplots(1, 2 if weighted else 1, figsize=(11 if weighted else 6.5, 4), squeeze=False)
    x = np.arange(len(doms))
    width = 0.8 / (len(phases) + 1)
    ax = axes[0, 0]
    n = np.array([plan["sizes"][d] for d in doms], dtype=float)
    ax.bar(x - 0.4 + width / 2, n / n.sum(), width, label="data share p(1)", color="lightgray")
    for k, ph in enumerate(phases):
        label = f"phase {k} from {ph['start']:.0%}" + (f", tau={ph['tau']:g}" if ph["tau"] is not None else "")
        ax.bar(x - 0.4 + width * (k + 1.5), [ph["probs"][d] for d in doms], width, label=label)
    ax.set_xticks(x, doms)
    ax.set_ylabel("sampling probability")
    ax.legend(fontsize=8)
    ax.set_title(f"balance: {plan['strategy']}, F(tau) = {_f_text(plan['F_tau'])}")
    if weighted:
        ax2 = axes[0, 1]
        wwidth = 0.8 / len(phases)
        for k, ph in enumerate(phases):
            ax2.bar(x - 0.4 + wwidth * (k + 0.5), [ph["loss_weights"][d] for d in doms], wwidth,
                    label=f"phase {k}", color=f"C{k}")
        ax2.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax2.set_xticks(x, doms)
        ax2.set_yscale("log")
        ax2.set_ylabel("loss weight")
        ax2.set_title("loss weights w_i = p_i(tau) / p_i(1)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
