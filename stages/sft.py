"""sft stage: train the policy on the balance plan's mixture; save it to models/sft.

Per-domain validation loss is logged every ``sft.val_loss_every`` steps (MLflow metric
``val_loss/<domain>``) and written to ``plots/sft/domain_val_loss.csv`` (``step,<domain>,...``;
a DVC plot, so ``dvc plots diff`` compares balance strategies) and ``domain_val_loss.png``.

Checkpoints go to ``checkpoints/sft`` every ``sft.checkpoint_every`` steps; a rerun with
the same params resumes from the newest one (DVC deletes ``models/sft`` before a rerun,
so checkpoints cannot live there).

With ``sft.lora.enabled`` the adapters are merged into ``models/sft`` and the LoRA settings are
recorded beside it (``moalign_lora.json``): the train stage then trains fresh adapters on it.
A pretrained model (``prepare.model.name_or_path``) met with tiny-model settings (``sft.lr``,
full-parameter training of > 100M parameters on CPU) gets a one-line warning naming the fix.
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
from moalign.guards import warn_pretrained
from moalign.io import atomic_path, read_json, write_json, write_text
from moalign.modeling import add_lora, load_policy, load_tokenizer, resolve_device, resolve_dtype, save_lora_settings
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
DOMAIN_CSV = PLOTS / "domain_val_loss.csv"
log = logging.getLogger("moalign.sft")


def policy_source(params: Params) -> str:
    """The model to start from: the user's HF model, else the tiny config from prepare."""
    return params.prepare.model.name_or_path or str(PREPARED / "model")


def domain_loss_csv(history: list[dict]) -> str:
    """The per-domain validation-loss curves as CSV: ``step,<domain>,...``, one row per curve point."""
    points = [h for h in history if any(k.startswith("val_loss/") for k in h)]
    doms = sorted({k.split("/", 1)[1] for h in points for k in h if k.startswith("val_loss/")})
    lines = ["step," + ",".join(doms)]
    lines += [f"{h['step']}," + ",".join(f"{h[f'val_loss/{d}']:.6f}" if f"val_loss/{d}" in h else "" for d in doms)
              for h in points]
    return "\n".join(lines) + "\n"


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
        warn_pretrained("sft", bool(params.prepare.model.name_or_path), cfg.lr, cfg.lora.enabled, model, device)
        if cfg.lora.enabled:
            model = add_lora(model, cfg.lora.model_dump())
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
            if cfg.lora.enabled:  # the train stage trains LoRA adapters on this policy too
                save_lora_settings(tmp, cfg.lora.model_dump())
        final = {k.replace("eval/", ""): v for k, v in metrics.items()}
        write_json(METRICS, final)
        write_json(PLOTS / "history.json", history)
        keys = sorted({k for h in history for k in h if k.endswith("/accuracy")})
        plot_curves({k.split("/")[1]: [(h["step"], h[k]) for h in history if k in h] for k in keys},
                    PLOTS / "accuracy.png", "SFT validation accuracy per domain", "exact match")
        write_text(DOMAIN_CSV, domain_loss_csv(history))
        loss_keys = sorted({k for h in history for k in h if k.startswith("val_loss/")})
        plot_curves({k.split("/")[1]: [(h["step"], h[k]) for h in history if k in h] for k in loss_keys},
                    PLOTS / "domain_val_loss.png", "SFT validation loss per domain", "loss (nats/token)")
        for f in (METRICS, PLOTS / "accuracy.png", DOMAIN_CSV, PLOTS / "domain_val_loss.png", PLAN):
            tr.log_artifact(f)
        checkpoint.clear(CKPT)
        return final


def main(argv: list[str] | None = None) -> int:
    return stage_main("sft", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
