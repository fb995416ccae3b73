"""Dynamic reward weighting in TRL's GRPOTrainer on moalign's default world (``dvc repro sft`` first).

    python examples/trl_dynamic_weights.py --strategy hypervolume          # GRPOTrainer + callback
    python examples/trl_dynamic_weights.py --strategy gradient             # the GRPOTrainer subclass
    python examples/trl_dynamic_weights.py --strategy fixed                # TRL's static reward_weights
    python examples/trl_dynamic_weights.py --strategy hypervolume --report-to mlflow --resume

Smoke run (seconds, any machine): ``--steps 2 --prompts 2 --group 2 --max-new-tokens 16 --val-rows 4``.
The defaults mirror ``params.yaml``'s train section (8 prompts x 8 rollouts, 128 new tokens, lr 1e-4,
KL 0.3, validation every 10 steps on 64 val prompts, 2 sampled decodes each). The rewards are
moalign's accuracy / conciseness / clarity as TRL reward functions; validation uses the built-in
path (the same reward functions on held-out prompts). Checkpoints every ``--save-every`` steps in
``--out``; ``--resume`` continues from the last one, weights and buffer included.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer
from transformers.trainer_utils import get_last_checkpoint

from moalign.integrations.trl import GradientWeightingGRPOTrainer, HypervolumeWeightingCallback, moalign_reward_funcs
from moalign.text import format_prompt

OBJECTIVES = ["accuracy", "conciseness", "clarity"]


def trl_rows(path: Path, n: int | None = None) -> datasets.Dataset:
    """A prepared split as TRL rows: ``prompt`` plus the columns the rewards read (answer, domain)."""
    ds = datasets.load_from_disk(str(path))
    ds = ds.select(range(min(n, len(ds)))) if n else ds
    return ds.map(lambda r: {"prompt": format_prompt(r["question"]), "answer": r["answer"], "domain": r["domain"]},
                  remove_columns=[c for c in ds.column_names if c not in ("answer", "domain")])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategy", choices=["fixed", "hypervolume", "gradient"], default="hypervolume")
    p.add_argument("--model", type=Path, default=Path("models/sft"))
    p.add_argument("--data", type=Path, default=Path("data/prepared"))
    p.add_argument("--out", type=Path, default=None, help="default: checkpoints/trl_example/<strategy>")
    p.add_argument("--weights", type=float, nargs=3, default=[1 / 3] * 3, help="initial accuracy conciseness clarity")
    p.add_argument("--aggregation", choices=["normalize_then_sum", "sum_then_normalize"], default="normalize_then_sum")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta", type=float, default=0.3, help="KL coefficient (moalign's train.kl_coef)")
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--val-rows", type=int, default=64)
    p.add_argument("--val-samples", type=int, default=2)
    p.add_argument("--save-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-to", default="none", help="none | mlflow | ... (TRL's report_to)")
    p.add_argument("--resume", action="store_true")
    a = p.parse_args()
    if not (a.model / "config.json").exists():
        raise SystemExit(f"no model in {a.model}. Fix: run `dvc repro sft` (or pass --model <HF folder>)")
    out = a.out or Path("checkpoints/trl_example") / a.strategy
    if a.report_to == "mlflow":
        os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "moalign-trl")

    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    args = GRPOConfig(
        output_dir=str(out), max_steps=a.steps, per_device_train_batch_size=a.prompts * a.group,
        num_generations=a.group, max_completion_length=a.max_new_tokens, learning_rate=a.lr, beta=a.beta,
        temperature=1.0, reward_weights=a.weights, multi_objective_aggregation=a.aggregation,
        logging_steps=1, save_strategy="steps", save_steps=a.save_every, report_to=a.report_to, seed=a.seed,
        use_cpu=not torch.cuda.is_available(), bf16=False, disable_tqdm=False, dataloader_num_workers=0)
    kw = dict(model=model, reward_funcs=moalign_reward_funcs(OBJECTIVES), args=args,
              train_dataset=trl_rows(a.data / "train"), processing_class=tok)
    val = trl_rows(a.data / "val", a.val_rows)
    knobs = {"eval_every": a.eval_every, "val_samples": a.val_samples, "val_seed": a.seed}
    if a.strategy == "gradient":
        trainer = GradientWeightingGRPOTrainer(**kw, weighting=knobs, validation=val)  # validation: pareto/* logs
    else:
        trainer = GRPOTrainer(**kw)
        if a.strategy == "hypervolume":
            trainer.add_callback(HypervolumeWeightingCallback(trainer, validation=val, config=knobs))
    resume = get_last_checkpoint(str(out)) if a.resume and out.exists() else None
    trainer.train(resume_from_checkpoint=resume)
    last = {k: v for h in trainer.state.log_history for k, v in h.items() if k.startswith(("weights/", "pareto/"))}
    print({"strategy": a.strategy, "reward_weights": trainer.reward_weights.tolist(), **last})


if __name__ == "__main__":
    main()
