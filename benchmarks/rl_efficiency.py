"""RL efficiency: fixed weights (best of the three presets) vs hypervolume-guided vs gradient-based.

For each seed, trains each strategy from ``models/sft`` with the train section of params.yaml
(overridable below) and records the validation hypervolume per validation step (reference =
the SFT policy's point). Reports each strategy's final hypervolume and the first step at which
it reaches the best fixed preset's final hypervolume (the paper's "steps to the front").

    python benchmarks/rl_efficiency.py --seeds 0 1 2 --steps 40
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import datasets
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moalign.config import load_params  # noqa: E402
from moalign.modeling import load_policy, load_tokenizer  # noqa: E402
from moalign.pareto import first_step_reaching  # noqa: E402
from moalign.rl.trainer import train  # noqa: E402


def hv_curve(res) -> list[tuple[int, float]]:
    return [(v["step"], float(v.get("hypervolume", 0.0))) for v in res.validation]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="override train.max_steps")
    ap.add_argument("--estimator", default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    params = load_params(ROOT / "params.yaml")
    base_cfg = params.train
    upd = {k: v for k, v in {"max_steps": a.steps, "estimator": a.estimator}.items() if v is not None}
    sft = ROOT / "models/sft"
    tok = load_tokenizer(sft)
    policy0 = load_policy(sft)
    rows = list(datasets.load_from_disk(str(ROOT / "data/prepared/train")))
    val = list(datasets.load_from_disk(str(ROOT / "data/prepared/val")))[: base_cfg.val_rows]
    runs = {f"fixed:{p}": ("fixed", {"preset": p}) for p in ("accuracy", "balanced", "efficiency")}
    runs |= {"hypervolume": ("hypervolume", {}), "gradient": ("gradient", {})}
    table: dict[str, list[list[tuple[int, float]]]] = {k: [] for k in runs}
    for seed in a.seeds:
        for name, (strategy, w) in runs.items():
            cfg = base_cfg.model_copy(update={**upd, "weighting": base_cfg.weighting.model_copy(update=w)})
            res = train(cfg, strategy, copy.deepcopy(policy0), tok, rows, val, seed)
            table[name].append(hv_curve(res))
            print(f"seed {seed} {name}: final HV {table[name][-1][-1][1]:.4f}", flush=True)
    finals = {k: np.array([c[-1][1] for c in v]) for k, v in table.items()}
    best_fixed = max((k for k in finals if k.startswith("fixed:")), key=lambda k: finals[k].mean())
    print(f"\nbest fixed preset: {best_fixed}; seeds {a.seeds}; steps {cfg.max_steps}; estimator {cfg.estimator}")
    print("| strategy | final HV (mean±sd) | steps to best-fixed final HV (per seed) | mean steps (reached) |")
    print("|---|---|---|---|")
    for k, curves in table.items():
        steps = [first_step_reaching(c, target) for c, target in zip(curves, finals[best_fixed])]
        reached = [s for s in steps if s is not None]
        mean = f"{np.mean(reached):.1f} ({len(reached)}/{len(steps)})" if reached else f"- (0/{len(steps)})"
        print(f"| {k} | {finals[k].mean():.4f}±{finals[k].std():.4f} | {steps} | {mean} |")


if __name__ == "__main__":
    main()
