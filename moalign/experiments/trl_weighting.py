"""TRL's GRPOTrainer with static reward weights vs the two dynamic strategies of moalign.integrations.trl.

Three sides, the same budget, seeds and starting policy (``--model``, default ``models/sft``):

- ``static``: TRL's ``GRPOTrainer`` with constant ``reward_weights`` (train.weighting's start,
  balanced by default) - what TRL offers today;
- ``hypervolume``: the same trainer plus ``HypervolumeWeightingCallback``;
- ``gradient``: ``GradientWeightingGRPOTrainer``.

TRL is configured from params.yaml's train section (``--steps`` and ``--set key=value`` override it,
as in rl_efficiency.py): B*G rollouts per step, ``kl_coef`` -> ``beta``, ``clip_eps`` -> ``epsilon``,
``grad_clip`` -> ``max_grad_norm``, ``aggregation`` -> ``multi_objective_aggregation``, constant lr,
AdamW betas (0.9, 0.99); TRL's own rollouts (``generate``), loss (``dapo``, a token mean like
ours) and group normalisation. Every side logs validation points with our trainer's definition
(``moalign.rl.trainer.validation_point``: ``val_samples`` sampled decodes of ``val_rows`` val
prompts, conciseness = 1 - length/max_new_tokens), so the hypervolume strategy sees what
train@hypervolume sees and every side has a validation-HV curve. Each final policy is scored on the
test split with evaluate's measurement (``score_policy``: ``--samples`` sampled decodes per prompt,
``--test-rows`` prompts per domain). Reported: per side, mean ± standard error over seeds of each
test objective, length and hypervolume (reference: origin), the mean prompt-clustered standard error
within a run, and the paired (same seed) difference of each dynamic side from ``static``.

Each finished run is appended to ``<out>/runs.jsonl`` (a rerun skips what is there; moalign/runlog.py);
the table goes to stdout and ``<out>/summary.csv``.

    python -m moalign.experiments.trl_weighting --seeds 0 1 2 --steps 40
    python -m moalign.experiments.trl_weighting --seeds 0 --steps 2 --samples 1 --test-rows 1 --out /tmp/trl_smoke \\
        --set prompts_per_step=2 group_size=2 max_new_tokens=16 val_rows=4 eval_every=1   # smoke
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from moalign.experiments import ROOT
from moalign.experiments.rl_efficiency import experiment_params
from moalign.runlog import RunLog

SIDES = ("static", "hypervolume", "gradient")


def trl_config(cfg, out: Path, seed: int, weights: list[float]):
    import torch
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out), max_steps=cfg.max_steps, per_device_train_batch_size=cfg.prompts_per_step * cfg.group_size,
        num_generations=cfg.group_size, max_completion_length=cfg.max_new_tokens, temperature=cfg.temperature,
        top_p=cfg.top_p, learning_rate=cfg.lr, lr_scheduler_type="constant", adam_beta2=0.99,
        weight_decay=cfg.weight_decay, beta=cfg.kl_coef, epsilon=cfg.clip_eps, max_grad_norm=cfg.grad_clip,
        reward_weights=weights, multi_objective_aggregation=cfg.aggregation, scale_rewards="group",
        logging_steps=1, save_strategy="no", report_to="none", seed=seed, disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), bf16=False, dataloader_num_workers=0)


def one_run(side: str, seed: int, a) -> dict:
    """Train one (side, seed) with TRL and score its final policy; returns a JSON-able record."""
    import datasets
    import torch
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    from moalign.evaluate import pick_rows, score_policy
    from moalign.integrations.trl import (GradientWeightingGRPOTrainer, RewardWeightingCallback,
                                          moalign_reward_funcs)
    from moalign.modeling import load_policy, load_tokenizer
    from moalign.pareto import hypervolume
    from moalign.rl.rewards import make_reward
    from moalign.rl.trainer import step_seed, validation_point
    from moalign.rl.weighting import initial_weights
    from moalign.text import format_prompt

    torch.set_num_threads(a.threads)
    torch.manual_seed(seed)
    cfg = experiment_params(a.steps, a.set).train
    tok, policy = load_tokenizer(a.model), load_policy(a.model)
    prepared = ROOT / a.data if not Path(a.data).is_absolute() else Path(a.data)
    train_rows = datasets.load_from_disk(str(prepared / "train"))
    train_ds = train_rows.map(lambda r: {"prompt": format_prompt(r["question"])})
    val_rows = list(datasets.load_from_disk(str(prepared / "val")))[: cfg.val_rows]
    fns = {o: make_reward(o, **cfg.reward_options.get(o, {})) for o in cfg.objectives}  # validation only

    def point(model, step: int) -> np.ndarray:  # our trainer's validation point; the RNG of TRL untouched
        with torch.random.fork_rng():
            return validation_point(model, tok, cfg, fns, val_rows, step_seed(seed, step, 2000))

    w0 = initial_weights(cfg.objectives, cfg.weighting).tolist()
    kw = dict(model=policy, reward_funcs=moalign_reward_funcs(cfg.objectives, cfg.reward_options),
              args=trl_config(cfg, Path(a.work) / f"{side}-{seed}", seed, w0), train_dataset=train_ds,
              processing_class=tok)
    knobs = {"weighting": cfg.weighting.model_dump(), "eval_every": cfg.eval_every, "grad_layers": cfg.grad_layers,
             "grad_every": cfg.grad_every}
    if side == "gradient":
        trainer = GradientWeightingGRPOTrainer(**kw, weighting=knobs, validation=point)
        cb = trainer.weighting_callback
    else:
        trainer = GRPOTrainer(**kw)
        cb = RewardWeightingCallback(trainer, "fixed" if side == "static" else "hypervolume", knobs, point)
        trainer.add_callback(cb)
    trainer.remove_callback(PrinterCallback)  # TRL prints every log dict when tqdm is off
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    model = trainer.accelerator.unwrap_model(trainer.model)
    test = pick_rows(list(datasets.load_from_disk(str(prepared / "test"))), a.test_rows)
    sc = score_policy(model, tok, test, cfg.objectives, {o: f for o, f in fns.items() if not o.startswith("conciseness")},
                      cfg.max_new_tokens, cfg.generation_backend, samples=a.samples, temperature=cfg.temperature,
                      seed=seed)
    hist = trainer.state.log_history
    return {"side": side, "seed": seed, "steps": cfg.max_steps, "objectives": cfg.objectives,
            "aggregation": cfg.aggregation, "test_point": sc["point"], "test_se": sc["se"],
            "test_length": sc["length"], "test_styles": sc["styles"],
            "test_hv": hypervolume(np.asarray([sc["point"]]), np.zeros(len(cfg.objectives))),
            "initial_weights": w0, "final_weights": cb.weights().tolist(), "weights": cb.history["weights"],
            "validation": [{"step": v["step"], "point": v["point"], "hypervolume": v["hypervolume"]}
                           for v in cb.history["validation"]],
            "rollout_accuracy": [h.get("rewards/accuracy/mean") for h in hist if "rewards/accuracy/mean" in h],
            "rollout_length": [h.get("completions/mean_length") for h in hist if "completions/mean_length" in h],
            "train_seconds": seconds}


def mse(x) -> str:
    """mean ± standard error over seeds."""
    x = np.asarray(x, dtype=float)
    return f"{x.mean():.3f}±{x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else 0.0:.3f}"


def summarise(runs: list[dict], out: Path) -> None:
    import pandas as pd

    objs = runs[0]["objectives"]
    rows = [{"side": r["side"], "seed": r["seed"], **dict(zip(objs, r["test_point"])),
             **{f"se_{o}": s for o, s in zip(objs, r["test_se"])}, "length": r["test_length"],
             "hypervolume": r["test_hv"], "val_hv_final": r["validation"][-1]["hypervolume"],
             **{f"w_{o}": w for o, w in zip(objs, r["final_weights"])}} for r in runs]
    df = pd.DataFrame(rows).sort_values(["side", "seed"])
    df.to_csv(out / "summary.csv", index=False)
    seeds = sorted(int(s) for s in df.seed.unique())
    print(f"\nTRL GRPOTrainer, seeds {seeds}, {runs[0]['steps']} steps, {runs[0]['aggregation']}; test split, expected "
          "rewards of sampled decodes: mean ± s.e. over seeds [mean prompt-clustered s.e. within a run]")
    print("| side | " + " | ".join(objs) + " | length | test HV | final val HV | final weights |")
    print("|---" * (len(objs) + 5) + "|")
    sides = [s for s in SIDES if s in set(df.side)]
    for s in sides:
        d = df[df.side == s]
        w = " / ".join(f"{d[f'w_{o}'].mean():.2f}" for o in objs)
        print(f"| {s} | " + " | ".join(f"{mse(d[o])} [{d[f'se_{o}'].mean():.3f}]" for o in objs) +
              f" | {mse(d.length)} | {mse(d.hypervolume)} | {mse(d.val_hv_final)} | {w} |")
    if "static" in sides:
        base = df[df.side == "static"].set_index("seed")
        print("\npaired difference from static (same seed): mean ± s.e. over seeds")
        print("| side | " + " | ".join(objs) + " | length | test HV |")
        print("|---" * (len(objs) + 3) + "|")
        for s in sides:
            if s == "static":
                continue
            d = df[df.side == s].set_index("seed")
            common = d.index.intersection(base.index)
            cols = objs + ["length", "hypervolume"]
            diff = d.loc[common][cols] - base.loc[common][cols]
            print(f"| {s} | " + " | ".join(mse(diff[c]) for c in cols) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=40, help="override train.max_steps")
    ap.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    ap.add_argument("--set", nargs="*", default=[], help="train overrides, e.g. kl_coef=0.05 eval_every=5")
    ap.add_argument("--model", type=Path, default=ROOT / "models/sft")
    ap.add_argument("--data", default="data/prepared", help="prepared splits (relative to the repo root or absolute)")
    ap.add_argument("--samples", type=int, default=4, help="sampled decodes per test prompt")
    ap.add_argument("--test-rows", type=int, default=32, help="test prompts per domain")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--out", default="benchmarks/results/trl_weighting")
    ap.add_argument("--work", default="checkpoints/bench_trl_weighting", help="TRL output_dir root (no checkpoints)")
    ap.add_argument("--summary-only", action="store_true")
    a = ap.parse_args()
    if not a.summary_only and not (a.model / "config.json").exists():
        raise SystemExit(f"no policy in {a.model}. Fix: run `dvc repro sft` (the policy every side starts from)")
    out = ROOT / a.out
    log = RunLog(out)
    done = {(r["side"], r["seed"]) for r in log.runs}
    for seed in a.seeds:
        for side in a.sides:
            if a.summary_only or (side, seed) in done:
                continue
            rec = one_run(side, seed, a)
            log.add(rec)
            print(f"seed {seed} {side}: test point {np.round(rec['test_point'], 3)} length {rec['test_length']:.1f} "
                  f"weights {np.round(rec['final_weights'], 3)}", flush=True)
    runs = [r for r in log.runs if r["seed"] in a.seeds and r["side"] in a.sides]
    if runs:
        summarise(runs, out)


if __name__ == "__main__":
    main()
