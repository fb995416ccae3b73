"""The README section of a profile run (flows/profile.py), rendered only from its committed results folder.

    python -m flows.profile report results/smollm2 > /tmp/real_model.md

Every number comes from a file in the folder: ``run.json`` (wall times, params, machine, example
prompt), ``metrics/evaluate.json`` (policies: sampled expected rewards +- prompt-clustered standard
errors, hypervolume with its bootstrap interval, weight_shift, styles, greedy values),
``metrics/sft.json`` (greedy validation accuracy per domain), ``metrics/train/<strategy>.json``
(the weights of the last step), ``metrics/rubric.json`` (pairs, agreement) and ``params.yaml``.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from moalign.report.fmt import load, pm


def _load(folder: Path, rel: str) -> dict:
    return load(folder, rel) or {}


def _pm(m: dict, key: str, digits: int = 3) -> str:
    """``m[key] +- m[key_se]`` (ASCII, as the profile's section has always printed it)."""
    v, se = m.get(key), m.get(f"{key}_se")
    if v is None:
        return "-"
    return pm(v, se, digits, sep="+-") if se is not None else f"{v:.{digits}f}"


def _diff(a: dict, b: dict, key: str) -> str:
    """b - a with the standard error of the difference (independent test-prompt means)."""
    if key not in a or key not in b:
        return "-"
    se = math.sqrt(a.get(f"{key}_se", 0) ** 2 + b.get(f"{key}_se", 0) ** 2)
    d = b[key] - a[key]
    return f"{d:+.3f} (+- {se:.3f}, {abs(d) / se:.1f} SE)" if se > 0 else f"{d:+.3f}"


def policies(ev: dict, strategies: list[str]) -> list[str]:
    """Policy names of metrics/evaluate.json in reading order: base, sft, then the strategies as listed."""
    names = [k for k, v in ev.items() if isinstance(v, dict) and "hypervolume" in v]
    order = ["base", "sft", *strategies]
    return sorted(names, key=lambda n: order.index(n) if n in order else len(order))


def policy_table(ev: dict, objectives: list[str], names: list[str]) -> list[str]:
    head = ["policy", *objectives, "length (tokens)", "hypervolume [95% CI]", "weight_shift",
            "styles terse / outline / worked", "greedy accuracy"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        m = ev[n]
        ci = m.get("hypervolume_ci") or [None, None]
        ci_s = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if None not in ci else ""
        styles = " / ".join(f"{m.get(f'style_{s}', 0) or 0:.2f}" for s in ("terse", "outline", "worked"))
        rows.append("| " + " | ".join([n, *[_pm(m, o) for o in objectives], _pm(m, "length", 1),
                                      f"{m['hypervolume']:.3f} {ci_s}", f"{m.get('weight_shift', 0):.3f}", styles,
                                      f"{m.get('greedy_accuracy', float('nan')):.3f}"]) + " |")
    return rows


def _link(folder: Path, root: Path | None = None) -> str:
    """``folder`` as README links it: relative to the repository root (``root``, default this checkout) when
    inside it (README must not depend on where the clone lives), else as given."""
    root = Path(root).resolve() if root is not None else Path(__file__).resolve().parents[2]
    try:
        return folder.resolve().relative_to(root).as_posix()
    except ValueError:
        return folder.as_posix()


def _history(folder: Path, strategy: str) -> list[dict[str, str]]:
    import csv

    f = folder / "plots/train" / strategy / "history.csv"
    return list(csv.DictReader(f.open())) if f.exists() else []


def _mean(rows: list[dict[str, str]], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return sum(vals) / len(vals) if vals else None


def groups_lines(folder: Path, t: dict) -> list[str]:
    """What made the groups informative (train.prompt_selection, train.dynamic_sampling) and how informative they
    were: from metrics/train/<strategy>.json (selection/*) and plots/train/<strategy>/history.csv (per step)."""
    sel, ds = t.get("prompt_selection") or {}, t.get("dynamic_sampling") or {}
    out = []
    if sel.get("enabled"):
        kept = []
        for n in t["strategies"]:
            m = _load(folder, f"metrics/train/{n}.json")
            if "selection/kept" in m:
                kept.append(f"{n} {m['selection/kept']:.0f} of {m['selection/pool']:.0f}"
                            f"{' (fallback: too few in the band)' if m.get('selection/fallback') else ''}, mean rate "
                            f"{m['selection/mean_rate_pool']:.2f} -> {m['selection/mean_rate_kept']:.2f}")
        out.append(f"- **Prompt selection** (`train.prompt_selection`: {sel['samples']} sampled decodes of "
                   f"{sel['pool']} pooled prompts by the SFT policy, kept {sel['low']:g} < {sel['objective']} pass rate "
                   f"< {sel['high']:g}): " + ("; ".join(kept) if kept else "counts not recorded") + ".")
    shares = []
    for n in t["strategies"]:
        rows = _history(folder, n)
        share = _mean(rows, "train/informative_groups/accuracy")
        if share is not None:
            rounds = _mean(rows, "train/sampling_rounds")
            shares.append(f"{n} {share:.2f}" + (f" ({rounds:.1f} generation rounds per step)" if rounds else ""))
    if shares:
        how = (f"dynamic sampling on {', '.join(ds['objectives'])} with up to {ds['max_rounds']} extra rounds"
               if ds.get("enabled") else "no dynamic sampling")
        out.append(f"- **Informative groups** (share of a step's groups whose accuracy varies, i.e. with a non-zero "
                   f"accuracy advantage; mean over steps, {how}): " + "; ".join(shares) + ".")
    return out


def render(folder: str | Path, root: str | Path | None = None) -> str:
    """The markdown section (README "Real model") for the results in ``folder``."""
    folder = Path(folder)
    run = _load(folder, "run.json")
    if not run:
        raise SystemExit(f"{folder}/run.json not found. Fix: run `python -m flows.profile run ...` first")
    params = yaml.safe_load((folder / "params.yaml").read_text())
    ev, sft_m, rub = _load(folder, "metrics/evaluate.json"), _load(folder, "metrics/sft.json"), \
        _load(folder, "metrics/rubric.json")
    objs = ev.get("objectives", params["train"]["objectives"])
    s, t, e, lora = params["sft"], params["train"], params["evaluate"], params["sft"]["lora"]
    wall = run["wall_seconds"]
    n_test = e["test_rows"] * len(params["prepare"]["generator"]["sizes"])
    out = [f"## Real model: {run.get('model') or 'the tiny default model'}", ""]
    out.append(f"Profile `{' + '.join(run['overlays'])}`{' with ' + ', '.join(run['set']) if run['set'] else ''} "
               f"(commit {run['git_commit'][:10]}{' + local changes' if run.get('git_dirty') else ''}, {run['date']}): "
               f"{'LoRA r=' + str(lora['r']) + ' on ' + '/'.join(lora['target_modules']) if lora['enabled'] else 'full fine-tuning'}; "
               f"SFT {s['max_steps']} steps x {s['batch_size']} sequences at lr {s['lr']:g}; "
               f"RL {t['max_steps']} steps x {t['prompts_per_step']} prompts x {t['group_size']} rollouts per strategy "
               f"at lr {t['lr']:g} (kl_coef {t['kl_coef']:g}); evaluate {n_test} test prompts x {e['samples']} "
               f"sampled decodes (+ 1 greedy), max {e['max_new_tokens']} new tokens.")
    out.append("")
    stages = ", ".join(f"{k} {v / 60:.1f}" for k, v in wall.items() if k not in ("total", "invocation"))
    cached = run.get("cached") or []
    if cached:  # flows/profile.py's stage_costs: a skipped stage costs what it took when it last ran
        stages += (f"; {', '.join(cached)} were up to date in the last invocation ({wall['invocation'] / 60:.1f} min) "
                   "and are counted at the time they took when they last ran")
    out.append(f"Wall time: **{wall['total'] / 60:.1f} min** on {run['machine']['cpus']} CPU cores "
               f"(torch threads: {run['machine']['threads']}; per stage, min: {stages}).")
    out += ["", "Test split, expected rewards of sampled decodes (+- one prompt-clustered standard error):", ""]
    names = policies(ev, t["strategies"])
    out += policy_table(ev, objs, names)
    out.append("")
    pol = {n: ev[n] for n in names}
    if "base" in pol and "sft" in pol:
        out.append(f"- **SFT** (base -> sft): " + "; ".join(f"{o} {_diff(pol['base'], pol['sft'], o)}"
                                                          for o in [*objs, "length"]) + ".")
    for n in [k for k in pol if k not in ("base", "sft")]:
        out.append(f"- **{n}** (sft -> {n}): " + "; ".join(f"{o} {_diff(pol['sft'], pol[n], o)}"
                                                          for o in ["accuracy", "length", "clarity"] if o in pol[n]) + ".")
    weights = []
    for n in t["strategies"]:
        m = _load(folder, f"metrics/train/{n}.json")
        if m and not n.startswith("fixed"):
            weights.append(f"{n} (" + ", ".join(f"{o} {m.get(f'weights/{o}', float('nan')):.2f}" for o in objs) + ")")
    if weights:
        out.append(f"- **Weights** at the last step (start: preset `{t['weighting']['preset']}`): " + "; ".join(weights)
                   + f". Front: {', '.join(ev.get('non_dominated', []))}.")
    out += groups_lines(folder, t)
    doms = sorted({k.split('/')[0] for k in sft_m if k.endswith('/accuracy') and not k.startswith('all')})
    if doms:
        out.append("- SFT greedy validation accuracy per domain: " +
                   ", ".join(f"{d} {sft_m[f'{d}/accuracy']:.2f}" for d in doms) + ".")
    if rub:
        out.append(f"- Rubric stage: {rub.get('pairs_train', 0)} train / {rub.get('pairs_test', 0)} test pairs "
                   f"({rub.get('pairs_test_tie', 0)} on the tie split) from the SFT policy's samples; agreement "
                   f"initial -> refined {rub.get('initial_test', float('nan')):.3f} -> {rub.get('refined_test', float('nan')):.3f}.")
    if run.get("example_prompt"):
        fmt = "chat template" if run.get("chat") else "raw format, no chat template"
        out += ["", f"The prompt every stage renders ({fmt}, `moalign/text.py`):", "", "```",
                run["example_prompt"].rstrip(), "```"]
    out += ["", f"![Pareto front]({_link(folder, root)}/plots/evaluate/pareto.png)"]
    return "\n".join(out) + "\n"
