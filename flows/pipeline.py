"""Prefect flow: one task per DVC stage, in DAG order, under one MLflow parent run.

Each task runs ``dvc repro --single-item <stage>`` so ``dvc.lock`` stays the record of what
produced what (an up-to-date stage is skipped by DVC). The flow opens an MLflow parent run
and passes its id to the stage processes in ``MOALIGN_PARENT_RUN_ID``, so every stage run is
nested under it. Works without a Prefect server (ephemeral mode).

``--parallel N`` runs the independent ``train@*`` stages up to N at once (one GPU each when
GPUs exist, else an equal share of the CPU threads) and records them with ``dvc commit``, since
concurrent ``dvc repro`` processes collide on DVC's repo lock: flows/parallel.py says why.

    python -m flows.pipeline run [--force]            # run now
    python -m flows.pipeline run --parallel 2         # up to 2 train@* strategies at once
    python -m flows.pipeline deploy --cron "0 3 * * *" # register a cron deployment
    python -m flows.pipeline serve --cron "0 3 * * *"  # register and serve it (blocks)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task

from flows.parallel import groups, is_stale, run_parallel
from moalign.config import load_params
from moalign.io import write_text
from moalign.tracking import PARENT_ENV, git_commit


def stage_order(dvc_yaml: str | Path = "dvc.yaml", params_yaml: str | Path = "params.yaml") -> list[str]:
    """DVC stage names in the order dvc.yaml lists them (its DAG order), foreach expanded."""
    spec = yaml.safe_load(Path(dvc_yaml).read_text())["stages"]
    params = yaml.safe_load(Path(params_yaml).read_text())
    names: list[str] = []
    for name, body in spec.items():
        if "foreach" in body:
            items = body["foreach"]
            if isinstance(items, str):  # ${a.b} interpolation from params.yaml
                cur = params
                for part in items.strip("${} ").split("."):
                    cur = cur[part]
                items = cur
            names += [f"{name}@{i}" for i in items]
        else:
            names.append(name)
    return names


@task(retries=1, retry_delay_seconds=5, task_run_name="{stage}")
def dvc_stage(stage: str, force: bool = False, env: dict[str, str] | None = None,
              log_dir: str | None = None) -> dict:
    """Run one DVC stage (its own dependencies are not rerun: the flow orders them).

    A stage that ``dvc status --json`` finds up to date is skipped without starting DVC's repro (the
    same check as flows/parallel.py). Returns ``{"seconds", "ran"}``; the stage's output goes to the
    task log and, with ``log_dir``, to ``<log_dir>/<stage>.log``."""
    logger = get_run_logger()
    full = {**os.environ, **(env or {})}
    t = time.perf_counter()
    if not force and not is_stale(stage, env=full):
        logger.info("%s: up to date (dvc status), skipped", stage)
        return {"seconds": time.perf_counter() - t, "ran": False}
    cmd = ["dvc", "repro", "--single-item", stage] + (["--force"] if force else [])
    logger.info("$ %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=full, capture_output=True, text=True)
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        write_text(Path(log_dir) / f"{stage}.log", proc.stdout + proc.stderr)
    logger.info(proc.stdout[-4000:])
    if proc.returncode:
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return {"seconds": time.perf_counter() - t, "ran": True}


@task(task_run_name="parallel: {stages}")
def parallel_stages(stages: list[str], n: int, force: bool = False, env: dict[str, str] | None = None) -> dict:
    """Run independent stages up to ``n`` at once, then record them in dvc.lock (flows/parallel.py)."""
    logger = get_run_logger()
    t = time.perf_counter()
    ran = run_parallel(stages, n, env or {}, log=logger.info, force=force)
    return {"seconds": time.perf_counter() - t, "ran": bool(ran)}


@flow(name="moalign-pipeline")
def pipeline(stages: list[str] | None = None, force: bool = False, params: str = "params.yaml",
             parallel: int = 1, run_name: str = "pipeline", tags: dict[str, str] | None = None,
             env: dict[str, str] | None = None, log_dir: str | None = None) -> dict:
    """Run the DAG under an MLflow parent run (``parallel`` > 1: train@* stages concurrently).

    Returns the parent run id, the stages, and per stage (a parallel group under its names joined by
    ``+``) the wall ``seconds`` and whether it ``ran`` (False: DVC found it up to date); the parent run
    gets ``wall_s/<stage>`` metrics. flows/profile.py runs its workspace through this flow."""
    cfg = load_params(params)  # fail fast, with the key named, before any stage runs
    order = stages or stage_order(params_yaml=params)
    env = {"MOALIGN_PARAMS": params, **(env or {})}
    parent_id = ""
    mlflow = None
    if cfg.base.tracking.enabled:
        import mlflow

        mlflow.set_tracking_uri(cfg.base.tracking.uri)
        mlflow.set_experiment(cfg.base.tracking.experiment)
        run = mlflow.start_run(run_name=run_name, tags={"moalign.stage": "pipeline", "moalign.git_commit": git_commit(),
                                                        **(tags or {})})
        parent_id = run.info.run_id
        env[PARENT_ENV] = parent_id
        mlflow.log_param("stages", ",".join(order))
    status = "FAILED"
    done: dict[str, dict] = {}
    try:
        for group in groups(order):
            if parallel > 1 and len(group) > 1:
                done["+".join(group)] = parallel_stages(group, parallel, force=force, env=env)
            else:
                for s in group:
                    done[s] = dvc_stage(s, force=force, env=env, log_dir=log_dir)
        status = "FINISHED"
    finally:
        if mlflow is not None:
            mlflow.log_metrics({f"wall_s/{k.replace('@', '_').replace('+', '_')}": v["seconds"] for k, v in done.items()})
            mlflow.end_run(status=status)
    return {"parent_run_id": parent_id, "stages": ",".join(order),
            "seconds": {k: v["seconds"] for k, v in done.items()}, "ran": {k: v["ran"] for k, v in done.items()}}


def deployment(cron: str, name: str = "moalign-pipeline-cron"):
    return pipeline.to_deployment(name=name, cron=cron)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.pipeline")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the pipeline now")
    r.add_argument("--force", action="store_true", help="rerun stages even when DVC finds them up to date")
    r.add_argument("--stages", nargs="*", help="subset of stages, in order")
    r.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="run up to N independent train@* stages at once (one GPU each, or cores // N threads)")
    for n in ("deploy", "serve"):
        p = sub.add_parser(n, help=f"{n} a cron-scheduled deployment")
        p.add_argument("--cron", required=True, help='cron string, e.g. "0 3 * * *"')
        p.add_argument("--name", default="moalign-pipeline-cron")
    a = ap.parse_args(argv)
    if a.cmd == "run":
        print(pipeline(stages=a.stages, force=a.force, parallel=max(1, a.parallel)))
    elif a.cmd == "deploy":
        print(deployment(a.cron, a.name).apply())
    else:
        from prefect import serve

        serve(deployment(a.cron, a.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
