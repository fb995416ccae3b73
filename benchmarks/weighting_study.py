"""Which weighting should a user pick? One calibration protocol, then every strategy over seeds.

Three phases, each resumable (records appended to ``<out>/<phase>/runs.jsonl``; a rerun skips what is there):

``calibrate``: each dynamic strategy's step knob is chosen from a small grid that includes the
authors' value (:data:`GRID`), on *tuning* seeds that are not the reporting seeds, with the same
budget for both (same steps, same grid size). Each (strategy, value, seed) trains from
``models/sft`` with params.yaml's train section; its final policy is scored on the **validation**
split (``--rows`` prompts per domain x ``--samples`` sampled decodes, expected rewards) and the value
with the largest mean validation hypervolume (reference: origin) over the tuning seeds wins. Writes
``calibration/chosen.json``.

``study``: on the reporting seeds, every strategy: the three fixed presets, both dynamic strategies
with their calibrated knob, and the authors' configuration as written (``hypervolume-paper``,
``gradient-paper``; moalign/rl/paper.py). Each final policy is scored on the **test** split (same
measurement); every run keeps its weight trajectory and validation hypervolume curve.

``summary``: writes ``summary.json`` (per strategy mean and sample sd over seeds of accuracy,
length, clarity, test hypervolume; per-seed standard errors; paired differences with the best fixed
preset; steps until each dynamic strategy's validation hypervolume first reaches the best fixed
preset's final one, paired per seed), ``weights.png`` (mean weight trajectories with min-max seed
bands) and ``front.png``. ``benchmarks/report.py`` renders README tables from these files.

Seeds vary the RL run (prompt order, sampling), not the SFT policy (``dvc repro sft`` of base.seed 0).
One torch thread per training, ``--jobs`` at a time (the issue: at most 2 on this 2-core machine).

    python benchmarks/weighting_study.py calibrate --seeds 100 101 --jobs 2
    python benchmarks/weighting_study.py study --seeds 0 1 2 3 4 --jobs 2
    python benchmarks/weighting_study.py summary
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from runlog import RunLog  # noqa: E402

OUT = ROOT / "benchmarks/results/weighting_study"
PRESETS = ["fixed-accuracy", "fixed-balanced", "fixed-efficiency"]
PAPER = ["hypervolume-paper", "gradient-paper"]
# strategy -> (what the knob is, overrides per grid value); the first value is the authors'
GRID: dict[str, tuple[str, dict[str, dict]]] = {
    "hypervolume": ("hv_scale (meta = 0.5 + 1.5 tanh(hv_scale * relative gain)); authors: 1",
                    {str(v): {"weighting": {"hv_scale": v}} for v in (1.0, 3.0, 10.0, 30.0)}),
    "gradient": ("raw mirror-descent step lr/mu on influences I_i = <g_i, sum g>; authors: 0.1",
                 {str(v): {"weighting": {"influence": "raw", "grad_lr": v, "mu": 1.0}} for v in (0.1, 1.0, 10.0, 100.0)}),
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def one_run(job: dict) -> dict:
    """Train (strategy, overrides, seed) from models/sft; score the final policy on ``job['split']``."""
    import copy

    import datasets
    import torch

    from moalign.config import load_params
    from moalign.evaluate import pick_rows, score_policy
    from moalign.modeling import load_policy, load_tokenizer
    from moalign.pareto import hypervolume
    from moalign.rl.config import TrainConfig
    from moalign.rl.rewards import make_reward
    from moalign.rl.trainer import train

    torch.set_num_threads(job["threads"])
    torch.manual_seed(job["seed"])
    from moalign.provenance import provenance

    base = _merge(load_params(ROOT / "params.yaml").section("train"), {"max_steps": job["steps"]})
    cfg = TrainConfig(**_merge(base, job["over"]))
    # what every run of one study shares (the strategy's own knob and the seed vary, and are in the record)
    shared = {"train": TrainConfig(**base).model_dump(), "split": job["split"], "rows": job["rows"],
              "samples": job["samples"], "sft": _tree_hash(ROOT / "models/sft")}
    sft = ROOT / "models/sft"
    tok, policy = load_tokenizer(sft), load_policy(sft)
    ref = copy.deepcopy(policy).eval().requires_grad_(False) if cfg.kl_coef > 0 else None
    data = {s: list(datasets.load_from_disk(str(ROOT / "data/prepared" / s))) for s in ("train", "val", job["split"])}
    res = train(cfg, job["strategy"], policy, tok, data["train"], data["val"][: cfg.val_rows], job["seed"], ref_model=ref)
    rows = pick_rows(data[job["split"]], job["rows"])
    fns = {o: make_reward(o) for o in cfg.objectives if not o.startswith("conciseness")}
    sc = score_policy(policy, tok, rows, cfg.objectives, fns, cfg.max_new_tokens, samples=job["samples"],
                      temperature=cfg.temperature, seed=10_000 + job["seed"])
    return {"strategy": job["strategy"], "value": job.get("value"), "seed": job["seed"], "steps": cfg.max_steps,
            "split": job["split"], "objectives": cfg.objectives, "point": sc["point"], "se": sc["se"],
            "length": sc["length"], "length_se": sc["length_se"],
            "hypervolume": hypervolume(np.asarray([sc["point"]]), np.zeros(len(cfg.objectives))),
            "styles": sc["styles"], "initial_weights": res.initial_weights, "final_weights": res.final_weights,
            "weights": res.weights, "degenerate": res.degenerate,
            "validation": [{"step": v["step"], "point": v["point"], "hypervolume": v.get("hypervolume", 0.0)}
                           for v in res.validation],
            "rollout_length": [h["charts/completion_length"] for h in res.history],
            "provenance": provenance(shared, ROOT, rows=len(rows), decodes=job["samples"], split=job["split"],
                                     overrides=job["over"], sft_sha256=shared["sft"])}


def _tree_hash(d: Path) -> str:
    """sha256 of a folder's files (names and bytes), first 16 hex digits: which SFT policy a run started from."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(x for x in d.rglob("*") if x.is_file()):
        h.update(str(p.relative_to(d)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _execute(jobs: list[dict], log: RunLog, n: int) -> None:
    with ProcessPoolExecutor(n) as ex:
        for rec in ex.map(one_run, jobs):
            log.add(rec)
            print(f"{rec['split']} seed {rec['seed']} {rec['strategy']} {rec['value'] or ''}: point "
                  f"{np.round(rec['point'], 3)} length {rec['length']:.1f} HV {rec['hypervolume']:.4f} "
                  f"weights {np.round(rec['final_weights'], 3)}", flush=True)


def choose(runs: list[dict]) -> dict[str, dict]:
    """Per strategy: mean validation HV of each grid value over the tuning seeds, and the winner."""
    out = {}
    for strat, (knob, grid) in GRID.items():
        means = {v: [r["hypervolume"] for r in runs if r["strategy"] == strat and r["value"] == v] for v in grid}
        scored = {v: float(np.mean(h)) for v, h in means.items() if h}
        if not scored:
            continue
        best = max(scored, key=scored.get)
        out[strat] = {"knob": knob, "grid": list(grid), "authors": list(grid)[0], "val_hv": scored,
                      "val_hv_sd": {v: float(np.std(h, ddof=1)) if len(h) > 1 else 0.0 for v, h in means.items() if h},
                      "seeds": sorted({r["seed"] for r in runs if r["strategy"] == strat}),
                      "chosen": best, "overrides": grid[best]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("phase", choices=["calibrate", "study", "summary"])
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rows", type=int, default=32, help="prompts per domain scored at the end")
    ap.add_argument("--samples", type=int, default=4, help="sampled decodes per prompt")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--strategies", nargs="+", default=None, help="study: a subset (default all)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    out = Path(a.out)
    common = {"steps": a.steps, "rows": a.rows, "samples": a.samples, "threads": 1}
    if a.phase == "calibrate":
        log = RunLog(out / "calibration")
        done = {(r["strategy"], r["value"], r["seed"]) for r in log.runs}
        jobs = [{**common, "strategy": s, "value": v, "over": over, "seed": seed, "split": "val"}
                for seed in (a.seeds or [100, 101]) for s, (_, grid) in GRID.items() for v, over in grid.items()
                if (s, v, seed) not in done]
        _execute(jobs, log, a.jobs)
        chosen = choose(log.runs)
        (out / "calibration" / "chosen.json").write_text(json.dumps(chosen, indent=1) + "\n")
        print(json.dumps({s: (c["chosen"], c["val_hv"]) for s, c in chosen.items()}, indent=1))
    elif a.phase == "study":
        chosen = json.loads((out / "calibration" / "chosen.json").read_text())
        strategies = a.strategies or [*PRESETS, "hypervolume", "gradient", *PAPER]
        log = RunLog(out / "study")
        done = {(r["strategy"], r["seed"]) for r in log.runs}
        jobs = [{**common, "strategy": s, "value": chosen[s]["chosen"] if s in chosen else None,
                 "over": chosen[s]["overrides"] if s in chosen else {}, "seed": seed, "split": "test"}
                for seed in (a.seeds or [0, 1, 2, 3, 4]) for s in strategies if (s, seed) not in done]
        _execute(jobs, log, a.jobs)
    else:
        from study_summary import summarise

        summarise(out)


if __name__ == "__main__":
    main()
