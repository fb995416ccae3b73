"""Balance benchmark: the same SFT budget under each sampling strategy, several seeds.

Prints a per-domain table of validation exact-match accuracy and loss (like Table 4 of
"Upsample or Upweight?"), then the measured variance of minibatch gradients for
scalarization vs temperature sampling at the same tau (Theorem 2 / Figure 3).
Needs ``data/prepared`` (``dvc repro prepare``).

    python benchmarks/balance.py --steps 300 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import datasets
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moalign.balance import BalanceConfig, PhaseConfig, PlanSampler, build_plan  # noqa: E402
from moalign.modeling import load_policy, load_tokenizer  # noqa: E402
from moalign.sft import SFTConfig, collate, encode_rows, per_sequence_loss, train_sft, weighted_loss  # noqa: E402

STRATEGIES = {
    "tau=1": BalanceConfig(strategy="temperature", tau=1.0),
    "tau=5": BalanceConfig(strategy="temperature", tau=5.0),
    "tau=100": BalanceConfig(strategy="temperature", tau=100.0),
    "scalarization(tau=5)": BalanceConfig(strategy="scalarization", tau=5.0),
    "unimax": BalanceConfig(strategy="unimax", unimax_budget=10_000, unimax_max_epochs=4.0),
    "cooldown(5->1)": BalanceConfig(strategy="cooldown", schedule=[PhaseConfig(start=0.0, tau=5.0),
                                                                   PhaseConfig(start=0.5, tau=1.0)]),
}


def grad_variance(model, tok, encoded, sampler, n_batches: int) -> float:
    """E||g_b - mean g||^2 over minibatches drawn by ``sampler`` (weighted loss), at fixed parameters."""
    grads = []
    for b in range(n_batches):
        idx, w = sampler.batch(b)
        batch = collate([encoded[i] for i in idx], tok.pad_token_id)
        model.zero_grad()
        weighted_loss(per_sequence_loss(model, batch), torch.tensor(w)).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone())
    g = torch.stack(grads)
    return float(((g - g.mean(0)) ** 2).sum(1).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--eval-rows", type=int, default=48)
    ap.add_argument("--var-batches", type=int, default=24)
    ap.add_argument("--only", nargs="*", help="subset of strategies")
    a = ap.parse_args()
    torch.set_num_threads(2)
    prep = ROOT / "data/prepared"
    tok = load_tokenizer(prep / "model")
    train = datasets.load_from_disk(str(prep / "train"))
    val = list(datasets.load_from_disk(str(prep / "val")))
    by_dom: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(train["domain"]):
        by_dom[d].append(i)
    sizes = {d: len(v) for d, v in sorted(by_dom.items())}
    doms = sorted(sizes, key=lambda d: -sizes[d])
    val_rows = [r for d in doms for r in [x for x in val if x["domain"] == d][: a.eval_rows]]
    encoded = encode_rows(tok, list(train))
    cfg = SFTConfig(max_steps=a.steps, batch_size=a.batch_size, eval_every=a.steps, checkpoint_every=10**9,
                    warmup_steps=min(50, a.steps // 10))
    results: dict[str, list[dict]] = defaultdict(list)
    for name, bc in STRATEGIES.items():
        if a.only and name not in a.only:
            continue
        plan = build_plan(bc, sizes, a.steps * a.batch_size)
        for seed in a.seeds:
            torch.manual_seed(seed)
            model = load_policy(prep / "model", seed=seed)
            _, m = train_sft(model, tok, encoded, PlanSampler(plan, by_dom, a.steps, a.batch_size, seed), cfg, val_rows)
            results[name].append(m)
            print(f"done {name} seed {seed}: acc {m['eval/all/accuracy']:.3f}", flush=True)
    print(f"\nSFT budget: {a.steps} steps x {a.batch_size}; seeds {a.seeds}; sizes {sizes}")
    head = "| strategy | " + " | ".join(f"{d} acc" for d in doms) + " | " + " | ".join(f"{d} loss" for d in doms) + " |"
    print(head + "\n|" + "---|" * (1 + 2 * len(doms)))
    for name, ms in results.items():
        acc = [f"{np.mean([m[f'eval/{d}/accuracy'] for m in ms]):.3f}±{np.std([m[f'eval/{d}/accuracy'] for m in ms]):.3f}" for d in doms]
        loss = [f"{np.mean([m[f'eval/{d}/loss'] for m in ms]):.3f}" for d in doms]
        print(f"| {name} | " + " | ".join(acc) + " | " + " | ".join(loss) + " |")
    # Theorem 2: scalarization's minibatch gradients vary more than temperature sampling's at equal tau
    model = load_policy(prep / "model", seed=0)
    for tau in (2.0, 5.0):
        v = {}
        for kind in ("temperature", "scalarization"):
            plan = build_plan(BalanceConfig(strategy=kind, tau=tau), sizes, a.var_batches * a.batch_size)
            v[kind] = grad_variance(model, tok, encoded, PlanSampler(plan, by_dom, a.var_batches, a.batch_size, 0),
                                    a.var_batches)
        print(f"tau={tau}: grad variance scalarization/temperature = {v['scalarization'] / v['temperature']:.2f} "
              f"(F(tau) = {build_plan(BalanceConfig(strategy='scalarization', tau=tau), sizes, 1)['F_tau']:.2f})")


if __name__ == "__main__":
    main()
