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
import torch
from tqdm.auto import tqdm

from moalign import checkpoint
from moalign.balance import PlanSampler
from moalign.config import Params, flatten
from moalign.io import atomic_path, read_json, write_json
from moalign.modeling import load_policy, load_tokenizer, resolve_device, resolve_dtype
from moalign.plots import plot_curves
from moalign.sft import collate, encode_rows, evaluate_policy, lr_lambda, per_sequence_loss, weighted_loss
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


def eval_rows(val: datasets.Dataset, per_domain: int) -> list[dict]:
    seen: dict[str, int] = defaultdict(int)
    rows = []
    for r in val:
        if seen[r["domain"]] < per_domain:
            seen[r["domain"]] += 1
            rows.append(r)
    return rows


def run(params: Params) -> dict[str, float]:
    cfg, base = params.sft, params.base
    seed_everything(base.seed, base.threads)
    device = resolve_device(base.device)
    dtype = resolve_dtype(base.dtype, device)
    logged = flatten(params.section("sft"), "sft") | flatten(params.section("balance"), "balance") | {"base.seed": base.seed}
    with stage_run("sft", base.tracking, logged) as tr:
        train = datasets.load_from_disk(str(PREPARED / "train"))
        val_rows = eval_rows(datasets.load_from_disk(str(PREPARED / "val")), cfg.eval_rows)
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
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, cfg.max_steps))
        fp = checkpoint.fingerprint({"sft": params.section("sft"), "plan": plan, "seed": base.seed,
                                     "model": policy_source(params), "rows": len(train)})
        start, history = 0, []
        state = checkpoint.latest(CKPT, fp)
        if state:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            checkpoint.set_rng_state(state["rng"])
            start, history = state["step"], state["history"]
            log.info("resuming from checkpoint at step %d", start)
        metrics: dict[str, float] = {}
        for step in tqdm(range(start, cfg.max_steps), initial=start, total=cfg.max_steps, desc="sft", mininterval=5):
            idx, weights = sampler.batch(step)
            batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], tok.pad_token_id).items()}
            loss = weighted_loss(per_sequence_loss(model, batch), torch.tensor(weights, device=device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            done = step + 1
            if done % 10 == 0 or done == cfg.max_steps:
                tr.log_metrics({"losses/train": loss.item(), "charts/grad_norm": float(gnorm),
                                "charts/lr": sched.get_last_lr()[0], "charts/phase": sampler.phase_at(step)}, step=done)
            if done % cfg.eval_every == 0 or done == cfg.max_steps:
                metrics = evaluate_policy(model, tok, val_rows, cfg.max_new_tokens)
                history.append({"step": done, **metrics})
                tr.log_metrics(metrics, step=done)
                log.info("step %d: %s", done, {k: round(v, 3) for k, v in metrics.items() if "/all/" in k})
            if done % cfg.checkpoint_every == 0 and done < cfg.max_steps:
                checkpoint.save(CKPT, done, fp, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                 "scheduler": sched.state_dict(), "history": history})
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
