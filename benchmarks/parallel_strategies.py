"""Wall-clock of ``flows.pipeline run --parallel 1`` vs ``--parallel 2`` (the train@* stages).

Each measurement runs in a fresh copy of the project (``moalign.experiments.copy_project``, the copy the
tests' tiny repos make: code, ``dvc.yaml`` and the given params file, with git and dvc initialised), so DVC
finds every stage stale. Only the wall-clock of the whole flow is compared; the stages before train are the same
work in both runs, so the ratio understates the gain on the train stages alone (also printed:
the train stages' span from the MLflow runs).

    python benchmarks/parallel_strategies.py --params params.yaml [--parallel 2] [--keep DIR] [--json PATH]

``--json PATH`` (relative to the project root) also writes the printed numbers, the command line and
the environment to one file (``python -m moalign.report`` renders benchmarks/README's table from it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moalign.experiments import copy_project  # the same project copy the tests make

ROOT = Path(__file__).resolve().parents[1]


def fresh_repo(dest: Path, params: Path) -> Path:
    copy_project(dest)
    shutil.copy2(params, dest / "params.yaml")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "b@b"], ["git", "config", "user.name", "b"],
                ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def train_span(repo: Path) -> float:
    """Seconds from the first train run's start to the last one's end (MLflow, when tracked)."""
    try:
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
        runs = mlflow.search_runs(search_all_experiments=True)
        tr = runs[runs["tags.moalign.stage"] == "train"]
        return float((tr["end_time"].max() - tr["start_time"].min()).total_seconds())
    except Exception:  # noqa: BLE001 - tracking off or another uri: no span
        return float("nan")


def measure(params: Path, n: int, work: Path) -> tuple[float, float]:
    repo = fresh_repo(work / f"parallel{n}", params)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MOALIGN_PARENT_RUN_ID", None)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flows.pipeline", "run", "--parallel", str(n)], cwd=repo, env=env,
                   check=True)
    wall = time.perf_counter() - t0
    st = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    if st.stdout.strip() not in ("", "{}"):
        print(f"warning: dvc status is not clean after --parallel {n}: {st.stdout[:500]}", file=sys.stderr)
    return wall, train_span(repo)


def record(params: Path, n: int, one: tuple[float, float], par: tuple[float, float], argv: list[str]) -> dict:
    """The ``--json`` file: (flow wall-clock, train-stage span) with ``--parallel 1`` and ``n``, the command and
    the environment; a span that could not be read (tracking off: NaN) is null."""
    import math
    import platform

    def span(x: float) -> float | None:
        return None if math.isnan(x) else x

    return {"command": " ".join(["python benchmarks/parallel_strategies.py", *argv]), "date": time.strftime("%Y-%m-%d"),
            "params": os.path.relpath(Path(params).resolve(), ROOT), "parallel": n,
            "wall_s": {"1": one[0], str(n): par[0]}, "train_span_s": {"1": span(one[1]), str(n): span(par[1])},
            "cpus": os.cpu_count(), "python": platform.python_version()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--parallel", type=int, default=2, help="N to compare with 1")
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, deleted)")
    ap.add_argument("--json", help="also write the result (and the environment) to this JSON file")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="moalign-par-"))
    try:
        w1, s1 = measure(a.params.resolve(), 1, work)
        wn, sn = measure(a.params.resolve(), a.parallel, work)
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"flow wall-clock: --parallel 1 {w1:.1f} s, --parallel {a.parallel} {wn:.1f} s, ratio {w1 / wn:.2f}x")
    print(f"train stages span: {s1:.1f} s vs {sn:.1f} s, ratio {s1 / sn:.2f}x  (cores: {os.cpu_count()})")
    if a.json:
        from moalign.io import write_json

        write_json(ROOT / a.json, record(a.params, a.parallel, (w1, s1), (wn, sn), sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
