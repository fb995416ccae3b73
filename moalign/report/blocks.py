"""The report blocks: one function per table, ``f(root) -> markdown``, each reading one committed file.

``BLOCKS[readme][name]`` is rendered between ``<!-- report:name -->`` markers of that readme
(moalign/report/cli.py). A missing file renders a line saying which command produces it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from moalign.report.fmt import RES, f3, load, load_runs, missing, msd, pm  # the one loader and formatter
from moalign.study_summary import decision_table, start_table

REF = "results/reference"  # the reference run README renders (moalign/reference.py); `dvc repro` never writes it


def _last_weights(root: Path, strategy: str, objs: list[str]) -> list[float] | None:
    p = root / REF / "plots/train" / strategy / "history.csv"
    if not p.exists():
        return None
    rows = list(csv.DictReader(p.read_text().splitlines()))
    return [float(rows[-1][f"weights/{o}"]) for o in objs] if rows else None


# ---- README: the default run -------------------------------------------------------------------------------

def results(root: Path) -> str:
    rel = "results/reference/metrics/evaluate.json"
    m = load(root, rel)
    if m is None:
        return missing(rel, "dvc repro && moalign reference save")
    objs = m["objectives"]
    found = [k for k, v in m.items() if isinstance(v, dict) and "hypervolume" in v]
    names = [n for n in ("base", "sft") if n in found] + [n for n in found if n not in ("base", "sft")]
    head = "| policy | " + " | ".join(objs) + " | length (tokens) | hypervolume [95% CI] | weight_shift | final weights | " \
           "styles terse / outline / worked |"
    lines = [head, "|---" * (len(objs) + 6) + "|"]
    for n in names:
        r = m[n]
        ci = r.get("hypervolume_ci") or [None, None]
        w = _last_weights(root, n, objs) if n != "sft" else None
        st = " / ".join(f"{r[f'style_{k}']:.2f}" if r.get(f"style_{k}") is not None else "-"
                        for k in ("terse", "outline", "worked"))
        lines.append(f"| {n} | " + " | ".join(pm(r[o], r[f"{o}_se"]) for o in objs) +
                     f" | {pm(r['length'], r['length_se'], 1)} | {f3(r['hypervolume'])} [{f3(ci[0])}, {f3(ci[1])}] | "
                     f"{f3(r['weight_shift'])} | {' / '.join(f'{x:.2f}' for x in w) if w else '-'} | {st} |")
    lines.append("")
    deg = m.get("degenerate") or {}
    lines.append(f"Source: `{rel}` (test split, `{m.get('point')}` points, ± one prompt-clustered standard error; "
                 f"hypervolume reference {m['reference']}; non-dominated: {', '.join(m['non_dominated'])}; "
                 f"degenerate objectives: {deg if deg else 'none'}). Final weights: last row of "
                 "`results/reference/plots/train/<strategy>/history.csv`.")
    return "\n".join(lines)


def results_facts(root: Path) -> str:
    """Bullets about the default run, each computed from metrics/evaluate.json, metrics/sft.json and the
    train stages' history.csv."""
    m, sft = load(root, "results/reference/metrics/evaluate.json"), load(root, "results/reference/metrics/sft.json")
    if m is None:
        return missing("results/reference/metrics/evaluate.json", "dvc repro && moalign reference save")
    objs = m["objectives"]
    pol = {k: v for k, v in m.items() if isinstance(v, dict) and "hypervolume" in v}
    rl = [n for n in pol if n not in ("sft", "base")]
    out = []
    dominated = [n for n in pol if n not in m["non_dominated"]]
    out.append(f"- **On the front** (test points, non-dominated): {', '.join(m['non_dominated'])}; dominated: "
               f"{', '.join(dominated) or 'none'}.")
    if "accuracy" in objs and rl:
        hi = max(rl, key=lambda n: pol[n]["accuracy"])
        lo = min(rl, key=lambda n: pol[n]["length"])
        best = max(rl, key=lambda n: pol[n]["hypervolume"])

        def z(a, b, key):  # difference in standard errors of the difference
            se = (pol[a][f"{key}_se"] ** 2 + pol[b][f"{key}_se"] ** 2) ** 0.5
            return (pol[a][key] - pol[b][key]) / se if se else float("nan")

        out.append(f"- **Most accurate**: {hi} ({pol[hi]['accuracy']:.3f}; SFT {pol['sft']['accuracy']:.3f}, "
                   f"{z(hi, 'sft', 'accuracy'):.1f} SE above it). **Shortest**: {lo} ({pol[lo]['length']:.1f} tokens; "
                   f"SFT {pol['sft']['length']:.1f}). **Largest hypervolume**: {best} ({pol[best]['hypervolume']:.3f}).")
    for n in rl:
        w = _last_weights(root, n, objs)
        if w and pol[n]["weight_shift"] >= 0.01:
            out.append(f"- **{n}** moved its weights from uniform to ({', '.join(f'{o} {x:.2f}' for o, x in zip(objs, w))})"
                       f"; its test point: " + ", ".join(f"{o} {pol[n][o]:.3f}" for o in objs) +
                       f", length {pol[n]['length']:.1f}.")
        elif not n.startswith("fixed"):
            out.append(f"- **{n}** kept its weights (weight_shift {pol[n]['weight_shift']:.3f}).")
    if sft:
        doms = [k.split("/")[0] for k in sft if k.endswith("/accuracy") and not k.startswith("all")]
        out.append("- **SFT's greedy accuracy per domain** (`results/reference/metrics/sft.json`, validation): " +
                   ", ".join(f"{d} {sft[f'{d}/accuracy']:.2f}" for d in doms) +
                   ": the small domains read their number-word questions poorly, which is the point of the balance study.")
    deg = m.get("degenerate")
    out.append(f"- **Degenerate objectives**: {deg if deg else 'none (every objective varies across policies)'}.")
    return "\n".join(out)


def rubric(root: Path) -> str:
    rel = "results/reference/metrics/rubric.json"
    m = load(root, rel)
    if m is None:
        return missing(rel, "dvc repro && moalign reference save")
    lines = ["| judge | rubric | all test pairs | tie split (test) |", "|---|---|---|---|"]
    for judge in ("pairwise", "pointwise"):
        t = m.get(f"{judge}_test") or {}
        for kind in ("initial", "refined"):
            tie = t.get(f"{kind}_tie")
            lines.append(f"| {judge} | {kind} | {f3(t.get(kind))} | {f3(tie)} |")
    lines.append("")
    lines.append(f"Source: `{rel}`: {m.get('pairs_test')} held-out test pairs, {m.get('pairs_test_tie')} on the "
                 "correctness-tie split (agreement with the labels; a tie counts half).")
    return "\n".join(lines)


# ---- the weighting study -----------------------------------------------------------------------------------

STUDY = f"{RES}/weighting_study/summary.json"
STUDY_CMD = f"moalign study summary --out {RES}/weighting_study"
# the settings of the committed weighting study (5 reporting seeds, tuning seeds 100 101, 150 steps, 32 prompts per
# domain x 4 sampled decodes, every strategy): rerunning it resumes that study
STUDY_RUN_CMD = ("moalign study run --seeds 0 1 2 3 4 --tuning-seeds 100 101 --steps 150 --rows 32 --samples 4 "
                 "--strategies fixed-accuracy fixed-balanced fixed-efficiency hypervolume gradient hypervolume-paper "
                 f"gradient-paper --out {RES}/weighting_study")


def study(root: Path) -> str:
    s = load(root, STUDY)
    if s is None:
        return missing(STUDY, STUDY_CMD)
    objs = s["objectives"]
    lines = ["| strategy | knob | " + " | ".join(objs) + " | length | test HV | weight_shift | final weights | "
             "HV - best fixed (paired) | steps to best fixed's final val HV |",
             "|---" * (len(objs) + 8) + "|"]
    for n, t in s["table"].items():
        p = s["paired"].get(n, {})
        hv = p.get("hypervolume")
        diff = "-" if n == s["best_fixed"] or not hv else f"{hv['mean']:+.4f} ± {hv['sd']:.4f} ({hv['wins']}/{hv['n']} wins)"
        reach = "-" if n == s["best_fixed"] else ("n/a (own validation)" if not p.get("comparable_validation")
                                                    else str(p.get("steps_to_best_fixed")))
        lines.append(f"| {n} | {t.get('value') or '-'} | " + " | ".join(pm(t[o]["mean"], t[o]["sd"]) for o in objs) +
                     f" | {pm(t['length']['mean'], t['length']['sd'], 1)} | {pm(t['hypervolume']['mean'], t['hypervolume']['sd'], 4)}"
                     f" | {pm(t['weight_shift']['mean'], t['weight_shift']['sd'], 2)} | "
                     f"{' / '.join(f'{x:.2f}' for x in t['final_weights'])} | {diff} | {reach} |")
    se = {o: max(t[f"{o}_se"] for t in s["table"].values()) for o in objs}
    lines.append("")
    lines.append(f"Source: `{STUDY}` ({len(s['seeds'])} seeds {s['seeds']} x {s['steps']} steps; test split, expected "
                 "rewards of 4 sampled decodes x 128 prompts; mean ± sd over seeds; the largest within-run standard "
                 "error of a seed's point is " + ", ".join(f"{o} {v:.3f}" for o, v in se.items()) +
                 f"). Best fixed preset by mean test HV: **{s['best_fixed']}**. Steps to reach: first validation step "
                 "(every 10) whose validation HV reaches the best fixed preset's final one, per seed (None = never).")
    return "\n".join(lines)


def decisions(root: Path) -> str:
    s = load(root, STUDY)
    if s is None:
        return missing(STUDY, STUDY_CMD)
    lines = decision_table(s)  # the one rendering, shared with `moalign study`'s decisions.md
    alpha = next((d["alpha"] for d in reversed(s["decisions"]) if "alpha" in d), None)
    lines.append("")
    lines.append(f"Source: `{STUDY}`, computed by moalign/study_summary.py `decisions()` with one rule for every "
                 f"row: a two-sided paired t-test over the reporting seeds at alpha = {alpha}. A pick is named when "
                 "it beats the runner-up significantly, else the row says tie; a dynamic strategy \"beats\" the best "
                 "fixed preset (yes), loses to it (no), or ties. `python -m moalign.report --check` recomputes this file "
                 "from the raw records.")
    return "\n".join(lines)


def calibration(root: Path) -> str:
    s = load(root, STUDY)
    c = s.get("calibration") if s else load(root, f"{RES}/weighting_study/calibration/chosen.json")
    if not c:
        return missing(f"{RES}/weighting_study/calibration/chosen.json", STUDY_RUN_CMD)
    lines = ["| strategy | knob | grid: mean validation HV (sd) over tuning seeds | chosen | authors' value |",
             "|---|---|---|---|---|"]
    for n, x in c.items():
        grid = ", ".join(f"{v}: {x['val_hv'][v]:.4f} ({x['val_hv_sd'][v]:.4f})" for v in x["grid"] if v in x["val_hv"])
        lines.append(f"| {n} | {x['knob']} | {grid} | **{x['chosen']}** | {x['authors']} |")
    seeds = sorted({sd for x in c.values() for sd in x["seeds"]})
    lines.append("")
    lines.append(f"Source: `benchmarks/results/weighting_study/calibration/chosen.json` (tuning seeds {seeds}, "
                 "validation split, 4 sampled decodes x 128 prompts, reference: origin).")
    return "\n".join(lines)


def rubric_seeds(root: Path) -> str:
    rel = f"{RES}/rubric_seeds/summary.json"
    s = load(root, rel)
    if s is None:
        return missing(rel, "python -m moalign.experiments.rubric_seeds --seeds 0 1 2")
    lines = ["| judge | rubric | all test pairs | tie split (test) |", "|---|---|---|---|"]
    for j in ("pairwise", "pointwise"):
        for k in ("initial", "refined"):
            a, t = s[f"{j}_test/{k}"], s[f"{j}_test/{k}_tie"]
            lines.append(f"| {j} | {k} | {pm(a['mean'], a['sd'])} | {pm(t['mean'], t['sd'])} |")
    d = s["pointwise_minus_pairwise_refined_tie"]
    lines.append("")
    lines.append(f"Source: `{rel}` (seeds {s['seeds']}, mean ± sd; tie-split pairs per seed {s['pairs_test_tie']}). "
                 f"Refined rubric, tie split, pointwise - pairwise: {d['mean']:+.3f} ± {d['sd']:.3f} "
                 f"(per seed {d['per_seed']}; pointwise better on {d['pointwise_better']}/{len(d['per_seed'])}).")
    return "\n".join(lines)


def trl(root: Path) -> str:
    """TRL's GRPOTrainer: static weights vs the two callbacks, beside our own trainer on the same seeds."""
    rel = f"{RES}/trl_weighting/runs.jsonl"
    runs = load_runs(root, rel)
    if not runs:
        return missing(rel, "python -m moalign.experiments.trl_weighting --seeds 0 1 2")
    objs = runs[0]["objectives"]
    seeds = sorted({r["seed"] for r in runs})
    steps = runs[0]["steps"]
    study = [r for r in load_runs(root, f"{RES}/weighting_study/study/runs.jsonl")
             if r["seed"] in seeds and r["steps"] == steps]
    rows = [("TRL " + s, [r for r in runs if r["side"] == s]) for s in ("static", "hypervolume", "gradient")]
    rows += [("moalign " + s, [r for r in study if r["strategy"] == s]) for s in ("fixed-balanced", "hypervolume", "gradient")]
    lines = ["| trainer / weighting | " + " | ".join(objs) + " | length | test HV | final weights | HV - static (paired) |",
             "|---" * (len(objs) + 5) + "|"]
    base = {r["seed"]: r["test_hv"] for r in runs if r["side"] == "static"}
    for name, rs in rows:
        if not rs:
            continue
        get = (lambda r: (r["test_point"], r["test_length"], r["test_hv"])) if name.startswith("TRL") else \
              (lambda r: (r["point"], r["length"], r["hypervolume"]))
        vals = [get(r) for r in rs]
        cells = [pm(*msd([v[0][k] for v in vals])) for k in range(len(objs))]
        w = [msd([r["final_weights"][k] for r in rs])[0] for k in range(len(objs))]
        diff = "-"
        if name.startswith("TRL") and name != "TRL static":
            d = [r["test_hv"] - base[r["seed"]] for r in rs if r["seed"] in base]
            if d:
                m_, s_ = msd(d)
                diff = f"{m_:+.4f} ± {s_:.4f} ({sum(x > 0 for x in d)}/{len(d)})"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {pm(*msd([v[1] for v in vals]), 1)} | "
                     f"{pm(*msd([v[2] for v in vals]), 4)} | {' / '.join(f'{x:.2f}' for x in w)} | {diff} |")
    lines.append("")
    lines.append(f"Source: `{rel}` (TRL 1.16 GRPOTrainer, seeds {seeds}, {steps} steps, "
                 f"{runs[0].get('aggregation')}; test split, expected rewards of sampled decodes; mean ± sd over "
                 "seeds) and, for the moalign rows, the same seeds and steps of "
                 "`benchmarks/results/weighting_study/study/runs.jsonl` (rows absent when the budgets differ).")
    return "\n".join(lines)


def real_model(root: Path) -> str:
    """The SmolLM2 profile's section, rendered by moalign/report/profile.py from results/smollm2 only."""
    folder = root / "results/smollm2"
    if not (folder / "run.json").exists():
        return missing("results/smollm2/run.json", "make repro-real")
    from moalign.report.profile import render

    return render(folder, root)


REAL_STUDY = "results/smollm2-study"  # the real-model contest: `moalign study run` in the profile's workspace
REAL_STUDY_CMD = ("cd runs/smollm2 && python -m flows.study run --strategies fixed-balanced gradient --seeds 0 1 2 "
                  f"--tuning-seeds --rows 16 --samples 4 --out ../../{REAL_STUDY}")


REAL_BF16 = "results/smollm2-study-bf16"  # the same contest's seed 0 with fast-bf16 rollouts (scoring stays fp32)
REAL_BF16_CMD = ("cd runs/smollm2 && python -m flows.study run --strategies gradient fixed-balanced --seeds 0 "
                 "--tuning-seeds -S train.generation_backend=fast-bf16 --rows 16 --samples 4 "
                 f"--out ../../{REAL_BF16}")


def real_bf16(root: Path) -> str:
    """RL with bf16 rollouts against the fp32 contest's seeds: each strategy's gain over the SFT policy (accuracy,
    test HV) with fast-bf16 rollouts, and where it falls among the fp32 seeds' gains (mean ± sd, z)."""
    s, ref = load(root, f"{REAL_BF16}/summary.json"), load(root, f"{REAL_STUDY}/summary.json")
    if s is None or ref is None:
        return missing(f"{REAL_BF16}/summary.json", REAL_BF16_CMD)
    lines = ["| strategy | gain over SFT | fp32 rollouts: per seed | mean ± sd | fast-bf16 rollouts | z vs fp32 seeds |",
             "|---|---|---|---|---|---|"]
    for n, o in (s.get("over_start") or {}).items():
        f = (ref.get("over_start") or {}).get(n)
        if not f:
            continue
        for key, get, fmt in (("accuracy", lambda x: x["accuracy"]["gain"], "+.3f"),
                              ("test HV", lambda x: x["hypervolume"], "+.4f")):
            fp, b = np.array([get(x) for x in f["per_seed"]]), [get(x) for x in o["per_seed"]]
            sd = float(fp.std(ddof=1)) if len(fp) > 1 else 0.0
            z = ", ".join(f"{(x - fp.mean()) / sd:+.1f}" if sd > 0 else "-" for x in b)
            lines.append(f"| {n} | {key} | {', '.join(format(x, fmt) for x in fp)} | {fp.mean():{fmt}} ± {sd:.4f} | "
                         f"{', '.join(format(x, fmt) for x in b)} | {z} |")
    runs = load_runs(root, f"{REAL_BF16}/study/runs.jsonl")
    prov = runs[0]["provenance"]
    secs = {r["strategy"]: r["seconds"] for r in runs if "seconds" in r}
    ref_runs = load_runs(root, f"{REAL_STUDY}/study/runs.jsonl")
    ref_secs = {n: [r["seconds"] for r in ref_runs if r["strategy"] == n and "seconds" in r] for n in secs}
    lines += ["", "Wall time per run (training + scoring): " + "; ".join(
        f"{n}: {v / 60:.1f} min with fast-bf16, fp32 seeds {', '.join(f'{x / 60:.1f}' for x in ref_secs[n])} min"
        for n, v in secs.items()) + ".",
              "", f"Source: `{REAL_BF16}` against `{REAL_STUDY}` (`{REAL_BF16_CMD}`; RL seed(s) {s['seeds']}, the same SFT "
              f"policy (sha256 {prov.get('sft_sha256')}), test prompts and decode seeds; scoring decodes in fp32; "
              f"commit {str(prov.get('git_commit'))[:10]} of the profile workspace)."]
    return "\n".join(lines)


def strategy_table(s: dict, weights: bool = False) -> list[str]:
    """Markdown lines: per strategy of a study summary, mean ± sd over seeds of each objective, length, test HV (and
    the mean final weights)."""
    objs = s["objectives"]
    lines = ["| strategy | " + " | ".join(objs) + " | length | test HV |" + (" final weights |" if weights else ""),
             "|---" * (len(objs) + 3 + weights) + "|"]
    for n, t in s["table"].items():
        lines.append(f"| {n} | " + " | ".join(pm(t[o]["mean"], t[o]["sd"]) for o in objs) +
                     f" | {pm(t['length']['mean'], t['length']['sd'], 1)} | "
                     f"{pm(t['hypervolume']['mean'], t['hypervolume']['sd'], 4)} |" +
                     (f" {' / '.join(f'{x:.2f}' for x in t['final_weights'])} |" if weights else ""))
    return lines


def real_contest(root: Path) -> str:
    """The weighting contest on SmolLM2: the decision table, each strategy's gain over the SFT policy per seed, the
    per-strategy table; every fact (seeds, steps, prompts, decodes, commit, wall time) read from the records."""
    s = load(root, f"{REAL_STUDY}/summary.json")
    if s is None:
        return missing(f"{REAL_STUDY}/summary.json", REAL_STUDY_CMD)
    runs = load_runs(root, f"{REAL_STUDY}/study/runs.jsonl")
    prov = runs[0]["provenance"]
    inv = (load(root, f"{REAL_STUDY}/run.json") or {}).get("invocations", [])
    lines = [*decision_table(s), "", *start_table(s), "", *strategy_table(s, weights=True)]
    over = s.get("over_start") or {}
    crit = [f"{n}: smallest per-seed z {o['min_z']:+.1f} over {len(o['per_seed'])} seed(s), "
            f"{'met' if o['min_z'] >= 2 else 'not met'}" for n, o in over.items() if o.get("min_z") is not None]
    if crit:
        lines += ["", "Accuracy gain over the SFT policy of at least 2 prompt-clustered SEs on every seed: " +
                  "; ".join(crit) + "."]
    alpha = next((d["alpha"] for d in s["decisions"] if "alpha" in d), None)  # the summary's own, not typed here
    codes = list(dict.fromkeys(i["code_commit"] for i in inv if i.get("code_commit")))
    code = f", project code of commit(s) {', '.join(codes)} (`run.json`)" if codes else ""
    timing = (f"; wall time {sum(i['wall_seconds'] for i in inv) / 60:.0f} min on {inv[0]['cpus']} CPU cores in "
              f"{len(inv)} invocation(s), `run.json`") if inv else ""
    lines += ["", f"Source: `{REAL_STUDY}` ({len(s['seeds'])} RL seeds {s['seeds']} x {s['steps']} steps from one SFT "
              f"policy (sha256 {prov.get('sft_sha256', '?')}), test split: {prov['rows']} prompts x {prov['decodes']} "
              f"sampled decodes; mean ± sd over seeds; commit {str(prov.get('git_commit'))[:10]} of the profile "
              f"workspace{code}{timing}). Decided by the one rule (paired t-test over seeds, alpha {alpha}); "
              "`python -m moalign.report --check` recomputes summary.json from the records."]
    return "\n".join(lines)


TOY_STUDIES = {  # block -> (folder, the command that made it): toy studies beside the committed weighting study
    "sft_seeds_study": ("results/toy-sft-seeds",
                        "moalign study run --sft-seeds 0 1 --seeds 0 1 --tuning-seeds --strategies fixed-accuracy "
                        "hypervolume -S train.weighting.hv_scale=3.0 --steps 150 --rows 32 --samples 4 "
                        "--out results/toy-sft-seeds"),
    "paper_unsaturated": ("results/toy-paper-unsaturated",
                          "moalign study run --sft-seeds 0 -S sft.max_steps=100 --seeds 0 1 --tuning-seeds "
                          "--strategies fixed-accuracy hypervolume-paper gradient-paper --steps 60 --rows 32 "
                          "--samples 4 --out results/toy-paper-unsaturated"),
}


def toy_study(name: str) -> Callable[[Path], str]:
    """A toy study's block: decision table, gain over each unit's own SFT policy, per-strategy table, whether each
    strategy's hypervolume signal existed (the records' ``degenerate`` field), which SFT policies; facts from the
    records."""
    folder, cmd = TOY_STUDIES[name]

    def block(root: Path) -> str:
        s = load(root, f"{folder}/summary.json")
        if s is None:
            return missing(f"{folder}/summary.json", cmd)
        runs = load_runs(root, f"{folder}/study/runs.jsonl")
        prov = runs[0]["provenance"]
        policies = dict(sorted({(r.get("sft_seed"), r["provenance"]["sft_sha256"]) for r in runs}))
        inv = (load(root, f"{folder}/run.json") or {}).get("invocations", [])
        lines = [*decision_table(s), "", *start_table(s), "", *strategy_table(s, weights=True)]
        degenerate = {n: [bool((r.get("degenerate") or {}).get("zero_hypervolume")) for r in runs if r["strategy"] == n]
                      for n in s["table"] if n.endswith("-paper") or n.startswith("hypervolume")}
        if degenerate:
            lines += ["", "Hypervolume signal (records' `degenerate.zero_hypervolume`: every validation hypervolume 0): " +
                      "; ".join(f"{n}: zero on {sum(d)}/{len(d)} runs" for n, d in degenerate.items()) + "."]
        alpha = next((d["alpha"] for d in s["decisions"] if "alpha" in d), None)
        timing = (f"; wall time {sum(i['wall_seconds'] for i in inv) / 60:.0f} min on {inv[0]['cpus']} CPU cores in "
                  f"{len(inv)} invocation(s)") if inv else ""
        lines += ["", f"Source: `{folder}` (`{cmd}`; {len(s['seeds'])} units (SFT seed/RL seed) {s['seeds']} x "
                  f"{s['steps']} steps; SFT policies (sha256) " + ", ".join(f"seed {k}: {h}" for k, h in policies.items()) +
                  f"; test split: {prov['rows']} prompts x {prov['decodes']} sampled decodes; mean ± sd over units; commit "
                  f"{str(prov.get('git_commit'))[:10]}{timing}). Decided by the one rule (paired t-test over units, "
                  f"alpha {alpha}); `python -m moalign.report --check` recomputes summary.json from the records."]
        return "\n".join(lines)

    return block


PHRASINGS = "results/smollm2/phrasings.json"


def _gain(g: dict) -> str:
    return f"{g['gain']:+.3f} ({'-' if g['z'] is None else format(g['z'], '+.1f')})"


def real_phrasings(root: Path) -> str:
    """The profile's policies on English problems in held-out phrasings vs the project's own English test rows."""
    r = load(root, PHRASINGS)
    if r is None:
        return missing(PHRASINGS, "python -m moalign.experiments.phrasings --policies models/sft ... (in runs/smollm2)")
    k = r["objectives"].index("accuracy")
    names = {"heldout_phrasings": "held-out phrasings", "own_templates_en": "own templates (en test)"}
    sets = list(next(iter(r["policies"].values())))
    lines = ["| policy | " + " | ".join(f"accuracy, {names.get(n, n)} (prompts)" for n in sets) + " | " +
             " | ".join(f"gain over {next(iter(r['policies']))}, {names.get(n, n)} (z)" for n in sets) + " |",
             "|---" * (1 + 2 * len(sets)) + "|"]
    for p, rec in r["policies"].items():
        g = r["gain_over_first"].get(p)
        acc = " | ".join(f"{pm(rec[n]['point'][k], rec[n]['se'][k])} ({len(rec[n]['per_prompt'])})" for n in sets)
        gains = " | ".join("-" if g is None else _gain(g[n]) for n in sets)
        lines.append(f"| {p} | {acc} | {gains} |")
    lines += ["", f"Source: `{PHRASINGS}` (moalign/experiments/phrasings.py; {r['samples']} sampled decodes per prompt, "
              f"decode seed {r['seed']}; ± one prompt-clustered SE; gains paired by prompt)."]
    return "\n".join(lines)


BLOCKS: dict[str, dict[str, Callable[[Path], str]]] = {
    "README.md": {"results": results, "results_facts": results_facts, "rubric": rubric, "study": study, "decisions": decisions,
                  "calibration": calibration, "rubric_seeds": rubric_seeds, "trl": trl,
                  "real_model": real_model, "real_contest": real_contest, "real_phrasings": real_phrasings, "real_bf16": real_bf16,
                  **{n: toy_study(n) for n in TOY_STUDIES}},
    "benchmarks/README.md": {"study": study, "calibration": calibration},
}
