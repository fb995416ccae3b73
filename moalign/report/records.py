"""benchmarks/README's report blocks, all of them (``RECORD_BLOCKS``), and those of the earlier measurements.

``RECORD_BLOCKS`` = the current measurements' blocks (moalign/report/current.py) + the records' blocks below;
``cli.BLOCKS["benchmarks/README.md"]`` merges it. Records are studies made on an earlier world or
earlier code (the KL probes, the 3-seed RL efficiency study, the first aggregation comparison, RL on the
initial vs refined rubric): their files stay as they were and their blocks render them with the benchmark's
own summary code (moalign/experiments: ``rl_efficiency.strategy_table``/``reach``, ``rubric_rl.summary_row``); the README says
what changed since each was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from moalign.experiments import rl_efficiency as rle
from moalign.experiments import rubric_rl
from moalign.report import current as cur
from moalign.report.fmt import RES, load_runs, missing, per_seed

PROBES = {"probe1": "KL 0", "probe_kl0.1": "KL 0.1", "probe_kl0.3": "KL 0.3"}
PAPER_RATIO = 0.70  # the paper's reported ceiling on steps-to-front of hypervolume-guided vs the best fixed preset


def _worked_acc(rs: list[dict]) -> str:
    x = [r["test_styles"].get("worked_accuracy") for r in rs]
    x = [v for v in x if v is not None and v == v]
    return f"{np.mean(x):.3f}" if x else "-"


def probes(root: Path) -> str:
    runs = []
    for d, kl in PROBES.items():
        for r in load_runs(root, f"{RES}/{d}/runs.jsonl"):
            r["_label"] = f"{r['strategy']}{' (grad_step 0.5)' if r['strategy'] == 'gradient' else ''}, {kl}"
            runs.append(r)
    if not runs:
        return missing(f"{RES}/probe1/runs.jsonl", "the commands above")
    lines = rle.strategy_table(runs, label=lambda r: r["_label"], key="run",
                               extra={"worked-style accuracy": _worked_acc})
    lines += ["", "Source: " + ", ".join(f"`{RES}/{d}/runs.jsonl`" for d in PROBES) +
              f" (seed {sorted({r['seed'] for r in runs})}, {runs[0]['steps']} steps; test split, expected rewards "
              "of sampled decodes)."]
    return "\n".join(lines)


EFF = f"{RES}/rl_efficiency/runs.jsonl"
EFF_CMD = "python -m moalign.experiments.rl_efficiency --seeds 0 1 2 --steps 150 --jobs 2"


def _eff(root: Path) -> list[dict]:
    return sorted(load_runs(root, EFF), key=lambda r: r["seed"])


def rl_efficiency(root: Path) -> str:
    runs = _eff(root)
    if not runs:
        return missing(EFF, EFF_CMD)
    lines = rle.strategy_table(runs)
    lines += ["", f"Source: `{EFF}` (seeds {sorted({r['seed'] for r in runs})}, {runs[0]['steps']} steps; test "
              "split, expected rewards of sampled decodes; mean ± sd over seeds; final weights: mean over seeds)."]
    return "\n".join(lines)


def rl_efficiency_reach(root: Path) -> str:
    runs = _eff(root)
    if not runs:
        return missing(EFF, EFF_CMD)
    lines = rle.reach_table(runs)
    v = [x["step"] for x in runs[0]["validation"]]
    every = v[1] - v[0] if len(v) > 1 else v[0]
    lines += ["", f"Source: `{EFF}` (validation every {every} steps; best fixed preset by "
              f"mean final validation hypervolume: **{rle.best_fixed(runs)}**; computed by "
              "`rl_efficiency.reach`)."]
    return "\n".join(lines)


def rl_efficiency_notes(root: Path) -> str:
    runs = _eff(root)
    if not runs:
        return missing(EFF, EFF_CMD)
    objs = runs[0]["objectives"]
    seeds = sorted({r["seed"] for r in runs})
    by = {n: [r for r in runs if r["strategy"] == n] for n in dict.fromkeys(r["strategy"] for r in runs)}
    acc = {n: [r["test_point"][0] for r in rs] for n, rs in by.items()}
    ln = {n: [r["test_length"] for r in rs] for n, rs in by.items()}
    out = []
    presets = [n for n in by if n.startswith("fixed")]
    if len(presets) > 1:
        order = sorted(presets, key=lambda n: -np.mean(acc[n]))
        same = all(all(acc[a][i] > acc[b][i] and ln[a][i] > ln[b][i] for a, b in zip(order, order[1:]))
                   for i in range(len(seeds)))
        out.append(f"- Presets, per seed {seeds}: accuracy " + "; ".join(f"{n} {per_seed(acc[n])}" for n in order) +
                   "; length " + "; ".join(f"{n} {per_seed(ln[n], 1)}" for n in order) +
                   f". Same order of accuracy and length on every seed: {'yes' if same else 'no'}.")
    reach = rle.reach(runs)
    if "hypervolume" in reach:
        q = [x for _, x in reach["hypervolume"].values()]
        ok = sum(x is not None and x <= PAPER_RATIO for x in q)
        out.append(f"- hypervolume: steps to the best fixed preset's final validation HV, as a share of that preset's "
                   f"own, per seed: {', '.join('never' if x is None else f'{x:.2f}' for x in q)}; at most "
                   f"{PAPER_RATIO:.2f} (the paper's figure) on {ok}/{len(q)} seeds.")
    if "gradient" in by:
        g = by["gradient"]
        sd_other = max(float(np.std(acc[n], ddof=1)) for n in by if n != "gradient")
        out.append(f"- gradient, per seed: accuracy {per_seed(acc['gradient'])}, final weights "
                   + "; ".join(" / ".join(f"{w:.2f}" for w in r["final_weights"]) for r in g)
                   + f" ({' / '.join(objs)}); sd of its accuracy over seeds / the largest of the other strategies: "
                   f"x{float(np.std(acc['gradient'], ddof=1)) / sd_other:.1f}.")
        sh = []
        for r in g:
            s = np.array([x for x in r.get("influence_shares", []) if None not in x], dtype=float)
            if len(s):
                sh.append(f"seed {r['seed']}: " + ", ".join(f"{o} {m:.2f} ± {d:.2f}"
                                                            for o, m, d in zip(objs, s.mean(0), s.std(0))))
        if sh:
            out.append("- gradient, influence shares per step (mean ± sd over the steps): " + "; ".join(sh) + ".")
    out += ["", f"Source: `{EFF}`."]
    return "\n".join(out)


RUB = {"rubric_rl": "KL 0.3", "rubric_rl_kl0.05": "KL 0.05"}


def _rubric_rows(root: Path) -> list[dict]:
    rows = []
    for d, kl in RUB.items():
        for r in load_runs(root, f"{RES}/{d}/runs.jsonl"):
            rows.append({**rubric_rl.summary_row(r), "run": f"seed {r['seed']}, {kl}",
                         "se": r["test_se"], "kl": kl})
    return sorted(rows, key=lambda x: (list(RUB.values()).index(x["kl"]), x["seed"], x["rubric"] != "initial"))


def rubric_rl_table(root: Path) -> str:
    rows = _rubric_rows(root)
    if not rows:
        return missing(f"{RES}/rubric_rl/runs.jsonl", "python -m moalign.experiments.rubric_rl")
    lines = ["| run | rubric | rollout length | rollout accuracy | test accuracy | test length | test honesty | "
             "worked share |", "|---|---|---|---|---|---|---|---|"]
    for x in rows:
        lines.append(f"| {x['run']} | {x['rubric']} | {x['roll_len_first5']:.1f} -> {x['roll_len_last5']:.1f} | "
                     f"{x['roll_acc_first5']:.2f} -> {x['roll_acc_last5']:.2f} | {x['test_accuracy']:.3f} | "
                     f"{x['test_length']:.1f} | {x['test_honesty']:+.3f} | {x['style_worked']:.2f} |")
    pairs = {}
    for x in rows:
        pairs.setdefault(x["run"], {})[x["rubric"]] = x
    pairs = {k: v for k, v in pairs.items() if {"initial", "refined"} <= set(v)}
    d = lambda k: " / ".join(f"{v['refined'][k] - v['initial'][k]:+.1f}" for v in pairs.values())  # noqa: E731
    names = "; ".join(pairs)
    ini = [x for x in rows if x["rubric"] == "initial"]
    growth = " / ".join(f"{x['roll_len_last5'] - x['roll_len_first5']:+.1f}" for x in ini)
    hon = {k: np.mean([x["test_honesty"] for x in rows if x["rubric"] == k and x["kl"] == "KL 0.3"])
           for k in ("initial", "refined")}
    lines += ["", f"- Rollout length growth over the run (last - first 5 steps), initial rubric: "
              f"{growth} tokens "
              f"({'; '.join(x['run'] for x in ini)}).",
              f"- Refined - initial, paired per run ({names}): test length {d('test_length')} tokens, "
              f"rollout length (last 5 steps) {d('roll_len_last5')} tokens.",
              f"- Test honesty, mean over the KL 0.3 seeds: initial {hon['initial']:+.3f}, refined "
              f"{hon['refined']:+.3f}. Largest test standard error: accuracy "
              f"{max(x['se']['accuracy'] for x in rows):.3f}, honesty {max(x['se']['honesty'] for x in rows):.3f}.",
              "", "Source: " + ", ".join(f"`{RES}/{d}/runs.jsonl`" for d in RUB) +
              f" ({rows[0]['steps']} steps per run; rollout columns: mean of the first -> last 5 steps; test: "
              "expected rewards of sampled decodes; honesty: the annotator's hidden criterion, +1 clean working, "
              "0 bare answer, -1 a defect)."]
    return "\n".join(lines)


RECORD_BLOCKS: dict[str, Callable[[Path], str]] = {
    "aggregation": cur.aggregation, "sft_styles": cur.sft_styles, "sft_stage": cur.sft_stage,
    **{n: cur.throughput_block(n) for n in cur.THROUGHPUT}, "parallel": cur.parallel, "bf16_decode": cur.bf16_decode,
    "balance_world": cur.balance_world, "balance": cur.balance_main, "balance_training": cur.balance_training,
    "balance_evidence": cur.balance_evidence,
    "probes": probes, "rl_efficiency": rl_efficiency, "rl_efficiency_reach": rl_efficiency_reach,
    "rl_efficiency_notes": rl_efficiency_notes, "aggregation_v1": cur.aggregation_v1, "rubric_rl": rubric_rl_table,
}
