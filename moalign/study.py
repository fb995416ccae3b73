"""``moalign study``: which reward weighting should a user pick? One calibration protocol, then every strategy over seeds.

The study trains through the train stage's own loading path (moalign/rl/run.py ``train_from_sft``: ``models/sft``
and ``data/prepared`` of the current project, params.yaml's train section with ``-S key=value`` overrides) and
writes, under ``--out``:

``calibration/runs.jsonl``, ``calibration/chosen.json``: each dynamic strategy's step knob is chosen from a
small grid that includes the authors' value (:data:`GRID`), on *tuning* seeds that are not the reporting
seeds, with the same budget for each value. Each (strategy, value, seed) is scored on **validation** rows that
the trainer never validates on (rows after the first ``train.val_rows``, which are the training-time
validation points: :func:`held_out_val`), ``--rows`` prompts per domain x ``--samples`` sampled decodes; the
value with the largest mean validation hypervolume (reference: origin) over the tuning seeds wins (:func:`choose`).

``study/runs.jsonl``: on the reporting seeds, every strategy (dynamic ones with their calibrated knob), each
final policy scored on the **test** split with the same measurement; every record keeps its weight trajectory
and validation curve.

``summary.json`` (moalign/study_summary.py: per-strategy means and sds over seeds, paired differences with the
best fixed preset, the decision table by one rule), ``decisions.md`` (that table, rendered), ``weights.png``,
``front.png``.

``--sft-seeds K ...`` re-runs SFT too: the sft stage once per SFT seed, each in its own folder
``<out>/sft/seed<k>`` (:func:`sft_workspace`), and every reporting run, start row and calibration run from each
(calibration from the first); records carry ``sft_seed`` and the summary pairs on (SFT seed, RL seed), so the
verdicts cover the variation of the whole pipeline, not of one SFT policy (issue 27).

Records are appended as each run ends and a rerun skips what is there (resumable); each carries provenance
(moalign/provenance.py) and records made with another config are refused, so they are never averaged together.
The orchestration (Prefect tasks, a Dask cluster, the MLflow parent run) is flows/study.py.

Why the grid is a constant here and not a ``study:`` section of params.yaml: it is part of the study's
protocol (the committed records' ``chosen.json`` is recomputed from it by ``python -m moalign.report --check``), not
a setting of a pipeline stage; params.yaml holds what DVC stages read, and every train setting a user may change
reaches the study through ``-S train.<key>=...``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from moalign.study_summary import PRESETS  # noqa: E402,F401  (the fixed presets the summary compares with)

PAPER = ["hypervolume-paper", "gradient-paper"]
# strategy -> (what the knob is, overrides of the train section per grid value); the first value is the authors'
GRID: dict[str, tuple[str, dict[str, dict]]] = {
    "hypervolume": ("hv_scale (meta = 0.5 + 1.5 tanh(hv_scale * relative gain)); authors: 1",
                    {str(v): {"weighting": {"hv_scale": v}} for v in (1.0, 3.0, 10.0, 30.0)}),
    "paretopo": ("hv_scale of its hypervolume stage (as hypervolume); authors: 1",
                 {str(v): {"weighting": {"hv_scale": v}} for v in (1.0, 3.0, 10.0, 30.0)}),
    "gradient": ("raw mirror-descent step lr/mu on influences I_i = <g_i, sum g>; authors: 0.1",
                 {str(v): {"weighting": {"influence": "raw", "grad_lr": v, "mu": 1.0}} for v in (0.1, 1.0, 10.0, 100.0)}),
}


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


# ---- params: params.yaml + `-S key=value` -------------------------------------------------------------------

def load_study_params(path: str | Path = "params.yaml", sets: list[str] | None = None):
    """params.yaml with ``sets`` applied, validated (unknown keys and bad values name the key and the fix)."""
    import yaml

    from moalign.config import Params
    from moalign.schema import ParamsError

    p = Path(path)
    if not p.exists():
        raise ParamsError(f"params file {str(p)!r} not found. Fix: run from the repo root or pass --params PATH")
    from moalign.config import apply_sets

    raw = apply_sets(yaml.safe_load(p.read_text()) or {}, sets)
    try:
        return Params(raw)
    except ParamsError as e:
        raise ParamsError(f"{p}{' with -S ' + ' '.join(sets) if sets else ''}: {e}") from None


def check_strategies(params, strategies: list[str]) -> None:
    """Every name is a known strategy and one is a fixed preset (the study's baseline); else a ValueError."""
    from moalign.rl.run import train_config
    from moalign.rl.weighting import make_weighting

    cfg = train_config(params)
    for s in strategies:
        try:
            make_weighting(s, cfg.objectives, cfg.for_strategy(s).weighting)
        except Exception as e:  # noqa: BLE001 - the registry's own message names the valid ones
            raise ValueError(f"--strategies {s!r}: {str(e).splitlines()[0]}") from None
    if not any(s.startswith("fixed") for s in strategies):
        raise ValueError(f"--strategies {strategies} has no fixed preset: the study compares every strategy with the "
                         "best fixed one. Fix: add one of " + ", ".join(PRESETS))
    if "accuracy" not in cfg.objectives:
        raise ValueError(f"train.objectives {cfg.objectives} lacks accuracy, which the study's summary compares. "
                         "Fix: keep accuracy among the objectives")


# ---- what a run scores ----------------------------------------------------------------------------------------

def tree_hash(d: Path) -> str:
    """sha256 of a folder's files (names and bytes), first 16 hex digits: which SFT policy a run started from."""
    h = hashlib.sha256()
    for p in sorted(x for x in Path(d).rglob("*") if x.is_file()):
        h.update(str(p.relative_to(d)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def held_out_val(val: list[dict], val_rows: int) -> tuple[list[dict], int]:
    """(validation rows the trainer never scores, their first index): everything after ``val[:val_rows]``."""
    rest = val[val_rows:]
    if not rest:
        raise ValueError(f"the validation split has {len(val)} rows and the trainer validates on the first "
                         f"train.val_rows = {val_rows}: none are left to score calibration on. Fix: lower "
                         "train.val_rows (-S train.val_rows=N) or prepare more validation rows")
    return rest, val_rows


def scored_rows(split: str, val_rows: int, per_domain: int, root: str | Path = ".") -> tuple[list[dict], list[int]]:
    """(rows a final policy is scored on, their indices in ``split``): ``per_domain`` per domain of the test
    split, or of the validation rows after the trainer's ``val_rows`` (``split == "val"``)."""
    from moalign.data import rows_per_domain
    from moalign.rl.run import load_split

    rows = load_split(split, root)
    start = 0
    if split == "val":
        rows, start = held_out_val(rows, val_rows)
    index = {id(r): start + i for i, r in enumerate(rows)}
    picked = rows_per_domain(rows, per_domain)
    if not picked:
        raise ValueError(f"the {split} split is empty. Fix: regenerate data/prepared (prepare stage)")
    return picked, [index[id(r)] for r in picked]


def shared_config(params, steps: int | None, split: str, rows: int, samples: int, sft: str) -> dict:
    """What every run of one phase shares (the fingerprint its records carry; the knob and the seed vary)."""
    from moalign.rl.run import train_config

    cfg = train_config(params, None, steps)
    out = {"train": cfg.model_dump(), "split": split, "rows": rows, "samples": samples, "sft": sft}
    if split == "val":  # calibration scores rows after the trainer's own validation rows (held_out_val)
        out["val_scored_from"] = cfg.val_rows
    return out


def sft_workspace(out: Path, sft_seed: int, root: Path, raw: dict[str, Any]) -> Path:
    """``<out>/sft/seed<k>``: a project folder of its own for one SFT seed (``--sft-seeds``): the project's params with
    ``base.seed = k`` (tracking into the project's MLflow store), and ``data`` linked to the project's, so the sft
    stage runs there unchanged and writes ``models/sft``, ``checkpoints/sft`` (resumable), ``metrics``, ``plots``."""
    import yaml

    from moalign.io import write_text

    ws = Path(out).resolve() / "sft" / f"seed{sft_seed}"
    ws.mkdir(parents=True, exist_ok=True)
    raw = json.loads(json.dumps(raw))
    raw.setdefault("base", {})["seed"] = int(sft_seed)
    write_text(ws / "params.yaml", yaml.safe_dump(raw, sort_keys=False))
    data = ws / "data"
    if not data.exists():
        if not (root / "data" / "prepared").is_dir() or not (root / "data" / "balanced").is_dir():
            raise FileNotFoundError(f"{root / 'data'}/prepared and balanced not found: --sft-seeds trains SFT on the "
                                    "project's prepared data and balance plan. Fix: `dvc repro balance` first")
        data.symlink_to((root / "data").resolve(), target_is_directory=True)
    return ws


def run_sft(ws: Path, root: Path) -> str:
    """The sft stage in workspace ``ws`` (a subprocess, as ``dvc repro`` runs it; resumes from its checkpoints),
    unless ``ws/models/sft`` is already there; returns that policy's :func:`tree_hash`."""
    import subprocess
    import sys

    if not (ws / "models" / "sft" / "config.json").exists():
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        done = subprocess.run([sys.executable, "-m", "stages.sft", "--params", "params.yaml"], cwd=ws, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"the sft stage failed in {ws} (exit {done.returncode}); its output is above. "
                               "Fix what it names and rerun: finished SFT seeds are kept")
    return tree_hash(ws / "models" / "sft")


def selection_file(job: dict, cfg) -> Path | None:
    """Where a run's pass rates (train.prompt_selection) are kept: ``<out>/selection/<key>.json``, measured once per
    (SFT policy, seed, selection settings) and shared by every strategy of that seed, as the train stage does."""
    from moalign.rl.selection import cache_key

    if not cfg.prompt_selection.enabled or not job.get("out"):
        return None
    return Path(job["out"]) / "selection" / f"{cache_key(cfg, job['seed'], job['sft'])}.json"


def run_name(job: dict) -> str:
    value = f"={job['value']}" if job.get("value") else ""
    sft = f"@sft{job['sft_seed']}" if job.get("sft_seed") is not None else ""
    return f"{job['phase']}:{job['strategy']}{value}{sft}@seed{job['seed']}"


def one_run(job: dict) -> dict:
    """Train (strategy, overrides, seed) from ``<root>/models/sft``; score the final policy on ``job['split']``.

    ``job``: params (the raw dict, -S applied), root, phase, strategy, value, over, seed, split, steps, rows,
    samples, threads, sft (tree hash of the policy it starts from), sft_id (what the phase's shared config records:
    that hash, or the SFT seeds and settings with ``--sft-seeds``), sft_seed (with ``--sft-seeds``), parent_run_id. One MLflow run (nested under the study's parent run)
    holds the run's params, its training curves and the final objectives and hypervolume.
    """
    from moalign.config import Params, flatten
    from moalign.evaluate import score_policy
    from moalign.pareto import hypervolume
    from moalign.provenance import provenance
    from moalign.rl.rewards import scoring_rewards
    from moalign.rl.run import start_policy, train_config, train_from_sft
    from moalign.tracking import stage_run

    params, root = Params(job["params"]), Path(job["root"])
    cfg = train_config(params, job["over"], job["steps"])
    shared = shared_config(params, job["steps"], job["split"], job["rows"], job["samples"], job.get("sft_id", job["sft"]))
    logged = flatten(cfg.model_dump(mode="json"), "train") | {
        "strategy": job["strategy"], "seed": job["seed"], "phase": job["phase"], "value": job.get("value"),
        "split": job["split"], "rows": job["rows"], "samples": job["samples"]}
    tags = {"moalign.strategy": job["strategy"], "moalign.study_phase": job["phase"], "moalign.seed": str(job["seed"])}
    began = time.perf_counter()
    with stage_run("study", params.base.tracking, logged, run_name=run_name(job), tags=tags,
                   parent_run_id=job.get("parent_run_id") or None) as tr:
        if job["phase"] == "start":  # the SFT policy itself, scored as every run's final policy is
            (policy, tok), res = start_policy(params, root, job.get("threads")), None
        else:
            policy, tok, res = train_from_sft(params, job["strategy"], job["seed"], overrides=job["over"],
                                              steps=job["steps"], root=root, threads=job.get("threads"),
                                              log_fn=tr.log_metrics, selection_cache=selection_file(job, cfg))
        rows, index = scored_rows(job["split"], cfg.val_rows, job["rows"], root)
        fns = scoring_rewards(cfg)
        sc = score_policy(policy, tok, rows, cfg.objectives, fns, cfg.max_new_tokens, samples=job["samples"],
                          temperature=cfg.temperature, seed=10_000 + job["seed"])
        hv = hypervolume(np.asarray([sc["point"]]), np.zeros(len(cfg.objectives)))
        tr.log_metrics({**{f"final/{o}": v for o, v in zip(cfg.objectives, sc["point"])},
                        "final/length": sc["length"], "final/hypervolume": hv})
    return {"strategy": job["strategy"], "value": job.get("value"), "seed": job["seed"],
            **({"sft_seed": job["sft_seed"]} if job.get("sft_seed") is not None else {}),
            "steps": 0 if res is None else cfg.max_steps,
            "split": job["split"], "objectives": cfg.objectives, "point": sc["point"], "se": sc["se"],
            "length": sc["length"], "length_se": sc["length_se"], "hypervolume": hv,
            "per_prompt": np.round(sc["per_prompt"], 6).tolist(),  # (rows, K): paired-by-prompt gains (summary)
            "styles": sc["styles"], **({} if res is None else {
                "initial_weights": res.initial_weights, "final_weights": res.final_weights,
                "weights": res.weights, "degenerate": res.degenerate, "selection": res.selection,
                "validation": [{"step": v["step"], "point": v["point"], "hypervolume": v.get("hypervolume", 0.0)}
                               for v in res.validation],
                "rollout_length": [h["charts/completion_length"] for h in res.history],
                "informative_groups": [h.get("train/informative_groups/accuracy") for h in res.history]}),
            "row_index": index, "seconds": round(time.perf_counter() - began, 1),
            "provenance": provenance(shared, root, rows=len(rows), decodes=job["samples"], split=job["split"],
                                     overrides=job["over"], sft_sha256=job["sft"])}


# ---- planning -------------------------------------------------------------------------------------------------

def calibration_jobs(strategies: list[str], tuning_seeds: list[int], done: set) -> list[dict]:
    """(strategy, grid value, tuning seed) of each dynamic strategy in ``strategies`` with a grid, less ``done``."""
    return [{"phase": "calibrate", "strategy": s, "value": v, "over": over, "seed": seed, "split": "val"}
            for seed in tuning_seeds for s in strategies if s in GRID for v, over in GRID[s][1].items()
            if (s, v, seed) not in done]


def study_jobs(strategies: list[str], seeds: list[int], chosen: dict, done: set) -> list[dict]:
    """(strategy, seed) on the test split; a calibrated strategy with its chosen knob."""
    return [{"phase": "study", "strategy": s, "value": chosen[s]["chosen"] if s in chosen else None,
             "over": chosen[s]["overrides"] if s in chosen else {}, "seed": seed, "split": "test"}
            for seed in seeds for s in strategies if (s, seed) not in done]


def start_jobs(seeds: list[int], done: set) -> list[dict]:
    """The SFT policy (phase ``start``, strategy ``sft``) scored on the test split with each reporting seed's decodes:
    what every strategy's gain over its starting point is measured against (study_summary.over_start)."""
    return [{"phase": "start", "strategy": "sft", "value": None, "over": {}, "seed": seed, "split": "test"}
            for seed in seeds if ("sft", seed) not in done]


def check_resumable(runs: list[dict], config: dict, where: Path) -> None:
    """Refuse (before any training) to add runs of ``config`` to records made with another config."""
    from moalign.provenance import config_hash, same_config

    same_config(runs, str(where), config_hash(config))


# ---- summary --------------------------------------------------------------------------------------------------

def decisions_md(summary: dict, out: Path) -> str:
    """decisions.md: the decision table, the per-strategy means and the calibration choices."""
    from moalign.study_summary import decision_table, start_table

    objs = summary["objectives"]
    alpha = next((d["alpha"] for d in summary["decisions"] if "alpha" in d), None)
    lines = [f"# Which weighting should a user pick? ({out})", "",
             (f"{len(summary['seeds'])} reporting seeds {summary['seeds']}" if not summary.get("sft_seeds") else
              f"{len(summary['seeds'])} (SFT seed/RL seed) pairs {summary['seeds']}: SFT re-run per SFT seed "
              f"{summary['sft_seeds']}, the seeds below are those pairs") + f" x {summary['steps']} steps, test split. "
             f"Best fixed preset by mean test HV: **{summary['best_fixed']}**. Every row is decided by one rule: a "
             f"two-sided paired t-test over the seeds at alpha = {alpha} (tie when not significant).", "",
             *decision_table(summary), "", *start_table(summary), "",
             "| strategy | knob | " + " | ".join(objs) + " | length | test HV |",
             "|---" * (len(objs) + 4) + "|"]
    for n, t in summary["table"].items():
        lines.append(f"| {n} | {t.get('value') or '-'} | " +
                     " | ".join(f"{t[o]['mean']:.3f} ± {t[o]['sd']:.3f}" for o in objs) +
                     f" | {t['length']['mean']:.1f} ± {t['length']['sd']:.1f} | "
                     f"{t['hypervolume']['mean']:.4f} ± {t['hypervolume']['sd']:.4f} |")
    if summary.get("calibration"):
        lines += ["", "Calibration (mean validation HV over the tuning seeds, on validation rows the trainer never "
                  "validates on):", ""]
        for n, c in summary["calibration"].items():
            grid = ", ".join(f"{v}: {c['val_hv'][v]:.4f}" for v in c["grid"] if v in c["val_hv"])
            lines.append(f"- {n}: {c['knob']}; {grid}; chosen **{c['chosen']}** (authors: {c['authors']}), "
                         f"tuning seeds {c['seeds']}")
    return "\n".join(lines) + "\n"


def log_invocation(out: Path, began: float, ended: float, status: str, records: int) -> None:
    """Append this invocation's wall time to ``<out>/run.json`` (``invocations``: a resumed study has several)."""
    import platform
    import sys

    from moalign.io import write_text
    from moalign.provenance import git_state

    path = Path(out) / "run.json"
    old = json.loads(path.read_text()) if path.exists() else {"invocations": []}
    commit, dirty = git_state(Path.cwd())
    old["invocations"].append({
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(began)), "wall_seconds": round(ended - began, 1),
        "status": status, "records_after": records, "argv": sys.argv[1:], "git_commit": commit, "git_dirty": dirty,
        "cpus": os.cpu_count(), "platform": platform.platform()})
    write_text(path, json.dumps(old, indent=1) + "\n")


def finish(out: str | Path) -> dict:
    """summary.json, weights.png, front.png and decisions.md in ``out`` from its records."""
    from moalign.study_summary import summarise

    out = Path(out)
    summary = summarise(out)
    (out / "decisions.md").write_text(decisions_md(summary, out))
    return summary


def write_chosen(out: Path, runs: list[dict]) -> dict:
    chosen = choose(runs)
    (out / "calibration").mkdir(parents=True, exist_ok=True)
    (out / "calibration" / "chosen.json").write_text(json.dumps(chosen, indent=1) + "\n")
    return chosen


def describe(rec: dict) -> str:
    sft = f"SFT seed {rec['sft_seed']} " if rec.get("sft_seed") is not None else ""
    return (f"{rec['split']} {sft}seed {rec['seed']} {rec['strategy']} {rec['value'] or ''}: point "
            f"{np.round(rec['point'], 3)} length {rec['length']:.1f} HV {rec['hypervolume']:.4f} "
            + (f"weights {np.round(rec['final_weights'], 3)}" if "final_weights" in rec else "(the SFT policy)"))


def absolute_tracking(raw: dict[str, Any], root: Path) -> dict[str, Any]:
    """``raw`` with a relative ``sqlite:///file`` tracking uri made absolute (worker processes share the store)."""
    uri = ((raw.get("base") or {}).get("tracking") or {}).get("uri", "sqlite:///mlflow.db")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        raw = json.loads(json.dumps(raw))
        raw.setdefault("base", {}).setdefault("tracking", {})["uri"] = f"sqlite:///{(root / uri[10:]).resolve()}"
    return raw
