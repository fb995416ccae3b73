"""Pointwise vs pairwise rubric judging over seeds: the rubric stage as `dvc repro rubric` runs it, base.seed varied.

Each seed runs ``stages.rubric.run`` in a scratch copy of the project (params.yaml with ``base.seed``
replaced, tracking off) against this checkout's ``models/sft`` and ``data/prepared`` (linked, not
copied), so the samples, the label noise, the pair splits and the evolution all change with the seed
while the SFT policy stays the one of the default run. Records go to
``benchmarks/results/rubric_seeds/runs.jsonl`` (one per seed, resumable) and the summary to
``summary.json``: mean ± sd over seeds of each judge's agreement (initial/refined, all test pairs and
the correctness-tie split) and the paired difference pointwise - pairwise on the refined rubric's
tie split. ``python -m moalign.report`` renders it.

    python -m moalign.experiments.rubric_seeds --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import yaml

from moalign.experiments import ROOT, copy_project
from moalign.runlog import RunLog

OUT = ROOT / "benchmarks/results/rubric_seeds"
KEYS = [(j, k) for j in ("pairwise_test", "pointwise_test") for k in ("initial", "refined", "initial_tie", "refined_tie")]


def one_seed(seed: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        work = copy_project(Path(d) / "repo")
        for rel in ("models/sft", "data/prepared"):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(ROOT / rel, work / rel)
        p = yaml.safe_load((ROOT / "params.yaml").read_text())
        p["base"]["seed"] = seed
        p["base"]["threads"] = threads
        p["base"]["tracking"]["enabled"] = False
        (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        cwd = os.getcwd()
        os.chdir(work)
        try:  # this checkout's stages (the copy's are the same code); paths resolve in the copy (cwd)
            from moalign.config import load_params
            from stages.rubric import run

            metrics = run(load_params("params.yaml"))
        finally:
            os.chdir(cwd)
    return {"seed": seed, **metrics}


def summarise(runs: list[dict]) -> dict:
    out: dict = {"seeds": sorted(r["seed"] for r in runs)}
    for j, k in KEYS:
        v = np.asarray([r[j][k] for r in runs if r[j].get(k) is not None], dtype=float)
        out[f"{j}/{k}"] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}
    d = np.asarray([r["pointwise_test"]["refined_tie"] - r["pairwise_test"]["refined_tie"] for r in runs
                    if r["pointwise_test"].get("refined_tie") is not None and r["pairwise_test"].get("refined_tie") is not None])
    out["pointwise_minus_pairwise_refined_tie"] = {"mean": float(d.mean()), "sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                                                   "per_seed": d.round(4).tolist(), "pointwise_better": int((d > 0).sum())}
    out["pairs_test_tie"] = [r.get("pairs_test_tie") for r in sorted(runs, key=lambda r: r["seed"])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    log = RunLog(OUT)
    for seed in a.seeds:
        if seed not in {r["seed"] for r in log.runs}:
            rec = one_seed(seed, a.threads)
            log.add(rec)
            print(f"seed {seed}: pairwise refined tie {rec['pairwise_test']['refined_tie']}, pointwise "
                  f"{rec['pointwise_test']['refined_tie']}", flush=True)
    runs = [r for r in log.runs if r["seed"] in a.seeds]
    (OUT / "summary.json").write_text(json.dumps(summarise(runs), indent=1) + "\n")
    print((OUT / "summary.json").read_text())


if __name__ == "__main__":
    main()
