"""Summary of benchmarks/weighting_study.py: ``summary.json``, ``weights.png``, ``front.png`` from the run records.

Everything the README says about the study is computed here (and rendered by benchmarks/report.py), so the
numbers come from the committed ``runs.jsonl`` files and cannot drift from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PRESETS = ["fixed-accuracy", "fixed-balanced", "fixed-efficiency"]


def _runs(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _ms(x) -> dict[str, float]:
    x = np.asarray(x, dtype=float)
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if len(x) > 1 else 0.0, "n": int(len(x))}


def first_reach(curve: list[dict], target: float) -> int | None:
    for v in sorted(curve, key=lambda v: v["step"]):
        if v["hypervolume"] >= target:
            return int(v["step"])
    return None


def table(runs: list[dict]) -> dict[str, dict]:
    """Per strategy: mean/sd over seeds of each objective, length, HV, weight shift; mean within-run SEs."""
    objs = runs[0]["objectives"]
    out = {}
    for s in dict.fromkeys(r["strategy"] for r in runs):
        rs = sorted((r for r in runs if r["strategy"] == s), key=lambda r: r["seed"])
        out[s] = {"seeds": [r["seed"] for r in rs],
                  **{o: _ms([r["point"][k] for r in rs]) for k, o in enumerate(objs)},
                  **{f"{o}_se": float(np.mean([r["se"][k] for r in rs])) for k, o in enumerate(objs)},
                  "length": _ms([r["length"] for r in rs]), "length_se": float(np.mean([r["length_se"] for r in rs])),
                  "hypervolume": _ms([r["hypervolume"] for r in rs]),
                  "weight_shift": _ms([np.abs(np.subtract(r["final_weights"], r["initial_weights"])).max() for r in rs]),
                  "final_weights": [float(np.mean([r["final_weights"][k] for r in rs])) for k in range(len(objs))],
                  "styles": {k: float(np.mean([r["styles"].get(k, np.nan) for r in rs]))
                             for k in ("terse", "outline", "worked")},
                  "value": rs[0].get("value")}
    return out


def paired(runs: list[dict], best: str) -> dict[str, dict]:
    """Per strategy, per seed differences with ``best`` (HV, accuracy, length) and steps-to-reach its final val HV."""
    objs = runs[0]["objectives"]
    by = {(r["strategy"], r["seed"]): r for r in runs}
    out = {}
    for s in dict.fromkeys(r["strategy"] for r in runs):
        seeds = sorted(seed for (n, seed) in by if n == s and (best, seed) in by)
        d = {"seeds": seeds}
        for key, get in (("hypervolume", lambda r: r["hypervolume"]), ("accuracy", lambda r: r["point"][objs.index("accuracy")]),
                         ("length", lambda r: r["length"])):
            diffs = [get(by[(s, seed)]) - get(by[(best, seed)]) for seed in seeds]
            d[key] = {**_ms(diffs), "wins": int(sum(x > 0 for x in diffs))} if diffs else None
        reach, ratio = [], []
        for seed in seeds:
            target = by[(best, seed)]["validation"][-1]["hypervolume"]
            st = first_reach(by[(s, seed)]["validation"], target)
            own = first_reach(by[(best, seed)]["validation"], target)
            reach.append(st)
            ratio.append(None if st is None or not own else round(st / own, 2))
        d["steps_to_best_fixed"] = reach
        d["ratio_to_best_fixed_steps"] = ratio
        d["comparable_validation"] = not s.endswith("-paper")  # paper: greedy, raw tokens, another reference
        out[s] = d
    return out


def decisions(tab: dict, pair: dict, best: str) -> list[dict]:
    """Rows of the README's decision table, each computed from the study (goal, pick, evidence)."""
    rows = []
    acc = max(tab, key=lambda s: tab[s]["accuracy"]["mean"])
    short = min(tab, key=lambda s: tab[s]["length"]["mean"])
    hv = max(tab, key=lambda s: tab[s]["hypervolume"]["mean"])
    rows.append({"goal": "highest accuracy", "pick": acc, "mean": tab[acc]["accuracy"]["mean"],
                 "sd": tab[acc]["accuracy"]["sd"], "metric": "accuracy"})
    rows.append({"goal": "shortest answers", "pick": short, "mean": tab[short]["length"]["mean"],
                 "sd": tab[short]["length"]["sd"], "metric": "length"})
    rows.append({"goal": "largest hypervolume (all three objectives)", "pick": hv, "mean": tab[hv]["hypervolume"]["mean"],
                 "sd": tab[hv]["hypervolume"]["sd"], "metric": "hypervolume"})
    for s in ("hypervolume", "gradient", "hypervolume-paper", "gradient-paper"):
        if s not in pair or pair[s]["hypervolume"] is None:
            continue
        p = pair[s]["hypervolume"]
        helps = p["mean"] > 0 and p["wins"] > len(pair[s]["seeds"]) / 2 and p["mean"] > p["sd"] / np.sqrt(max(p["n"], 1))
        rows.append({"goal": f"does {s} beat {best} (test HV, paired)?", "pick": "yes" if helps else "no",
                     "mean": p["mean"], "sd": p["sd"], "wins": p["wins"], "n": p["n"], "metric": "hv_diff"})
    return rows


def figures(runs: list[dict], tab: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objs = runs[0]["objectives"]
    dyn = [s for s in tab if not s.startswith("fixed")]
    fig, axes = plt.subplots(1, len(objs), figsize=(4.2 * len(objs), 3.3), sharey=True)
    for k, (ax, o) in enumerate(zip(np.atleast_1d(axes), objs)):
        for i, s in enumerate(dyn):
            w = np.asarray([r["weights"] for r in runs if r["strategy"] == s])  # (seeds, steps, K)
            if not w.size:
                continue
            x = np.arange(1, w.shape[1] + 1)
            ax.plot(x, w[:, :, k].mean(0), color=f"C{i}", label=s)
            ax.fill_between(x, w[:, :, k].min(0), w[:, :, k].max(0), color=f"C{i}", alpha=0.2)
        ax.set_title(f"weight of {o} (mean, min-max over seeds)")
        ax.set_xlabel("step")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "weights.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for i, s in enumerate(tab):
        t = tab[s]
        ax.errorbar(t["length"]["mean"], t["accuracy"]["mean"], xerr=t["length"]["sd"], yerr=t["accuracy"]["sd"],
                    fmt="o", color=f"C{i}", label=s, capsize=3)
    ax.set_xlabel("mean length (tokens, test)")
    ax.set_ylabel("accuracy (expected, test)")
    ax.set_title("mean +- sd over seeds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "front.png", dpi=110)
    plt.close(fig)


def summarise(out: Path) -> dict:
    runs = _runs(out / "study" / "runs.jsonl")
    if not runs:
        raise SystemExit(f"no study runs in {out / 'study'}: run the study phase first")
    tab = table(runs)
    fixed = [s for s in PRESETS if s in tab]
    best = max(fixed, key=lambda s: tab[s]["hypervolume"]["mean"])
    pair = paired(runs, best)
    chosen = json.loads((out / "calibration" / "chosen.json").read_text()) \
        if (out / "calibration" / "chosen.json").exists() else {}
    summary = {"objectives": runs[0]["objectives"], "steps": runs[0]["steps"], "best_fixed": best,
               "seeds": sorted({r["seed"] for r in runs}), "table": tab, "paired": pair,
               "decisions": decisions(tab, pair, best), "calibration": chosen}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    figures(runs, tab, out)
    print(json.dumps({s: {k: tab[s][k]["mean"] for k in ("accuracy", "length", "hypervolume")} for s in tab}, indent=1))
    return summary
