"""Prefect flow of ``moalign study``: one task per (strategy, seed) run, under one MLflow parent run.

Calibration runs, then the reporting runs (moalign/study.py says what each scores), each a Prefect task. By
default the runs go one after another in this process. ``--dask`` runs them on a Dask cluster through
``prefect_dask.DaskTaskRunner``: a ``LocalCluster`` of ``--workers`` processes with one thread each (torch gets
``cores // workers`` threads per run), or the cluster at ``--dask-address tcp://host:8786`` when one machine is
not enough (its workers need this package installed and the project folder, models/sft and data/prepared, at
the same path). Either way each record is appended to ``runs.jsonl`` by this process as its run ends, so an
interrupted study resumes where it stopped.

MLflow: the flow opens a parent run ``study`` (params: strategies, seeds, steps, -S overrides), every run is a
nested run with its params, training curves and final objectives and hypervolume, and summary.json and
decisions.md are artifacts of the parent.

    moalign study run [--params params.yaml] [-S train.max_steps=40 ...] [--strategies ...] [--seeds 0 1 2] [--sft-seeds 0 1]
                      [--tuning-seeds 100 101] [--steps N] [--rows N --samples N] [--out results/study/default]
                      [--workers 2] [--dask] [--dask-address tcp://...]
    moalign study summary --out DIR        # summary.json + decisions.md from the records there
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from prefect import flow, task

from moalign import study as core
from moalign.runlog import RunLog
from moalign.tracking import git_commit

log = logging.getLogger("moalign.study")
DEFAULT_OUT = "results/study/default"


def _no_cache():
    try:
        from prefect.cache_policies import NONE

        return NONE
    except ImportError:  # pragma: no cover - older Prefect
        return None


@task(task_run_name="{name}", cache_policy=_no_cache())
def study_run(job: dict, name: str) -> dict:
    """One (strategy, knob value, seed) run: train from models/sft, score, return the record."""
    return core.one_run(job)


@task(task_run_name="sft@seed{sft_seed}", cache_policy=_no_cache())
def sft_stage(ws: str, root: str, sft_seed: int) -> str:
    """The sft stage of one SFT seed in its own folder (``--sft-seeds``); the policy's tree hash."""
    return core.run_sft(Path(ws), Path(root))


class Parent:
    """The study's MLflow parent run, through MlflowClient (the nested runs start in this process too, so the
    parent is never the fluent API's active run); a no-op when tracking is off or unreachable and not required."""

    def __init__(self, tracking, params: dict[str, str]) -> None:
        self.client, self.run_id = None, ""
        if not tracking.enabled:
            return
        from moalign.errors import ServiceError
        from moalign.tracking import check_server

        try:
            why = check_server(tracking.uri)
            if why is not None:
                raise RuntimeError(why)
            from mlflow import MlflowClient

            self.client = MlflowClient(tracking.uri)
            exp = self.client.get_experiment_by_name(tracking.experiment)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(tracking.experiment)
            run = self.client.create_run(exp_id, run_name="study",
                                         tags={"moalign.stage": "study", "moalign.git_commit": git_commit()})
            self.run_id = run.info.run_id
            for k, v in params.items():
                self.client.log_param(self.run_id, k, str(v)[:500])
        except Exception as e:  # noqa: BLE001 - store down or misconfigured
            if tracking.required:
                raise ServiceError(f"base.tracking.uri = {tracking.uri!r}: MLflow is not reachable ({str(e)[:300]}). "
                                   "Fix: start the tracking server, or set base.tracking.required: false") from e
            log.warning("MLflow not reachable at %s (%s); the study runs untracked", tracking.uri, e)
            self.client, self.run_id = None, ""

    def artifacts(self, *paths: Path) -> None:
        if self.client:
            for p in paths:
                if p.exists():
                    self.client.log_artifact(self.run_id, str(p))

    def metrics(self, values: dict[str, float]) -> None:
        if self.client:
            for k, v in values.items():
                self.client.log_metric(self.run_id, k, float(v))

    def end(self, status: str) -> None:
        if self.client:
            self.client.set_terminated(self.run_id, status)


def _execute(jobs: list[dict], runlog: RunLog, parallel: bool) -> None:
    """Run ``jobs`` as Prefect tasks (one after another, or submitted to the task runner); append each record as
    soon as its run ends."""
    if parallel:
        from prefect.futures import as_completed

        records = (f.result() for f in as_completed([study_run.submit(j, core.run_name(j)) for j in jobs]))
    else:
        records = (study_run(j, core.run_name(j)) for j in jobs)
    for rec in records:
        runlog.add(rec)
        print(core.describe(rec), flush=True)


@flow(name="moalign-study")
def study_flow(params: str = "params.yaml", sets: list[str] | None = None, strategies: list[str] | None = None,
               seeds: list[int] | None = None, tuning_seeds: list[int] | None = None, steps: int | None = None,
               rows: int = 32, samples: int = 4, out: str = DEFAULT_OUT, workers: int = 1,
               parallel: bool = False, start: bool = True, sft_seeds: list[int] | None = None) -> dict:
    """Calibrate, run every strategy on the reporting seeds, summarise: records and summary under ``out``."""
    root = Path.cwd().resolve()
    p = core.load_study_params(params, sets)  # fail fast, naming the key, before any run
    strategies = strategies or list(p.train.strategies)
    seeds = [0, 1, 2] if seeds is None else seeds
    tuning_seeds = [100, 101] if tuning_seeds is None else tuning_seeds
    core.check_strategies(p, strategies)
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    raw = core.absolute_tracking(p.raw, root)
    if sft_seeds:  # one SFT policy per SFT seed, each in <out>/sft/seed<k> (moalign/study.py: sft_workspace)
        sources = []
        for k in sft_seeds:
            ws = core.sft_workspace(outp, k, root, raw)
            sources.append((k, ws, sft_stage(str(ws), str(root), k)))
        sft = {"seeds": list(sft_seeds), "sft": p.section("sft")}  # what every record's config says it came from
    else:
        if not (root / "models/sft").is_dir():
            raise FileNotFoundError("models/sft not found. Fix: run the pipeline up to sft first (`dvc repro sft`)")
        sft = core.tree_hash(root / "models/sft")
        sources = [(None, root, sft)]
    threads = max(1, (os.cpu_count() or 1) // max(1, workers)) if parallel else p.base.threads
    common = {"params": raw, "root": str(root), "steps": steps, "rows": rows, "samples": samples, "sft": sft, "sft_id": sft,
              "threads": threads, "out": str(outp.resolve())}
    cal, rep, beg = RunLog(outp / "calibration"), RunLog(outp / "study"), RunLog(outp / "start")
    core.check_resumable(cal.runs, core.shared_config(p, steps, "val", rows, samples, sft), cal.path)
    test_config = core.shared_config(p, steps, "test", rows, samples, sft)  # the start records share the study's
    core.check_resumable(rep.runs, test_config, rep.path)
    core.check_resumable(beg.runs, test_config, beg.path)
    parent = Parent(p.base.tracking, {"strategies": ",".join(strategies), "seeds": ",".join(map(str, seeds)),
                                      "sft_seeds": ",".join(map(str, sft_seeds or [])) or "-",
                                      "tuning_seeds": ",".join(map(str, tuning_seeds)),
                                      "steps": steps or p.train.max_steps, "rows": rows, "samples": samples,
                                      "overrides": " ".join(sets or []) or "-", "out": str(outp),
                                      "workers": workers, "dask": parallel})
    common["parent_run_id"] = parent.run_id
    status, began = "FAILED", time.time()
    try:
        def src(k, ws, h):  # what a job of this SFT policy adds
            return {"root": str(ws), "sft": h, **({"sft_seed": k} if k is not None else {})}

        done = {(r["strategy"], r["value"], r["seed"]) for r in cal.runs}  # calibration: the first SFT policy
        jobs = [{**common, **j, **src(*sources[0])} for j in core.calibration_jobs(strategies, tuning_seeds, done)]
        _execute(jobs, cal, parallel)
        chosen = core.write_chosen(outp, [r for r in cal.runs if r["seed"] in tuning_seeds]) if tuning_seeds else {}
        for k, ws, h in sources:
            if start:  # the SFT policy on each seed's test decodes: the gain over the starting point (no training)
                done = {(r["strategy"], r["seed"]) for r in beg.runs if r.get("sft_seed") == k}
                _execute([{**common, **j, **src(k, ws, h)} for j in core.start_jobs(seeds, done)], beg, parallel)
            done = {(r["strategy"], r["seed"]) for r in rep.runs if r.get("sft_seed") == k}
            jobs = [{**common, **j, **src(k, ws, h)} for j in core.study_jobs(strategies, seeds, chosen, done)]
            _execute(jobs, rep, parallel)
        summary = core.finish(outp)
        parent.metrics({f"{s}/{k}": t[k]["mean"] for s, t in summary["table"].items()
                        for k in ("hypervolume", "length", *summary["objectives"])})
        parent.artifacts(outp / "summary.json", outp / "decisions.md", outp / "calibration" / "chosen.json",
                         outp / "weights.png", outp / "front.png")
        status = "FINISHED"
    finally:
        parent.end(status)
        core.log_invocation(outp, began, time.time(), status, len(rep.runs) + len(cal.runs) + len(beg.runs))
    return {"out": str(outp), "parent_run_id": parent.run_id, "runs": len(rep.runs), "calibration_runs": len(cal.runs)}


def task_runner(workers: int, address: str | None = None):
    """Dask: the cluster at ``address``, else a LocalCluster of ``workers`` processes with one thread each."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})


def run_study(*, dask: bool = False, dask_address: str | None = None, **kw) -> dict:
    """The flow, sequential or on a Dask cluster (``dask`` / ``dask_address``)."""
    if dask or dask_address:
        return study_flow.with_options(task_runner=task_runner(kw.get("workers", 1), dask_address))(
            parallel=True, **kw)
    return study_flow(parallel=False, **kw)


def main(argv: list[str] | None = None) -> int:
    from stages._edge import clean_message, one_line

    ap = argparse.ArgumentParser(prog="moalign study", description="which reward weighting should a user pick?")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="calibrate, run every strategy over seeds, summarise (resumable)")
    r.add_argument("--params", default=os.environ.get("MOALIGN_PARAMS", "params.yaml"))
    r.add_argument("-S", "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param, as `dvc exp run -S` (e.g. -S train.max_steps=40); repeatable")
    r.add_argument("--strategies", nargs="+", default=None, help="default: train.strategies")
    r.add_argument("--seeds", type=int, nargs="+", default=None, help="reporting seeds (default 0 1 2)")
    r.add_argument("--sft-seeds", type=int, nargs="+", default=None,
                   help="also re-run SFT once per seed (in <out>/sft/seed<k>) and every reporting seed from each; "
                        "default: the project's models/sft")
    r.add_argument("--tuning-seeds", type=int, nargs="*", default=None,
                   help="calibration seeds (default 100 101; none: no calibration, params' knobs)")
    r.add_argument("--steps", type=int, default=None, help="RL updates per run (default: train.max_steps)")
    r.add_argument("--rows", type=int, default=32, help="prompts per domain scored at the end of each run")
    r.add_argument("--samples", type=int, default=4, help="sampled decodes per scored prompt")
    r.add_argument("--out", default=DEFAULT_OUT)
    r.add_argument("--no-start", dest="start", action="store_false",
                   help="do not score the SFT policy itself (the 'gain over SFT' rows need it)")
    r.add_argument("--workers", type=int, default=1, help="Dask worker processes (with --dask)")
    r.add_argument("--dask", action="store_true", help="run on a local Dask cluster of --workers processes")
    r.add_argument("--dask-address", default=None, help="run on this Dask cluster (tcp://host:8786)")
    s = sub.add_parser("summary", help="summary.json and decisions.md from the records in --out")
    s.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[study] %(levelname)s %(message)s")
    try:
        if a.cmd == "summary":
            core.finish(a.out)
            print(f"wrote {a.out}/summary.json and {a.out}/decisions.md")
            return 0
        res = run_study(dask=a.dask, dask_address=a.dask_address, params=a.params, sets=a.sets,
                        strategies=a.strategies, seeds=a.seeds, tuning_seeds=a.tuning_seeds, steps=a.steps,
                        rows=a.rows, samples=a.samples, out=a.out, workers=max(1, a.workers), start=a.start,
                        sft_seeds=a.sft_seeds)
    except Exception as e:  # noqa: BLE001 - expected failures: one line, exit 2; bugs: traceback, exit 1
        msg = clean_message(e)
        if msg is None:
            raise
        print(f"moalign study: error: {one_line(msg)}", file=sys.stderr)
        return 2
    print(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
