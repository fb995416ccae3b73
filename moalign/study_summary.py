"""The weighting study's summary and decision rule: ``summary.json``, ``weights.png``, ``front.png`` from run records.

Used by ``moalign study`` (moalign/study.py) and by ``python -m moalign.report``, which renders the README's tables
from the committed records and recomputes this summary from them (``--check``), so the numbers come from the
``runs.jsonl`` files and cannot drift from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from moalign.runlog import read_runs

PRESETS = ["fixed-accuracy", "fixed-balanced", "fixed-efficiency"]
ALPHA = 0.05  # the one decision rule: a two-sided paired t-test over seeds at this level (see decisions())


def unit(r: dict) -> int | str:
    """What a record is paired on: its RL seed, or ``"<SFT seed>/<RL seed>"`` when the study re-ran SFT per seed
    (``moalign study run --sft-seeds``): every comparison is within one SFT policy and one RL seed, and the tests
    over units then cover the variation of the whole pipeline."""
    return r["seed"] if r.get("sft_seed") is None else f"{r['sft_seed']}/{r['seed']}"


def _order(u: int | str) -> tuple[int, ...]:
    return tuple(int(x) for x in str(u).split("/"))


def _units(runs: list[dict]) -> list:
    return sorted({unit(r) for r in runs}, key=_order)


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
        rs = sorted((r for r in runs if r["strategy"] == s), key=lambda r: _order(unit(r)))
        out[s] = {"seeds": [unit(r) for r in rs],
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


def _getters(objs: list[str]) -> dict:
    """How a record's hypervolume, accuracy and length are read (the per-seed quantities compared)."""
    return {"hypervolume": lambda r: r["hypervolume"], "accuracy": lambda r: r["point"][objs.index("accuracy")],
            "length": lambda r: r["length"]}


def paired(runs: list[dict], best: str) -> dict[str, dict]:
    """Per strategy, per seed differences with ``best`` (HV, accuracy, length) and steps-to-reach its final val HV."""
    objs = runs[0]["objectives"]
    by = {(r["strategy"], unit(r)): r for r in runs}
    out = {}
    for s in dict.fromkeys(r["strategy"] for r in runs):
        seeds = sorted((seed for (n, seed) in by if n == s and (best, seed) in by), key=_order)
        d = {"seeds": seeds}
        for key, get in _getters(objs).items():
            diffs = _diffs(runs, s, best, get)
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


def paired_test(diffs) -> dict:
    """Paired differences over seeds: mean, sd, n, wins, the two-sided one-sample t-test of mean 0 and its 95% interval."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    out = {**_ms(d), "wins": int((d > 0).sum())}
    if len(d) < 2:
        return {**out, "t": None, "p": None, "ci95": None}
    if not d.std(ddof=1) > 0:  # the same difference on every seed: certain if it is not 0
        return {**out, "t": None, "p": 0.0 if out["mean"] else 1.0, "ci95": [out["mean"], out["mean"]]}
    t = stats.ttest_1samp(d, 0.0)
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return {**out, "t": float(t.statistic), "p": float(t.pvalue), "ci95": [out["mean"] - half, out["mean"] + half]}


def verdict(test: dict, alpha: float = ALPHA) -> str:
    """yes (significantly > 0), no (significantly < 0) or tie (the interval holds 0, or too few seeds to test)."""
    if test["p"] is None or test["p"] >= alpha:
        return "tie"
    return "yes" if test["mean"] > 0 else "no"


def _diffs(runs: list[dict], a: str, b: str, get) -> list[float]:
    by = {(r["strategy"], unit(r)): r for r in runs}
    return [get(by[(a, s)]) - get(by[(b, s)]) for s in _units(runs) if (a, s) in by and (b, s) in by]


def decisions(runs: list[dict], tab: dict, best: str, alpha: float = ALPHA) -> list[dict]:
    """Rows of the README's decision table, each decided by one rule: a two-sided paired t-test over seeds.

    "pick" rows: the best strategy by mean, tested against the runner-up; when the difference is not
    significant at ``alpha`` the row says ``tie`` and names both. "beats" rows: each dynamic strategy's
    test-HV difference with the best fixed preset: yes, no (significantly worse) or tie.
    """
    objs = runs[0]["objectives"]
    getters = _getters(objs)
    rows = []
    for goal, metric, sign in (("highest accuracy", "accuracy", 1), ("shortest answers", "length", -1),
                               ("largest hypervolume (all three objectives)", "hypervolume", 1)):
        if metric == "accuracy" and "accuracy" not in objs:
            continue
        order = sorted(tab, key=lambda s: -sign * tab[s][metric]["mean"])
        top, second = order[0], order[1] if len(order) > 1 else None
        test = paired_test([sign * x for x in _diffs(runs, top, second, getters[metric])]) if second else None
        v = verdict(test, alpha) if test else "yes"
        rows.append({"goal": goal, "pick": top if v == "yes" else f"tie: {top}, {second}", "metric": metric,
                     "strategy": top, "runner_up": second, "mean": tab[top][metric]["mean"], "sd": tab[top][metric]["sd"],
                     "runner_up_mean": tab[second][metric]["mean"] if second else None, "test": test, "alpha": alpha})
    for s in tab:
        if s.startswith("fixed"):
            continue
        test = paired_test(_diffs(runs, s, best, getters["hypervolume"]))
        if not test["n"]:
            continue
        rows.append({"goal": f"does {s} beat {best} (test HV, paired)?", "pick": verdict(test, alpha),
                     "metric": "hv_diff", "strategy": s, "mean": test["mean"], "sd": test["sd"], "wins": test["wins"],
                     "n": test["n"], "test": test, "alpha": alpha})
    return rows


def prompt_gain(a: dict, b: dict, k: int) -> dict:
    """Objective ``k`` of record ``a`` minus record ``b`` scored on the same prompts: the mean of the per-prompt
    differences, its prompt-clustered standard error (sd of the differences / sqrt(prompts)) and z = mean / se."""
    if a["row_index"] != b["row_index"]:
        raise ValueError("gain over the start: the two records were scored on different prompts")
    d = np.asarray(a["per_prompt"], dtype=float)[:, k] - np.asarray(b["per_prompt"], dtype=float)[:, k]
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return {"gain": float(d.mean()), "se": se, "z": float(d.mean() / se) if se > 0 else None, "prompts": len(d)}


def over_start(runs: list[dict], starts: list[dict], alpha: float = ALPHA) -> dict[str, dict]:
    """Per strategy, its final policy against the SFT policy it started from (the study's ``start`` records),
    seed by seed on the same test prompts and decodes' seeds: each objective's gain with its prompt-clustered SE
    (:func:`prompt_gain`), the test-HV gain, and over seeds the paired t-test of the accuracy gain (one rule)."""
    objs = runs[0]["objectives"]
    start = {unit(r): r for r in starts if "per_prompt" in r}  # each unit's own SFT policy and decode seed
    out = {}
    for s in dict.fromkeys(r["strategy"] for r in runs):
        rs = sorted((r for r in runs if r["strategy"] == s and unit(r) in start and "per_prompt" in r),
                    key=lambda r: _order(unit(r)))
        if not rs:
            continue
        seeds = [{"seed": unit(r), **{o: prompt_gain(r, start[unit(r)], k) for k, o in enumerate(objs)},
                  "hypervolume": r["hypervolume"] - start[unit(r)]["hypervolume"]} for r in rs]
        acc = [x["accuracy"]["gain"] for x in seeds] if "accuracy" in objs else []
        test = paired_test(acc) if acc else None
        out[s] = {"per_seed": seeds, "test": test, "verdict": verdict(test, alpha) if test else None,
                  "min_z": min((x["accuracy"]["z"] or 0.0) for x in seeds) if acc else None}
    return out


def start_table(summary: dict) -> list[str]:
    """Markdown lines: each strategy's accuracy gain over the SFT policy per seed (z in prompt-clustered SEs) and
    the paired t-test over seeds; [] when the study scored no start policy."""
    over = summary.get("over_start") or {}
    if not over:
        return []
    st = summary["start"]
    objs = summary["objectives"]
    others = [o for o in objs if o != "accuracy"]
    start = ", ".join(f"{o} {st[o]['mean']:.3f}" for o in objs)
    lines = [f"Gain over the SFT policy it started from ({start}; length {st['length']['mean']:.1f}; scored on the "
             "same prompts with the same decode seeds), per seed: accuracy gain (z = gain / prompt-clustered SE of the "
             "per-prompt differences); over seeds: the paired t-test of the accuracy gain.", "",
             "| strategy | accuracy gain per seed (z) | " + " | ".join(f"{o} gain per seed" for o in others) +
             " | test HV gain per seed | over seeds |", "|---" * (len(others) + 4) + "|"]
    for s, o in over.items():
        acc = ", ".join(f"{x['accuracy']['gain']:+.3f} ({x['accuracy']['z']:+.1f})" if x["accuracy"]["z"] is not None
                        else f"{x['accuracy']['gain']:+.3f}" for x in o["per_seed"])
        rest = " | ".join(", ".join(f"{x[k]['gain']:+.3f}" for x in o["per_seed"]) for k in others)
        hv = ", ".join(f"{x['hypervolume']:+.4f}" for x in o["per_seed"])
        lines.append(f"| {s} | {acc} | {rest} | {hv} | **{o['verdict']}**: {_test_md(o['test'], 'mean gain')} |")
    return lines


def _test_md(t: dict | None, label: str = "paired diff") -> str:
    if not t or t.get("p") is None:
        return "no test (fewer than 2 seeds)"
    lo, hi = t["ci95"]
    return f"{label} {t['mean']:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}], p = {t['p']:.3f} (n = {t['n']})"


def decision_table(summary: dict) -> list[str]:
    """The decision table (markdown lines) of a summary: goal, pick, evidence; README and decisions.md render it."""
    lines = ["| goal | pick | evidence (mean ± sd over seeds; paired t-test over seeds) |", "|---|---|---|"]
    for d in summary["decisions"]:
        if d["metric"] == "hv_diff":
            ev = f"test HV better on {d['wins']}/{d['n']} seeds; {_test_md(d.get('test'))}"
        elif d.get("runner_up") is None:  # a study of one strategy
            ev = f"{d['metric']} {d['mean']:.3f} ± {d['sd']:.3f}; the only strategy"
        else:
            ev = (f"{d['metric']} {d['mean']:.3f} ± {d['sd']:.3f} vs runner-up {d['runner_up']} "
                  f"{d['runner_up_mean']:.3f}; {_test_md(d.get('test'), 'paired advantage')}")
        lines.append(f"| {d['goal']} | **{d['pick']}** | {ev} |")
    return lines


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
    if dyn:
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


def summarise(out: Path, write: bool = True) -> dict:
    """summary.json from the study's runs.jsonl (and calibration/chosen.json); ``write=False`` only computes it."""
    from moalign.provenance import same_config

    runs = read_runs(out / "study" / "runs.jsonl")
    same_config(runs, str(out / "study" / "runs.jsonl"))  # records made with other settings are never averaged
    if not runs:
        raise SystemExit(f"no study runs in {out / 'study'}: run `moalign study run --out {out}` first")
    tab = table(runs)
    fixed = [s for s in PRESETS if s in tab]
    best = max(fixed, key=lambda s: tab[s]["hypervolume"]["mean"])
    pair = paired(runs, best)
    chosen = json.loads((out / "calibration" / "chosen.json").read_text()) \
        if (out / "calibration" / "chosen.json").exists() else {}
    summary = {"objectives": runs[0]["objectives"], "steps": runs[0]["steps"], "best_fixed": best,
               "seeds": _units(runs), "table": tab, "paired": pair,
               "decisions": decisions(runs, tab, best), "calibration": chosen}
    if any(r.get("sft_seed") is not None for r in runs):  # --sft-seeds: units are "<SFT seed>/<RL seed>"
        summary["sft_seeds"] = sorted({r["sft_seed"] for r in runs if r.get("sft_seed") is not None})
    starts = read_runs(out / "start" / "runs.jsonl")  # the SFT policy scored per seed (absent in older studies)
    if starts:
        same_config(starts, str(out / "start" / "runs.jsonl"))
        objs = runs[0]["objectives"]
        summary["start"] = {o: _ms([r["point"][k] for r in starts]) for k, o in enumerate(objs)} | {
            "length": _ms([r["length"] for r in starts]), "hypervolume": _ms([r["hypervolume"] for r in starts])}
        summary["over_start"] = over_start(runs, starts)
    summary = json.loads(json.dumps(summary))  # the JSON form (tuples -> lists), as the committed file holds it
    if not write:
        return summary
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    figures(runs, tab, out)
    print(json.dumps({s: {k: tab[s][k]["mean"] for k in ("accuracy", "length", "hypervolume")} for s in tab}, indent=1))
    return summary
