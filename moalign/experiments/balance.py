"""Balance benchmark: "Upsample or Upweight?" strategies at one SFT budget, over seeds.

Trains a small policy from scratch on ``data/prepared`` (the default world: es/fr/de questions in
their own number words, 100x long tail; ``dvc repro prepare``) under each configuration, and
records per-domain validation loss (and train loss on a fixed probe of train rows) every
``--curve-every`` steps, then greedy exact-answer accuracy on ``--eval-rows`` val rows per
domain at the end. Configurations:

- the paper's comparison: ``tau=1``, ``tau=5``, ``tau=100``, ``scalarization(tau=5)``,
  ``unimax`` (budget = steps x batch, 4 epochs), ``cooldown(5->1)`` (tau=5 first half, then 1);
- the world's measurements: ``en-only`` (trained on ``en`` rows alone: how much does the smallest
  domain need its own data?) and ``tau=100-long`` (``--long-steps``: does the smallest domain
  overfit, val loss up while train loss falls?).

The model is smaller than the stage's default (``--hidden``/``--layers``) so that 3 seeds of
everything fit in about 90 minutes on 2 CPU cores. Each finished run is appended to
``<out>/runs.jsonl`` (a rerun skips what is there; ``--summary-only`` only re-summarises);
tables are printed (mean ± sample sd over seeds) and written to ``<out>/summary.csv``, the
curves to ``<out>/curves.csv`` and ``<out>/curves.png``. Finally the minibatch-gradient variance
of scalarization over temperature sampling at equal tau (Theorem 2) is measured (``<out>/grad_variance.json``;
records made before that file existed have it only in the ``summary.md`` their run printed).

    # the paper's comparison, 1600 steps x 16 sequences, 3 seeds (~50 min on one thread)
    python -m moalign.experiments.balance
    # the world's measurements at half the budget (~30 min): en-only, tau=1 lag, tau=100 overfitting
    python -m moalign.experiments.balance --steps 800 --long-steps 1600 --out benchmarks/results/balance_800 \
        --configs tau=1 tau=100 "cooldown(5->1)" en-only tau=100-long
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from moalign.experiments import ROOT
from moalign.runlog import RunLog

MAIN = ["tau=1", "tau=5", "tau=100", "scalarization(tau=5)", "unimax", "cooldown(5->1)"]
WORLD = ["en-only", "tau=100-long"]


def balance_config(name: str, budget: int):
    from moalign.balance import BalanceConfig, PhaseConfig

    if name in ("tau=1", "en-only"):
        return BalanceConfig(strategy="temperature", tau=1.0)
    if name == "tau=5":
        return BalanceConfig(strategy="temperature", tau=5.0)
    if name in ("tau=100", "tau=100-long"):
        return BalanceConfig(strategy="temperature", tau=100.0)
    if name == "scalarization(tau=5)":
        return BalanceConfig(strategy="scalarization", tau=5.0)
    if name == "unimax":
        return BalanceConfig(strategy="unimax", unimax_budget=budget, unimax_max_epochs=4.0)
    if name == "cooldown(5->1)":
        return BalanceConfig(strategy="cooldown", schedule=[PhaseConfig(start=0.0, tau=5.0),
                                                            PhaseConfig(start=0.5, tau=1.0)])
    raise ValueError(f"unknown configuration {name!r}; valid: {', '.join(MAIN + WORLD)}")


class World:
    """data/prepared loaded once: tokenizer, encoded train rows, per-domain indices, val and probe rows."""

    def __init__(self, eval_rows: int) -> None:
        import datasets

        from moalign.modeling import load_tokenizer
        from moalign.sft import encode_rows

        prep = ROOT / "data/prepared"
        self.tok = load_tokenizer(prep / "model")
        train = list(datasets.load_from_disk(str(prep / "train")))
        val = list(datasets.load_from_disk(str(prep / "val")))
        self.by_dom: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(train):
            self.by_dom[r["domain"]].append(i)
        self.sizes = {d: len(v) for d, v in sorted(self.by_dom.items())}
        self.doms = sorted(self.sizes, key=lambda d: -self.sizes[d])
        self.val = [r for d in self.doms for r in [x for x in val if x["domain"] == d][:eval_rows]]
        self.probe = [train[i] for d in self.doms for i in self.by_dom[d][:eval_rows]]  # train-loss probe
        self.encoded = encode_rows(self.tok, train)


def make_model(world: World, a, seed: int):
    import torch
    from transformers import AutoModelForCausalLM

    from moalign.modeling import tiny_config

    torch.manual_seed(seed)
    cfg = tiny_config("llama", len(world.tok), a.hidden, a.layers, a.heads, 320, world.tok)
    return AutoModelForCausalLM.from_config(cfg)


def one_run(world: World, a, name: str, seed: int) -> dict:
    from moalign.balance import PlanSampler, build_plan
    from moalign.sft import SFTConfig, train_sft

    steps = a.long_steps if name == "tau=100-long" else a.steps
    sizes = {"en": world.sizes["en"]} if name == "en-only" else world.sizes
    by_dom = {d: world.by_dom[d] for d in sizes}
    plan = build_plan(balance_config(name, steps * a.batch_size), sizes, steps * a.batch_size)
    cfg = SFTConfig(max_steps=steps, batch_size=a.batch_size, lr=a.lr, eval_every=steps, checkpoint_every=10**9,
                    warmup_steps=min(50, steps // 10), val_loss_every=a.curve_every,
                    max_new_tokens=a.max_new_tokens)
    model = make_model(world, a, seed)
    t0 = time.time()
    history, m = train_sft(model, world.tok, world.encoded, PlanSampler(plan, by_dom, steps, a.batch_size, seed), cfg,
                           world.val, curve_rows={"val_loss": world.val, "train_loss": world.probe})
    return {"config": name, "seed": seed, "steps": steps, "batch_size": a.batch_size, "wall_s": time.time() - t0,
            "hidden": a.hidden, "layers": a.layers, "sizes": world.sizes, "expected_epochs": plan["expected_epochs"],
            "curve": [h for h in history if "val_loss/en" in h], "final": m}


def ms(xs) -> str:
    xs = np.asarray(xs, dtype=float)
    return f"{xs.mean():.3f}±{xs.std(ddof=1) if len(xs) > 1 else 0.0:.3f}"


def by_config(runs: list[dict]) -> dict[str, list[dict]]:
    """config -> its runs (seeds), in the order of MAIN + WORLD."""
    by = defaultdict(list)
    for r in runs:
        by[r["config"]].append(r)
    return {c: by[c] for c in MAIN + WORLD if c in by}


def domains(runs: list[dict]) -> list[str]:
    """The domains of the records, largest first."""
    return sorted(runs[0]["sizes"], key=lambda d: -runs[0]["sizes"][d])


def final_table(runs: list[dict], doms: list[str], wall: bool = True) -> list[str]:
    """Markdown: final validation loss and greedy accuracy per domain, mean ± sd over seeds, per config."""
    out = ["| config | steps | " + " | ".join(f"{d} loss" for d in doms) + " | " + " | ".join(f"{d} acc" for d in doms)
           + (" | wall s/run |" if wall else " |"), "|" + "---|" * (2 + 2 * len(doms) + wall)]
    for c, rs in by_config(runs).items():
        loss = [ms([r["final"][f"eval/{d}/loss"] for r in rs]) for d in doms]
        acc = [ms([r["final"][f"eval/{d}/accuracy"] for r in rs]) for d in doms]
        out.append(f"| {c} | {rs[0]['steps']} | " + " | ".join(loss) + " | " + " | ".join(acc)
                   + (f" | {np.mean([r['wall_s'] for r in rs]):.0f} |" if wall else " |"))
    return out


def curve(rs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values of shape (seeds, steps)) of one curve key, e.g. ``val_loss/de``."""
    return np.array([h["step"] for h in rs[0]["curve"]]), np.array([[h[key] for h in r["curve"]] for r in rs])


def training_table(runs: list[dict], doms: list[str]) -> list[str]:
    """Markdown, per config and domain: val loss at 25% of the steps, its minimum (mean step), final, the upturn
    (final - min) and the final train-probe loss, mean ± sd over seeds."""
    out = ["| config | domain | val @25% | min val (step) | final val | upturn | train probe final |",
           "|---|---|---|---|---|---|---|"]
    for c, rs in by_config(runs).items():
        for d in doms:
            steps, v = curve(rs, f"val_loss/{d}")
            q = int(np.searchsorted(steps, steps[-1] // 4))
            tr = [r["curve"][-1][f"train_loss/{d}"] for r in rs]
            out.append(f"| {c} | {d} | {ms(v[:, q])} | {ms(v.min(1))} ({np.mean(steps[v.argmin(1)]):.0f}) | "
                       f"{ms(v[:, -1])} | {ms(v[:, -1] - v.min(1))} | {ms(tr)} |")
    return out


def summarise(runs: list[dict], doms: list[str], out: Path) -> None:
    from moalign.io import write_text
    from moalign.plots import _plt

    by = by_config(runs)
    order = list(by)
    seeds = {c: sorted(r["seed"] for r in by[c]) for c in order}
    print(f"\nsizes {runs[0]['sizes']}; model {runs[0]['hidden']}x{runs[0]['layers']}; "
          f"batch {runs[0]['batch_size']}; seeds per config {seeds}")
    print("\nFinal validation loss / accuracy (mean ± sd over seeds):")
    print("\n".join(final_table(runs, doms)))
    rows = ["config,steps,seeds,domain,val_loss_mean,val_loss_sd,acc_mean,acc_sd,min_val_loss_mean,"
            "min_val_loss_step_mean,train_probe_loss_mean,expected_epochs"]
    for c in order:
        rs = by[c]
        for d in doms:
            vl = [r["final"][f"eval/{d}/loss"] for r in rs]
            ac = [r["final"][f"eval/{d}/accuracy"] for r in rs]
            mins = [min(r["curve"], key=lambda h: h[f"val_loss/{d}"]) for r in rs]
            sd = lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0  # noqa: E731
            rows.append(f"{c},{rs[0]['steps']},{len(rs)},{d},{np.mean(vl):.4f},{sd(vl):.4f},{np.mean(ac):.4f},"
                        f"{sd(ac):.4f},{np.mean([h[f'val_loss/{d}'] for h in mins]):.4f},"
                        f"{np.mean([h['step'] for h in mins]):.0f},"
                        f"{np.mean([r['curve'][-1][f'train_loss/{d}'] for r in rs]):.4f},"
                        f"{rs[0]['expected_epochs'].get(d, 0.0):.2f}")
    write_text(out / "summary.csv", "\n".join(rows) + "\n")
    # over training: early (25% of the steps) and best val loss, and the upturn after the best point
    print("\nOver training, per domain: val loss at 25% of the steps / min (at step) / final; upturn = final - min;"
          " train-probe loss final (mean ± sd over seeds):")
    print("\n".join(training_table(runs, doms)))
    # curves: mean (and sd) over seeds per config, domain, step
    lines = ["config,step,domain,val_loss_mean,val_loss_sd,train_loss_mean"]
    curves: dict[str, dict[str, list]] = {}
    for c in order:
        steps = [h["step"] for h in by[c][0]["curve"]]
        curves[c] = {"step": steps}
        for d in doms:
            v = np.array([[h[f"val_loss/{d}"] for h in r["curve"]] for r in by[c]])  # (S, T)
            t = np.array([[h[f"train_loss/{d}"] for h in r["curve"]] for r in by[c]])
            curves[c][d] = (v.mean(0), v.std(0, ddof=1) if len(v) > 1 else np.zeros(v.shape[1]), t.mean(0))
            lines += [f"{c},{s},{d},{m:.4f},{e:.4f},{tm:.4f}" for s, m, e, tm in zip(steps, *curves[c][d])]
    write_text(out / "curves.csv", "\n".join(lines) + "\n")
    plt = _plt()
    fig, axes = plt.subplots(2, len(doms), figsize=(4 * len(doms), 7))
    for j, d in enumerate(doms):
        for c in order:
            ax = axes[0 if c in MAIN else 1, j]
            m, e, tm = curves[c][d]
            (ln,) = ax.plot(curves[c]["step"], m, label=c)
            ax.fill_between(curves[c]["step"], m - e, m + e, alpha=0.15, color=ln.get_color())
            if c in WORLD or c == "tau=1":
                ax2 = axes[1, j]
                if c == "tau=1":
                    ax2.plot(curves[c]["step"], m, label=c, color="gray")
                ax2.plot(curves[c]["step"], tm, ls=":", color=ax2.lines[-1].get_color(), label=f"{c} (train probe)")
        for i in range(2):
            axes[i, j].set_title(f"{d} (n={runs[0]['sizes'][d]})")
            axes[i, j].set_xlabel("step")
            axes[i, j].grid(alpha=0.3)
    for ax in axes.flat:  # the first points (loss ~7 at step 0) would flatten the differences
        lines = [ln.get_ydata() for ln in ax.lines]
        if lines:
            lo = min(float(np.min(y)) for y in lines)
            hi = max(max(float(y[min(len(y) - 1, 3)]), float(y[-1])) for y in lines)
            ax.set_ylim(lo - 0.05 * (hi - lo), hi)
    axes[0, 0].set_ylabel("validation loss (strategies)")
    axes[1, 0].set_ylabel("val (solid) / train probe (dotted)")
    axes[0, -1].legend(fontsize=7)
    axes[1, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png.tmp.png", dpi=110)
    plt.close(fig)
    (out / "curves.png.tmp.png").replace(out / "curves.png")


def grad_variance(world: World, a) -> dict[str, dict[str, float]]:
    """Theorem 2: E||g_b - mean g||^2 of scalarization over temperature sampling, same tau, fixed weights.
    Returns {tau: {"ratio": scalarization / temperature, "F_tau": F(tau)}} (written to grad_variance.json)."""
    import torch

    from moalign.balance import BalanceConfig, PlanSampler, build_plan
    from moalign.sft import collate, sequence_ce, weighted_token_loss

    model = make_model(world, a, 0)
    res = {}
    for tau in (2.0, 5.0):
        v = {}
        for kind in ("temperature", "scalarization"):
            plan = build_plan(BalanceConfig(strategy=kind, tau=tau), world.sizes, a.var_batches * a.batch_size)
            sampler = PlanSampler(plan, world.by_dom, a.var_batches, a.batch_size, 0)
            grads = []
            for b in range(a.var_batches):
                idx, w = sampler.batch(b)
                model.zero_grad()
                weighted_token_loss(*sequence_ce(model, collate([world.encoded[i] for i in idx], world.tok.pad_token_id)),
                                    torch.tensor(w)).backward()
                grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone())
            g = torch.stack(grads)
            v[kind] = float(((g - g.mean(0)) ** 2).sum(1).mean())
        f = build_plan(BalanceConfig(strategy="scalarization", tau=tau), world.sizes, 1)["F_tau"]
        print(f"tau={tau}: grad variance scalarization/temperature = {v['scalarization'] / v['temperature']:.2f} "
              f"(F(tau) = {f:.2f})")
        res[str(tau)] = {"ratio": v["scalarization"] / v["temperature"], "F_tau": f}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=MAIN, help=f"subset of {MAIN + WORLD}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1600, help="SFT steps of every configuration but tau=100-long")
    ap.add_argument("--long-steps", type=int, default=1600, help="SFT steps of tau=100-long")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=64, help="model width (the stage default is 128)")
    ap.add_argument("--layers", type=int, default=2, help="model depth (the stage default is 4)")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--eval-rows", type=int, default=48, help="val rows (and train-probe rows) per domain")
    ap.add_argument("--curve-every", type=int, default=50, help="steps between per-domain loss points")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="greedy budget of the final accuracy")
    ap.add_argument("--var-batches", type=int, default=24, help="minibatches for the gradient variance (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/balance")
    ap.add_argument("--summary-only", action="store_true")
    a = ap.parse_args()
    out = ROOT / a.out
    log = RunLog(out)
    runs = log.runs
    if a.summary_only:  # no torch, no data: the records alone
        runs = [r for r in runs if r["seed"] in a.seeds and r["config"] in a.configs]
        summarise(runs, sorted(runs[0]["sizes"], key=lambda d: -runs[0]["sizes"][d]), out)
        return
    import torch

    torch.set_num_threads(a.threads)
    world = World(a.eval_rows)
    done = {(r["config"], r["seed"]) for r in runs}
    todo = [(c, s) for c in a.configs for s in a.seeds if (c, s) not in done]
    t_all = time.time()
    for c, s in ([] if a.summary_only else todo):
        rec = one_run(world, a, c, s)
        log.add(rec)
        print(f"{c} seed {s}: {rec['wall_s']:.0f}s, val loss "
              + " ".join(f"{d} {rec['final'][f'eval/{d}/loss']:.3f}" for d in world.doms)
              + ", acc " + " ".join(f"{d} {rec['final'][f'eval/{d}/accuracy']:.2f}" for d in world.doms), flush=True)
    if todo and not a.summary_only:
        print(f"wall time of this invocation: {time.time() - t_all:.0f}s")
    runs = [r for r in runs if r["seed"] in a.seeds and r["config"] in a.configs]
    if runs:
        summarise(runs, world.doms, out)
    if a.var_batches and not a.summary_only:
        from moalign.io import write_json

        taus = grad_variance(world, a)
        write_json(out / "grad_variance.json", {"batches": a.var_batches, "batch_size": a.batch_size,
                                                 "hidden": a.hidden, "layers": a.layers, "taus": taus})


if __name__ == "__main__":
    main()
