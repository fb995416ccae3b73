"""Does rubric refinement show in RL? The policy trained on the rubric reward, initial vs refined meta-rubric.

For each seed, trains the SFT policy (``models/sft``) twice with the train stage's trainer and
the train section of params.yaml, identical except for the rubric the reward reads:
``initial`` = ``rubric.meta`` (the generic, detail-loving meta-rubric) and ``refined`` =
``rubrics/refined.yaml`` (the rubric stage's output; run ``dvc repro rubric`` first). The
objectives are ``[accuracy, rubric]`` with weights ``[0, 1]``: only the rubric reward (pairwise
judgement against an anchor of the group + PVR score, moalign/rubric/reward.py) drives the
update; accuracy is logged, not trained on. Same seeds, steps, prompts per step, group size and
KL as each other.

Recorded per step (``<out>/curves.csv``, ``<out>/curves.png``): rollout accuracy, rollout
length (tokens) and rubric reward. At the end each policy is scored on test prompts
(``--samples`` sampled decodes each): accuracy, length, both rubrics' rewards (so each policy
is also judged by the rubric it was *not* trained on), the hidden criterion of the annotator
(``honest_working`` share: +1 clean working, 0 bare answer, -1 a defect) and the style shares;
``<out>/summary.csv`` and ``<out>/runs.jsonl`` hold them. The question: does the generic rubric
get length-hacked (length up, accuracy and honesty not), and does the refined one resist?

    python -m moalign.experiments.rubric_rl                # defaults: seed 0, 80 steps, both rubrics (~17 min on 2 busy cores)
    python -m moalign.experiments.rubric_rl --seeds 0 1 --steps 100 --set kl_coef=0.05
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from moalign.experiments import ROOT
from moalign.runlog import RunLog

CURVES = ("rewards/accuracy/mean", "charts/completion_length", "rewards/rubric/mean")


def rubric_paths(params) -> dict[str, Path]:
    """initial = the meta-rubric the rubric stage starts from; refined = its output."""
    return {"initial": ROOT / params.rubric.meta, "refined": ROOT / "rubrics/refined.yaml"}


def one_run(job: dict) -> dict:
    """Train one (rubric, seed) from SFT and score the final policy; returns a JSON-able record."""
    import datasets

    from moalign.evaluate import pick_rows, score_policy
    from moalign.rl.rewards import make_reward
    from moalign.rl.run import train_from_sft
    from moalign.rubric.annotators import honest_working
    from moalign.config import load_params
    from moalign.experiments.rl_efficiency import experiment_params

    paths = {k: str(v) for k, v in rubric_paths(load_params(ROOT / "params.yaml")).items()}
    sets = ["objectives=[accuracy, rubric]", "weighting.weights=[0.0, 1.0]",
            f"reward_options={json.dumps({'rubric': {'rubric_path': paths[job['rubric']]}})}",
            f"eval_every={job['steps']}", *job["set"]]
    params = experiment_params(job["steps"], sets)
    cfg = params.train
    t0 = time.time()
    policy, tok, res = train_from_sft(params, "fixed", job["seed"], root=ROOT, threads=job["threads"])
    train_s = time.time() - t0
    test = pick_rows(list(datasets.load_from_disk(str(ROOT / "data/prepared/test"))), job["test_rows"])
    fns = {"accuracy": make_reward("accuracy"),
           **{f"rubric_{k}": make_reward("rubric", rubric_path=p) for k, p in paths.items()},
           "honesty": lambda completions, **_: [float(honest_working(c)) for c in completions]}
    sc = score_policy(policy, tok, test, list(fns), fns, cfg.max_new_tokens, samples=job["samples"],
                      temperature=cfg.temperature, seed=job["seed"])
    return {"rubric": job["rubric"], "seed": job["seed"], "steps": cfg.max_steps, "train_s": train_s,
            "test": dict(zip(fns, sc["point"])), "test_se": dict(zip(fns, sc["se"])), "test_length": sc["length"],
            "test_styles": sc["styles"], "examples": sc["examples"][:3],
            "curves": {k: [h.get(k) for h in res.history] for k in CURVES}}


def summary_row(r: dict) -> dict:
    """One run's row of summary.csv: rollout curves as the mean of the first / last 5 steps, the test scores."""
    c = r["curves"]
    first = {k: float(np.mean(v[:5])) for k, v in c.items()}
    last = {k: float(np.mean(v[-5:])) for k, v in c.items()}
    return {"rubric": r["rubric"], "seed": r["seed"], "steps": r["steps"], "train_s": round(r["train_s"], 1),
            "roll_len_first5": first[CURVES[1]], "roll_len_last5": last[CURVES[1]],
            "roll_acc_first5": first[CURVES[0]], "roll_acc_last5": last[CURVES[0]],
            "roll_rubric_first5": first[CURVES[2]], "roll_rubric_last5": last[CURVES[2]],
            **{f"test_{k}": v for k, v in r["test"].items()}, "test_length": r["test_length"],
            **{f"style_{k}": v for k, v in r["test_styles"].items()}}


def summarise(runs: list[dict], out: Path) -> None:
    """Print the table (markdown) and write summary.csv, curves.csv and curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame([summary_row(r) for r in runs])
    df.to_csv(out / "summary.csv", index=False)
    long = [{"rubric": r["rubric"], "seed": r["seed"], "step": i + 1,
             **{k: r["curves"][k][i] for k in CURVES}} for r in runs for i in range(len(r["curves"][CURVES[0]]))]
    pd.DataFrame(long).to_csv(out / "curves.csv", index=False)
    cols = ["roll_len_first5", "roll_len_last5", "roll_acc_first5", "roll_acc_last5", "roll_rubric_first5",
            "roll_rubric_last5", "test_accuracy", "test_length", "test_honesty", "test_rubric_initial",
            "test_rubric_refined"]
    print(f"\nseeds {sorted(df.seed.unique())}; steps {runs[0]['steps']}; rollout curves: mean of the first / last "
          "5 steps; test: expected rewards of sampled decodes")
    print("| rubric | " + " | ".join(cols) + " | styles terse/outline/worked |")
    print("|---" * (len(cols) + 2) + "|")
    for name, d in df.groupby("rubric", sort=False):
        st = " / ".join(f"{d[f'style_{k}'].mean():.2f}" for k in ("terse", "outline", "worked") if f"style_{k}" in d)
        print(f"| {name} | " + " | ".join(f"{d[c].mean():.3f}" for c in cols) + f" | {st} |")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, k, title in zip(axes, CURVES, ("rollout accuracy", "rollout length (tokens)", "rubric reward")):
        for i, r in enumerate(runs):
            v = np.asarray(r["curves"][k], dtype=float)
            sm = np.convolve(v, np.ones(5) / 5, mode="valid") if len(v) >= 5 else v
            ax.plot(np.arange(len(sm)) + (len(v) - len(sm)) + 1, sm, color="C0" if r["rubric"] == "initial" else "C1",
                    alpha=0.8, label=f"{r['rubric']} (seed {r['seed']})")
        ax.set_title(title + " (5-step mean)")
        ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=80, help="RL steps per run (train.max_steps)")
    ap.add_argument("--rubrics", nargs="+", default=["initial", "refined"], choices=["initial", "refined"])
    ap.add_argument("--set", nargs="*", default=[], help="train overrides, e.g. kl_coef=0.05 group_size=8")
    ap.add_argument("--samples", type=int, default=2, help="sampled decodes per test prompt")
    ap.add_argument("--test-rows", type=int, default=16, help="test prompts per domain")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (runs are sequential)")
    ap.add_argument("--out", default="benchmarks/results/rubric_rl")
    ap.add_argument("--summary-only", action="store_true")
    a = ap.parse_args()
    from moalign.config import load_params

    out = ROOT / a.out
    log = RunLog(out)
    done = log.runs
    if not a.summary_only:
        missing = [k for k, p in rubric_paths(load_params(ROOT / "params.yaml")).items()
                   if k in a.rubrics and not p.exists()]
        if missing:
            raise SystemExit(f"rubric file(s) for {missing} not found. Fix: run `dvc repro rubric` first")
        have = {(r["rubric"], r["seed"], r["steps"]) for r in done}
        for seed in a.seeds:
            for rub in a.rubrics:
                if (rub, seed, a.steps) in have:
                    continue
                job = {"rubric": rub, "seed": seed, "steps": a.steps, "set": a.set, "samples": a.samples,
                       "test_rows": a.test_rows, "threads": a.threads}
                t0 = time.time()
                rec = one_run(job)
                print(f"{rub} seed {seed}: {time.time() - t0:.0f}s", flush=True)
                log.add(rec)
    runs = [r for r in done if r["steps"] == a.steps and r["seed"] in a.seeds and r["rubric"] in a.rubrics]
    if runs:
        summarise(runs, out)


if __name__ == "__main__":
    main()
