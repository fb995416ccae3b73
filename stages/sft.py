"""sft stage: train the policy on the balance plan's mixture; save it to models/sft.

Checkpoints go to ``checkpoints/sft`` every ``sft.checkpoint_every`` steps; a rerun with
the same params resumes from the newest one (DVC deletes ``models/sft`` before a rerun,
so checkpoints cannot live there).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import datasets

from moalign import checkpoint
from moalign.balance import PlanSampler
from moalign.config import Params, flatten
from moalign.data import rows_per_domain
from moalign.io import atomic_path, read_json, write_json
from moalign.modeling import load_policy, load_tokenizer, resolve_device, resolve_dtype
from moalign.plots import plot_curves
from moalign.sft import encode_rows, train_sft
from moalign.tracking import stage_run
from stages._edge import seed_everything, stage_main

PREPARED = Path("data/prepared")
PLAN = Path("data/balanced/plan.json")
OUT = Path("models/sft")
CKPT = Path("checkpoints/sft")
METRICS = Path("metrics/sft.json")
PLOTS = Path("plots/sft")
log = logging.getLogger("moalign.sft")


def policy_source(params: Params) -> str:
    """The model to start from: the user's HF model, else the tiny config from prepare."""
    return params.prepare.model.name_or_path or str(PREPARED / "model")


def run(params: Params) -> dict[str, float]:
    cfg, base = params.sft, params.base
    seed_everything(base.seed, base.threads)
    device = resolve_device(base.device)
    dtype = resolve_dtype(base.dtype, device)
    logged = flatten(params.section("sft"), "sft") | flatten(params.section("balance"), "balance") | {"base.seed": base.seed}
    with stage_run("sft", base.tracking, logged) as tr:
        train = datasets.load_from_disk(str(PREPARED / "train"))
        val_rows = rows_per_domain(datasets.load_from_disk(str(PREPARED / "val")), cfg.eval_rows)
        plan = read_json(PLAN)
        tok = load_tokenizer(PREPARED / "model")
        model = load_policy(policy_source(params), dtype=dtype, seed=base.seed).to(device)
        if cfg.lora.enabled:
            from peft import LoraConfig as PeftLora, get_peft_model

            lc = cfg.lora
            model = get_peft_model(model, PeftLora(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                                   target_modules=lc.target_modules, task_type="CAUSAL_LM"))
        model.train()
        domains = train["domain"]
        by_domain: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(domains):
            by_domain[d].append(i)
        sampler = PlanSampler(plan, by_domain, cfg.max_steps, cfg.batch_size, base.seed)
        encoded = encode_rows(tok, list(train))
        fp = checkpoint.fingerprint({"sft": params.section("sft"), "plan": plan, "seed": base.seed,
                                     "model": policy_source(params), "rows": len(train)})
        history, metrics = train_sft(model, tok, encoded, sampler, cfg, val_rows, tr.log_metrics, CKPT, fp)
        if cfg.lora.enabled:
            model = model.merge_and_unload()
        with atomic_path(OUT) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
        final = {k.replace("eval/", ""): v for k, v in metrics.items()}
        write_json(METRICS, final)
        write_json(PLOTS / "history.json", history)
        keys = sorted({k for h in history for k in h if k.endswith("/accuracy")})
        plot_curves({k.split("/")[1]: [(h["step"], h[k]) for h in history] for k in keys},
                    PLOTS / "accuracy.png", "SFT validation accuracy per domain", "exact match")
        for f in (METRICS, PLOTS / "accuracy.png", PLAN):
            tr.log_artifact(f)
        checkpoint.clear(CKPT)
        return final


def main(argv: list[str] | None = None) -> int:
    return stage_main("sft", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
