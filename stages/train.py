"""train stage: ``python -m stages.train --strategy NAME`` -> models/train/NAME (policy, snapshots, history).

Runs on CPU here and on CUDA/bf16 through ``accelerate`` (``accelerate launch -m stages.train
--strategy NAME`` for several GPUs or processes; docs/scale-out.md). Resumable checkpoints live in
``checkpoints/train/NAME``. With several processes only rank 0 opens the MLflow run and writes
checkpoints, snapshots and outputs; the other ranks train in lockstep and write nothing.

A kill (SIGTERM/SIGINT) prints one line naming the last checkpoint (stages/_edge.py); the same
command resumes from it.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
import torch

from moalign import checkpoint
from moalign.config import Params, flatten
from moalign.io import atomic_path, write_json, write_text
from moalign.modeling import resolve_device, resolve_dtype
from moalign.plots import plot_curves
from moalign.rl.run import SFT, load_sft, training_rows
from moalign.rl.selection import cache_key
from moalign.rl.trainer import TrainResult, train
from moalign.tracking import stage_run
from stages._edge import seed_everything, stage_main

log = logging.getLogger("moalign.train")


def history_csv(res: TrainResult) -> str:
    """One row per step with every logged metric (the DVC plots source)."""
    keys = sorted({k for h in res.history for k in h} - {"step"})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["step", *keys])
    for h in res.history:
        w.writerow([h["step"], *[h.get(k, "") for k in keys]])
    return buf.getvalue()


def run(params: Params, strategy: str) -> dict[str, float]:
    cfg, base = params.train, params.base
    if strategy not in cfg.strategies:
        raise ValueError(f"--strategy {strategy!r} is not in train.strategies {cfg.strategies}. Fix: add it there")
    seed_everything(base.seed, base.threads)
    device = resolve_device(base.device)
    dtype = resolve_dtype(base.dtype, device)
    out, ckpt = Path("models/train") / strategy, Path("checkpoints/train") / strategy
    plots = Path("plots/train") / strategy
    logged = flatten(params.section("train"), "train") | {"base.seed": base.seed, "strategy": strategy}
    tags = {"moalign.strategy": strategy, "moalign.estimator": cfg.estimator,
            "moalign.weighting": strategy.partition("-")[0]}
    from accelerate import Accelerator

    bf16 = dtype == torch.bfloat16 and device.type == "cuda"
    acc = Accelerator(cpu=device.type == "cpu", mixed_precision="bf16" if bf16 else "no")
    # one MLflow run per strategy: ranks > 0 track nothing
    tracking = base.tracking if acc.is_main_process else base.tracking.model_copy(update={"enabled": False})
    with stage_run("train", tracking, logged, run_name=f"train@{strategy}", tags=tags) as tr:
        # the one loading path, shared with `moalign study` (moalign/rl/run.py)
        tok, model, ref = load_sft(params, cfg, acc.device, dtype)
        train_rows, val_rows = training_rows(cfg)
        weights = SFT / "model.safetensors"
        sft_mtime = weights.stat().st_mtime_ns if weights.exists() else 0  # which SFT policy (checkpoints, pass rates)
        fp = checkpoint.fingerprint({"train": params.section("train"), "strategy": strategy, "seed": base.seed,
                                     "sft": sft_mtime})
        snaps = Path("checkpoints/train") / f"{strategy}-snapshots"
        if acc.is_main_process and checkpoint.latest(ckpt, fp) is None:
            checkpoint.clear(snaps)  # snapshots of an unfinished run with other params
        acc.wait_for_everyone()

        def snapshot(step: int, policy) -> None:
            with atomic_path(snaps / f"step-{step:05d}") as tmp:
                policy.save_pretrained(tmp, safe_serialization=True)

        sel = None  # pass rates of the SFT policy, measured once for every strategy (moalign/rl/selection.py)
        if cfg.prompt_selection.enabled:
            sel = Path("checkpoints/selection") / f"{cache_key(cfg, base.seed, str(sft_mtime))}.json"
        res = train(cfg, strategy, model, tok, train_rows, val_rows, base.seed, accelerator=acc, ref_model=ref,
                    ckpt_dir=ckpt, fingerprint=fp, log_fn=tr.log_metrics, snapshot_fn=snapshot, selection_cache=sel)
        if not acc.is_main_process:
            return {}
        final = {k: v for k, v in res.history[-1].items() if k != "step"}
        # what made the hypervolume uninformative (weighting.py, (5)): numeric flags, as DVC metrics want
        final |= {f"degenerate/{o}": 1.0 for o in res.degenerate.get("adjusted", [])}
        if res.degenerate.get("zero_hypervolume"):
            final["degenerate/zero_hypervolume"] = 1.0
        # train.prompt_selection: what was measured and kept (pool, in_band, kept, mean rates, fallback)
        final |= {f"selection/{k}": float(v) for k, v in res.selection.items() if isinstance(v, (int, float))}
        with atomic_path(out) as tmp:
            acc.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            (tmp / "snapshots").mkdir()
            for d in sorted(snaps.glob("step-*")):
                d.rename(tmp / "snapshots" / d.name)
            write_json(tmp / "history.json", {"strategy": strategy, "objectives": cfg.objectives,
                                              "history": res.history, "validation": res.validation,
                                              "weights": res.weights, "initial_weights": res.initial_weights,
                                              "final_weights": res.final_weights, "selection": res.selection})
        write_json(Path("metrics/train") / f"{strategy}.json", final)
        write_text(plots / "history.csv", history_csv(res))
        steps = [h["step"] for h in res.history]
        plot_curves({o: list(zip(steps, [h[f"weights/{o}"] for h in res.history])) for o in cfg.objectives},
                    plots / "weights.png", f"weights ({strategy})", "weight")
        plot_curves({o: list(zip(steps, [h[f"rewards/{o}/mean"] for h in res.history])) for o in cfg.objectives},
                    plots / "rewards.png", f"rollout rewards ({strategy})", "mean reward")
        for f in ("weights.png", "rewards.png", "history.csv"):
            tr.log_artifact(plots / f, "plots")
        tr.log_artifact(out / "history.json")
        checkpoint.clear(ckpt)
        checkpoint.clear(snaps)
        first = res.validation[0]["point"]
        last = res.validation[-1]["point"]
        log.info("%s: validation point %s -> %s", strategy, np.round(first, 3), np.round(last, 3))
        return final


def main(argv: list[str] | None = None) -> int:
    return stage_main("train", run, argv, extra=lambda p: p.add_argument("--strategy", required=True))


if __name__ == "__main__":
    raise SystemExit(main())
