"""Run the whole DAG under a *profile* (an overlay of params.yaml) in its own workspace, keep the results.

    python -m flows.profile run profiles/smollm2.yaml                      # runs/smollm2 -> results/smollm2
    python -m flows.profile run profiles/smollm2.yaml profiles/smoke.yaml  # overlays stack, later wins
    python -m flows.profile run profiles/smollm2.yaml -S train.max_steps=2 --results /tmp/smoke
    python -m flows.profile report results/smollm2                         # README section from the files

Why a workspace and not ``dvc exp run -S ...``: a profile changes dozens of keys and needs its own
model, outputs and MLflow store; as an experiment it would replace the default run's ``models/``,
``metrics/`` and ``dvc.lock`` in the working tree (``dvc exp apply``) and its results would not sit
beside the default ones. The workspace (default ``runs/<profile>``, git-ignored) is a copy of the
code with ``params.yaml`` = params.yaml + overlays + ``-S key=value`` (the syntax of ``dvc exp run -S``), its own git + DVC repo (so
``dvc.lock`` records the run and ``dvc artifacts get`` works from it), its own MLflow store
(``runs/<profile>/mlflow.db``: one parent run ``profile:<name>`` with a nested run per stage; the
final policies registered as ``models:/moalign-policy@<strategy>``). A model named as
``packaged:<name>`` or a local folder is linked into the workspace, not copied or converted again.
Rerunning the same command reruns only what changed (DVC), so a stopped run resumes.

The workspace runs through the pipeline flow (``flows.pipeline``: stages one by one with
``dvc repro --single-item``, skips decided by ``dvc status --json``), each stage timed;
``--parallel N`` runs the ``train@*`` stages N at once (flows/parallel.py; their group is timed as
one). The results folder (default ``results/<profile>``, meant to be committed) receives the
metrics JSON of every stage, evaluate's policies table and report, the plots, and ``run.json``:
per-stage wall seconds, the merged params, the machine, the git commit, an example of the rendered
prompt. ``report`` renders the README's "Real model" section from those files only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from moalign.config import apply_sets
from moalign.io import write_text
from moalign.provenance import git_state
from moalign.schema import deep_merge
from moalign.reference import copy_results
from moalign.tracking import git_commit

ROOT = Path(__file__).resolve().parents[1]
CODE = ["dvc.yaml", "stages", "moalign", "flows", "rubrics", "pyproject.toml"]
STAGE_OUTPUTS = ("refined.yaml", "proposals.json")  # written by the rubric stage under rubrics/ (not code)


def profile_params(overlays: list[Path], sets: list[str], base: Path = ROOT / "params.yaml") -> dict:
    """params.yaml, then each overlay file, then each ``-S key=value`` (moalign.config.apply_sets)."""
    params = yaml.safe_load(base.read_text())
    for f in overlays:
        params = deep_merge(params, yaml.safe_load(Path(f).read_text()) or {})
    return apply_sets(params, sets)


def model_source(params: dict) -> str | None:
    return ((params.get("prepare") or {}).get("model") or {}).get("name_or_path")


def link_model(ws: Path, name_or_path: str | None) -> None:
    """Make the model the params name resolvable inside ``ws``: packaged models and relative local folders
    are converted/found in the repo and linked into the workspace at the same relative path."""
    if not name_or_path:
        return
    from moalign.packaged import PREFIX, default_dest, resolve

    if name_or_path.startswith(PREFIX):
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            resolve(name_or_path)  # converts into ROOT/models/<name> on first use
        finally:
            os.chdir(cwd)
        rel = default_dest(name_or_path[len(PREFIX):])
    elif not Path(name_or_path).is_absolute() and (ROOT / name_or_path).exists():
        rel = Path(name_or_path)
    else:
        return  # absolute path or hub id: works from anywhere
    dest = ws / rel
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to((ROOT / rel).resolve(), target_is_directory=True)


def materialise(ws: Path, params: dict) -> Path:
    """Copy the code into ``ws``, write its params.yaml, link the model; git + dvc init on first use."""
    ws.mkdir(parents=True, exist_ok=True)
    for name in CODE:
        src, dst = ROOT / name, ws / name
        if src.is_dir():
            # the code is replaced whole (a deleted module must not linger); stage outputs inside a code folder
            # (the rubric stage's rubrics/refined.yaml, proposals.json) are kept, so DVC finds that stage up to date
            kept = {p: p.read_bytes() for p in dst.rglob("*") if p.name in STAGE_OUTPUTS and p.is_file()}
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", *STAGE_OUTPUTS))
            for p, data in kept.items():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        else:
            shutil.copy2(src, dst)
    (ws / ".gitignore").write_text("\n".join(["__pycache__/", "/mlflow.db", "/mlruns/", "/mlartifacts/",
                                              "/checkpoints/", "/models", "/data/prepared", "/data/balanced",
                                              "/data/rubric", "/rubrics/refined.yaml", "/logs/", ""]))
    params = deep_merge(params, {"base": {"tracking": {"uri": f"sqlite:///{(ws / 'mlflow.db').resolve()}"}}})
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    link_model(ws, model_source(params))
    if not (ws / ".git").exists():
        for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "profile@moalign.local"],
                    ["git", "config", "user.name", "moalign profile"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.autostage", "true"]):
            subprocess.run(cmd, cwd=ws, check=True, capture_output=True)
    return ws


WALL_LEDGER = "wall.json"  # in the workspace's logs/: each stage's wall time when it last actually ran


def stage_costs(ledger: dict[str, dict], times: dict[str, float], ran: dict[str, bool]) -> tuple[dict, list[str]]:
    """What the current outputs cost: a stage that ran costs this invocation's time; a stage DVC skipped
    costs what the ledger recorded when it last ran (its outputs are those of that run). Returns the
    per-stage seconds with their ``total`` and the names of the skipped stages.

    Why: a profile rerun after a change to one stage (say train) skips the others, and "1 s for SFT"
    would misreport what the pipeline costs a user who runs it once from scratch."""
    costs, cached = {}, []
    for stage, sec in times.items():
        if ran.get(stage, True):
            costs[stage] = sec
        else:
            cached.append(stage)
            costs[stage] = ledger.get(stage, {}).get("seconds", sec)
    costs["total"] = sum(costs.values())
    return costs, cached


def run_profile(ws: Path, name: str, parallel: int = 1, force: bool = False) -> tuple[dict[str, float], list[str]]:
    """Run the workspace's DAG through ``flows.pipeline`` (parent MLflow run ``profile:<name>``); returns what
    each stage's outputs cost in wall seconds (:func:`stage_costs`, plus ``invocation``: this call's own time)
    and the stages DVC found up to date."""
    from flows.pipeline import pipeline

    cwd = os.getcwd()
    os.chdir(ws)
    try:
        log_dir = Path("logs")
        log_dir.mkdir(exist_ok=True)
        ledger_file = log_dir / WALL_LEDGER
        ledger = json.loads(ledger_file.read_text()) if ledger_file.exists() else {}
        env = {"HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        start = time.perf_counter()
        out = pipeline(force=force, parallel=parallel, run_name=f"profile:{name}", tags={"moalign.profile": name},
                       env=env, log_dir=str(log_dir))
        invocation = time.perf_counter() - start
        for stage, ran in out["ran"].items():
            print(f"[profile] {stage}: {out['seconds'][stage]:.0f} s{'' if ran else ' (up to date)'}", flush=True)
            if ran:
                ledger[stage] = {"seconds": round(out["seconds"][stage], 1), "git_commit": git_commit(),
                                 "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        write_text(ledger_file, json.dumps(ledger, indent=2) + "\n")
        times, cached = stage_costs(ledger, out["seconds"], out["ran"])
        times["invocation"] = invocation
        return times, cached
    finally:
        os.chdir(cwd)


def example_prompt(ws: Path) -> tuple[str, bool]:
    """The prompt the policy saw for a test question (the workspace's SFT tokenizer) and whether it is chat."""
    try:
        import datasets

        from moalign.modeling import load_tokenizer
        from moalign.text import format_prompt, uses_chat

        row = datasets.load_from_disk(str(ws / "data/prepared/test"))[0]
        tok = load_tokenizer(ws / "models/sft")
        return format_prompt(row["question"], tok), uses_chat(tok)
    except Exception as e:  # noqa: BLE001 - informative only
        return f"(unavailable: {type(e).__name__})", False


def collect(ws: Path, results: Path, name: str, overlays: list[str], sets: list[str],
            times: dict[str, float], cached: list[str], parallel: int,
            git: tuple[str, bool] | None = None) -> Path:
    """Copy the run's result files from ``ws`` into ``results`` (replacing it) and write ``run.json``."""
    import torch

    tmp = results.with_name(results.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    copy_results(ws, tmp)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    commit, dirty = git or git_state(ROOT)  # the code the workspace was built from (main() reads it first)
    run = {"profile": name, "overlays": overlays, "set": sets, "wall_seconds": {k: round(v, 1) for k, v in times.items()},
           "cached": cached,
           "parallel": parallel, "git_commit": commit, "git_dirty": dirty, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
           "machine": {"cpus": os.cpu_count(), "threads": os.environ.get("MOALIGN_THREADS") or params["base"]["threads"],
                       "platform": platform.platform(), "torch": torch.__version__,
                       "cuda": torch.cuda.is_available()},
           "model": model_source(params), "workspace": str(ws)}
    run["example_prompt"], run["chat"] = example_prompt(ws)
    (tmp / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    shutil.rmtree(results, ignore_errors=True)
    tmp.rename(results)
    return results


def tag_artifacts(ws: Path, strategies: list[str]) -> None:
    """Commit the run in the workspace's git and tag each policy for ``dvc artifacts get`` (GTO tags)."""
    def git(*c: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *c], cwd=ws, capture_output=True, text=True)

    git("add", "-A")
    git("commit", "-qm", "profile run")
    stamp = time.strftime("%Y%m%d%H%M%S")
    for policy in ["sft", *strategies]:
        git("tag", "-a", f"policy-{policy}@v0.0.{stamp}", "-m", f"moalign profile run: {policy}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.profile")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the DAG under a profile in its own workspace")
    r.add_argument("profiles", nargs="+", type=Path, help="overlay files of params.yaml, applied in order")
    r.add_argument("-S", "--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param, as `dvc exp run -S` (e.g. -S train.max_steps=2); repeatable")
    r.add_argument("--workspace", type=Path, help="default runs/<name of the first profile>")
    r.add_argument("--results", type=Path, help="default results/<name of the first profile>")
    r.add_argument("--parallel", type=int, default=1, help="train@* stages at once (flows/parallel.py)")
    r.add_argument("--force", action="store_true", help="rerun stages DVC finds up to date")
    rp = sub.add_parser("report", help="print the README section rendered from a results folder")
    rp.add_argument("results", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "report":
        from moalign.report.profile import render

        print(render(a.results))
        return 0
    name = a.profiles[0].stem
    ws = (a.workspace or ROOT / "runs" / name).resolve()
    results = (a.results or ROOT / "results" / name).resolve()
    params = profile_params(a.profiles, a.set)
    git = git_state(ROOT)  # before the copy: the code this run uses, whatever is committed while it runs
    materialise(ws, params)
    times, cached = run_profile(ws, name, max(1, a.parallel), a.force)
    tag_artifacts(ws, params["train"]["strategies"])
    out = collect(ws, results, name, [str(p) for p in a.profiles], a.set, times, cached, a.parallel, git)
    print(f"[profile] done in {times['invocation'] / 60:.1f} min (the outputs cost {times['total'] / 60:.1f} min); results in {out}; MLflow: mlflow ui "
          f"--backend-store-uri sqlite:///{ws / 'mlflow.db'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
