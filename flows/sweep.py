"""Prefect sweep flow: estimators x seeds (x strategies) as DVC experiments, then a summary.

Every experiment trains all ``train.strategies`` side by side (dvc.yaml's foreach), so a
sweep over estimators and seeds yields, per strategy, the spread of the evaluate stage's
hypervolume and steps-to-dominance. ``jobs == 1`` runs ``dvc exp run`` sequentially;
``jobs > 1`` queues the experiments (``dvc exp run --queue``) and runs ``dvc queue start -j N``.
The summary (mean, std, n per strategy and estimator) is printed and logged to MLflow.

    python -m flows.sweep run --estimators grpo rloo --seeds 0 1 2
    python -m flows.sweep serve --cron "0 4 * * 0" --estimators grpo rloo --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger, task

from moalign.config import load_params
from moalign.tracking import git_commit


def _dvc(*args: str) -> str:
    p = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def exp_args(estimator: str, seed: int, strategies: list[str] | None, name: str) -> list[str]:
    a = ["exp", "run", "-n", name, "-S", f"train.estimator={estimator}", "-S", f"base.seed={seed}"]
    if strategies:
        a += ["-S", "train.strategies=[" + ",".join(strategies) + "]"]
    return a


@task(retries=1, retry_delay_seconds=5, task_run_name="{name}")
def run_experiment(estimator: str, seed: int, strategies: list[str] | None, name: str, queue: bool) -> dict | None:
    """One experiment; returns its evaluate metrics (sequential mode) or None (queued)."""
    _dvc(*exp_args(estimator, seed, strategies, name), *(["--queue"] if queue else []))
    if queue:
        return None
    return json.loads(Path("metrics/evaluate.json").read_text())


def collect_queued(names: list[str]) -> dict[str, dict]:
    """Evaluate metrics of finished experiments, read from their git refs."""
    out = {}
    for n in names:
        p = subprocess.run(["git", "show", f"refs/exps/{n}:metrics/evaluate.json"], capture_output=True, text=True)
        if p.returncode == 0:
            out[n] = json.loads(p.stdout)
        else:  # experiment refs live under refs/exps/<sha>/<sha>/<name>
            refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True,
                                  text=True).stdout.split()
            ref = next((r for r in refs if r.endswith("/" + n)), None)
            if ref:
                out[n] = json.loads(subprocess.run(["git", "show", f"{ref}:metrics/evaluate.json"],
                                                   capture_output=True, text=True, check=True).stdout)
    return out


SUMMARY_KEYS = ("hypervolume", "accuracy", "length", "clarity", "weight_shift")


def summary_frame(results: dict[str, dict], meta: dict[str, tuple[str, int]]):
    """pandas DataFrame, one row per strategy and estimator: mean, sd (over seeds) and n of each
    reported quantity (hypervolume, accuracy, length, clarity, weight_shift) and steps-to-dominance."""
    import pandas as pd

    rows = []
    for name, m in results.items():
        est, seed = meta[name]
        for pol, v in m.items():
            if not isinstance(v, dict) or "hypervolume" not in v or pol == "sft":
                continue
            rows.append({"strategy": pol, "estimator": est, "seed": seed, **{k: v.get(k) for k in SUMMARY_KEYS},
                         "steps_to_dominance": v.get("steps_to_dominance")})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    out = []
    for (pol, est), d in df.groupby(["strategy", "estimator"], sort=True):
        row = {"strategy": pol, "estimator": est, "n": len(d)}
        for k in SUMMARY_KEYS:
            x = pd.to_numeric(d[k], errors="coerce").dropna()
            row[f"{k}_mean"] = float(x.mean()) if len(x) else float("nan")
            row[f"{k}_sd"] = float(x.std(ddof=1)) if len(x) > 1 else float("nan")
        reached = d["steps_to_dominance"].dropna()
        row["steps_to_dominance_mean"] = float(reached.mean()) if len(reached) else float("nan")
        row["reached"] = int(len(reached))
        out.append(row)
    return pd.DataFrame(out)


def summarize(results: dict[str, dict], meta: dict[str, tuple[str, int]]) -> dict[str, dict[str, float]]:
    """{strategy/estimator: {hv_mean, hv_std, n, accuracy_mean, ..., steps_to_dominance_mean, reached}}."""
    df = summary_frame(results, meta)
    out = {}
    for r in df.to_dict("records"):
        out[f"{r['strategy']}/{r['estimator']}"] = {
            "hv_mean": r["hypervolume_mean"], "hv_std": r["hypervolume_sd"], "n": r["n"],
            **{k: v for k, v in r.items() if k not in ("strategy", "estimator", "n")}}
    return out


@flow(name="moalign-sweep")
def sweep(estimators: list[str], seeds: list[int], strategies: list[str] | None = None, jobs: int = 1) -> dict:
    logger = get_run_logger()
    params = load_params()
    stamp = time.strftime("%m%d%H%M%S")
    meta = {f"sw-{e}-s{s}-{stamp}": (e, s) for e, s in itertools.product(estimators, seeds)}
    results: dict[str, dict] = {}
    for name, (e, s) in meta.items():
        r = run_experiment(e, s, strategies, name, queue=jobs > 1)
        if r is not None:
            results[name] = r
    if jobs > 1:
        _dvc("queue", "start", "-j", str(jobs))
        while any(w in _dvc("queue", "status") for w in ("Running", "Queued")):
            time.sleep(10)
        results = collect_queued(list(meta))
    summary = summarize(results, meta)
    for k, v in summary.items():
        logger.info("%-28s hv %.4f +- %.4f (n=%d)  steps-to-dominance %.1f (reached %d)", k, v["hv_mean"],
                    v["hv_std"], v["n"], v["steps_to_dominance_mean"], v["reached"])
    if params.base.tracking.enabled:
        import mlflow

        mlflow.set_tracking_uri(params.base.tracking.uri)
        mlflow.set_experiment(params.base.tracking.experiment)
        with mlflow.start_run(run_name="sweep", tags={"moalign.stage": "sweep", "moalign.git_commit": git_commit()}):
            mlflow.log_params({"estimators": ",".join(estimators), "seeds": ",".join(map(str, seeds))})
            mlflow.log_metrics({f"{k.replace('/', '_')}/{m}": float(x) for k, v in summary.items()
                                for m, x in v.items() if np.isfinite(x)})
            mlflow.log_dict(summary, "sweep_summary.json")
            frame = summary_frame(results, meta)
            if len(frame):
                mlflow.log_table(data=frame, artifact_file="sweep_summary.json.table.json")
                Path("metrics").mkdir(exist_ok=True)
                frame.to_csv("metrics/sweep_summary.csv", index=False)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.sweep")
    ap.add_argument("cmd", choices=["run", "deploy", "serve"])
    ap.add_argument("--estimators", nargs="+", default=["grpo"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="*", default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cron", help='cron string for deploy/serve, e.g. "0 4 * * 0"')
    ap.add_argument("--name", default="moalign-sweep-cron")
    a = ap.parse_args(argv)
    kw = {"estimators": a.estimators, "seeds": a.seeds, "strategies": a.strategies, "jobs": a.jobs}
    if a.cmd == "run":
        print("SUMMARY " + json.dumps(sweep(**kw)))
        return 0
    if not a.cron:
        ap.error("--cron is required for deploy/serve")
    dep = sweep.to_deployment(name=a.name, cron=a.cron, parameters=kw)
    if a.cmd == "deploy":
        print(dep.apply())
    else:
        from prefect import serve

        serve(dep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
