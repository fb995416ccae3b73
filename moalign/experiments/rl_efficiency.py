"""RL efficiency and the front: fixed presets vs hypervolume-guided vs gradient-based weighting, over seeds.

For each seed, trains every strategy of ``train.strategies`` (default: fixed-accuracy,
fixed-balanced, fixed-efficiency, hypervolume, gradient) from ``models/sft`` with the train
section of params.yaml (``--steps`` and ``--set key=value`` override it), then scores each final
policy on the test split with evaluate's measurement (expected rewards of ``--samples`` sampled
decodes per prompt). Reports, as mean ± sd over seeds:

- the final test point (accuracy, length, clarity) and its hypervolume (reference: origin);
- ``weight_shift`` = max_k |w_final - w_initial| and the final weights;
- the paper's efficiency claim: the first validation step at which each strategy's validation
  hypervolume reaches the best fixed preset's final validation hypervolume, paired by seed.

Each finished run is appended to ``<out>/runs.jsonl`` (a rerun skips what is there), then the
tables are printed and written to ``<out>/summary.csv``, ``<out>/weights.png`` and
``<out>/front.png``. ``--jobs 2`` runs two trainings at once with one torch thread each (2 cores).

    python -m moalign.experiments.rl_efficiency --seeds 0 1 2 --steps 150 --jobs 2
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from moalign.experiments import ROOT
from moalign.runlog import RunLog


def experiment_params(steps: int | None, sets: list[str]):
    """params.yaml with ``--steps`` and ``--set`` overrides of the train section, in ``-S``'s syntax
    (moalign.config.apply_sets; ``key=value`` means ``train.key=value``), validated."""
    import yaml

    from moalign.config import Params, apply_sets

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    items = [s if s.startswith("train.") else f"train.{s}" for s in sets]
    return Params(apply_sets(raw, items + ([f"train.max_steps={steps}"] if steps else [])))


def one_run(job: dict) -> dict:
    """Train one (strategy, seed) and score its final policy; returns a JSON-able record."""
    import datasets

    from moalign.evaluate import pick_rows, score_policy
    from moalign.pareto import hypervolume
    from moalign.rl.rewards import scoring_rewards
    from moalign.rl.run import train_from_sft

    params = experiment_params(job["steps"], job["set"])
    cfg = params.train
    policy, tok, res = train_from_sft(params, job["strategy"], job["seed"], root=ROOT, threads=job["threads"])
    test = pick_rows(list(datasets.load_from_disk(str(ROOT / "data/prepared/test"))), job["test_rows"])
    fns = scoring_rewards(cfg)  # with train.reward_options, as the evaluate stage and the study score
    sc = score_policy(policy, tok, test, cfg.objectives, fns, cfg.max_new_tokens, samples=job["samples"],
                      temperature=cfg.temperature, seed=job["seed"])
    hv = hypervolume(np.asarray([sc["point"]]), np.zeros(len(cfg.objectives)))
    return {"strategy": job["strategy"], "seed": job["seed"], "steps": cfg.max_steps, "objectives": cfg.objectives,
            "test_point": sc["point"], "test_se": sc["se"], "test_length": sc["length"], "test_hv": hv,
            "test_styles": sc["styles"],
            "initial_weights": res.initial_weights, "final_weights": res.final_weights,
            "weights": res.weights, "validation": [{"step": v["step"], "point": v["point"],
                                                    "hypervolume": v.get("hypervolume", 0.0)} for v in res.validation],
            "rollout_length": [h["charts/completion_length"] for h in res.history],
            "rollout_accuracy": [h.get("rewards/accuracy/mean") for h in res.history],
            "influence_shares": [[h.get(f"influence_share/{o}") for o in cfg.objectives] for h in res.history],
            "kl": [h.get("losses/kl") for h in res.history]}


STYLES = ("terse", "outline", "worked")


def ms(x, d: int = 3) -> str:
    """mean±sd (sample sd) of ``x``; one value: the value alone."""
    x = np.asarray(x, dtype=float)
    return f"{x.mean():.{d}f}" if len(x) == 1 else f"{x.mean():.{d}f}±{x.std(ddof=1):.{d}f}"


def weight_shift(r: dict) -> float:
    return float(np.abs(np.subtract(r["final_weights"], r["initial_weights"])).max())


def strategy_table(runs: list[dict], label=None, weights: bool = True, key: str = "strategy",
                   extra: dict | None = None) -> list[str]:
    """Markdown table of the final test points: one row per ``label(run)`` (default: the strategy), in order
    of first appearance, mean±sd over its runs (seeds); ``weights`` adds weight_shift and the final weights,
    ``extra`` more columns ({header: f(runs of the row) -> cell})."""
    label = label or (lambda r: r["strategy"])
    objs = runs[0]["objectives"]
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(label(r), []).append(r)
    extra = extra or {}
    head = [key, *objs, "length", "test HV", *(["weight_shift", "final weights"] if weights else []),
            "styles terse / outline / worked", *extra]
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for n, rs in groups.items():
        cells = [ms([r["test_point"][k] for r in rs]) for k in range(len(objs))]
        cells += [ms([r["test_length"] for r in rs], 1), ms([r["test_hv"] for r in rs])]
        if weights:
            cells += [ms([weight_shift(r) for r in rs], 2),
                      " / ".join(f"{np.mean([r['final_weights'][k] for r in rs]):.2f}" for k in range(len(objs)))]
        st = [np.mean([r["test_styles"][k] for r in rs]) for k in STYLES
              if all(k in r.get("test_styles", {}) for r in rs)]
        cells.append(" / ".join(f"{x:.2f}" for x in st) or "-")
        cells += [f(rs) for f in extra.values()]
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    return out


def best_fixed(runs: list[dict]) -> str | None:
    """The fixed preset with the largest mean final validation hypervolume (None without presets)."""
    fixed = list(dict.fromkeys(r["strategy"] for r in runs if r["strategy"].startswith("fixed")))
    return max(fixed, key=lambda n: np.mean([r["validation"][-1]["hypervolume"] for r in runs if r["strategy"] == n]),
               default=None)


def reach(runs: list[dict]) -> dict[str, dict[int, tuple[int | None, float | None]]]:
    """strategy -> seed -> (first validation step reaching the best fixed preset's final validation HV on that
    seed, that step / the best preset's own first such step): the paper's efficiency claim, paired by seed."""
    from moalign.pareto import first_step_reaching

    best = best_fixed(runs)
    by = {(r["strategy"], r["seed"]): r for r in runs}
    out: dict[str, dict[int, tuple[int | None, float | None]]] = {}
    for n in dict.fromkeys(r["strategy"] for r in runs):
        for s in sorted({r["seed"] for r in runs}):
            if best is None or (n, s) not in by or (best, s) not in by:
                continue
            target = by[(best, s)]["validation"][-1]["hypervolume"]
            own = first_step_reaching([(v["step"], v["hypervolume"]) for v in by[(best, s)]["validation"]], target)
            st = first_step_reaching([(v["step"], v["hypervolume"]) for v in by[(n, s)]["validation"]], target)
            out.setdefault(n, {})[s] = (st, None if st is None or not own else round(st / own, 2))
    return out


def reach_table(runs: list[dict]) -> list[str]:
    """Markdown table of :func:`reach`."""
    out = ["| strategy | first step reaching best-fixed final val HV (per seed) | mean (reached) | "
           "ratio to best fixed's own step (per seed) |", "|---|---|---|---|"]
    for n, per in reach(runs).items():
        steps = [st for st, _ in per.values()]
        got = [x for x in steps if x is not None]
        mean = f"{np.mean(got):.0f} ({len(got)}/{len(steps)})" if got else f"- (0/{len(steps)})"
        out.append(f"| {n} | {', '.join(str(x) if x is not None else 'never' for x in steps)} | {mean} | "
                   f"{', '.join(str(q) if q is not None else '-' for _, q in per.values())} |")
    return out


def summarise(runs: list[dict], out: Path) -> None:
    """Print the tables (markdown) and write summary.csv and the figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    objs = runs[0]["objectives"]
    names = list(dict.fromkeys(r["strategy"] for r in runs))
    by = {(r["strategy"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    rows = []
    for r in runs:
        rows.append({"strategy": r["strategy"], "seed": r["seed"], **dict(zip(objs, r["test_point"])),
                     "length": r["test_length"], "hypervolume": r["test_hv"], "weight_shift": weight_shift(r),
                     "val_hv_final": r["validation"][-1]["hypervolume"],
                     **{f"style_{k}": v for k, v in r.get("test_styles", {}).items()},
                     **{f"w_{o}": w for o, w in zip(objs, r["final_weights"])}})
    df = pd.DataFrame(rows)
    df.to_csv(out / "summary.csv", index=False)
    print(f"\nseeds {seeds}; steps {runs[0]['steps']}; test: expected rewards of sampled decodes (mean ± sd over seeds)")
    print("\n".join(strategy_table(runs)))
    if best_fixed(runs):
        print(f"\nbest fixed preset by final validation HV: {best_fixed(runs)}")
        print("\n".join(reach_table(runs)))
    fig, axes = plt.subplots(1, len(objs), figsize=(4 * len(objs), 3.2), sharey=True)
    for k, (ax, o) in enumerate(zip(np.atleast_1d(axes), objs)):
        for n in names:
            if n.startswith("fixed"):
                continue
            for s in seeds:
                if (n, s) in by:
                    w = np.asarray(by[(n, s)]["weights"])
                    ax.plot(np.arange(1, len(w) + 1), w[:, k], color="C0" if n == "gradient" else "C1", alpha=0.7,
                            label=n if s == seeds[0] else None)
        ax.set_title(f"weight of {o}")
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "weights.png", dpi=110)
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, n in enumerate(names):
        d = df[df.strategy == n]
        ax.errorbar(d.length.mean(), d.accuracy.mean(), xerr=d.length.std(ddof=1), yerr=d.accuracy.std(ddof=1),
                    fmt="o", color=f"C{i}", label=n, capsize=3)
    ax.set_xlabel("mean length (tokens)")
    ax.set_ylabel("accuracy (expected, test)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "front.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="override train.max_steps")
    ap.add_argument("--strategies", nargs="+", default=None, help="default: train.strategies")
    ap.add_argument("--set", nargs="*", default=[], help="train overrides, e.g. kl_coef=0.05 weighting.grad_step=1")
    ap.add_argument("--samples", type=int, default=4, help="sampled decodes per test prompt")
    ap.add_argument("--test-rows", type=int, default=32, help="test prompts per domain")
    ap.add_argument("--jobs", type=int, default=1, help="trainings at once (threads split over 2 cores)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per training (default 2 // jobs)")
    ap.add_argument("--out", default="benchmarks/results/rl_efficiency")
    ap.add_argument("--summary-only", action="store_true")
    a = ap.parse_args()
    from moalign.config import load_params

    out = ROOT / a.out
    log = RunLog(out)
    runs = log.runs
    strategies = a.strategies or load_params(ROOT / "params.yaml").train.strategies
    done = {(r["strategy"], r["seed"]) for r in runs}
    jobs = [{"strategy": s, "seed": seed, "steps": a.steps, "set": a.set, "samples": a.samples,
             "test_rows": a.test_rows, "threads": a.threads or max(1, 2 // a.jobs)}
            for seed in a.seeds for s in strategies if (s, seed) not in done]
    if not a.summary_only and jobs:
        with ProcessPoolExecutor(a.jobs) as ex:
            for rec in ex.map(one_run, jobs):
                log.add(rec)
                print(f"seed {rec['seed']} {rec['strategy']}: test point {np.round(rec['test_point'], 3)} "
                      f"length {rec['test_length']:.1f} weights {np.round(rec['final_weights'], 3)}", flush=True)
    runs = [r for r in runs if r["seed"] in a.seeds and r["strategy"] in strategies]
    if runs:
        summarise(runs, out)


if __name__ == "__main__":
    main()
