"""The reference run: a committed snapshot of a pipeline run's results that the README renders from.

``dvc repro`` writes ``metrics/``, ``plots/`` and ``dvc.lock`` in the working tree: that is *your*
run, and float rounding alone (another CPU's vector kernels) makes it differ from anyone else's.
The README's numbers therefore come from ``results/reference/``, a snapshot the maintainers take
with ``moalign reference save`` after a reference ``dvc repro`` (the same layout as a profile's
``results/<profile>/``, with ``run.json`` saying which commit, machine and library versions made
it). A user's own repro never touches it, so ``make repro`` followed by ``make test`` stays green;
``moalign reference compare`` (the last step of ``make repro``) prints your run beside the
reference in words, with a flag where they differ by more than two combined standard errors.

    moalign reference compare                    # metrics/ of this checkout vs results/reference
    moalign reference save                       # snapshot this checkout's run into results/reference
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

REFERENCE = Path("results/reference")
# what a results folder keeps of a run (also flows/profile.py's results/<profile>)
RESULT_FILES = ["metrics", "plots/evaluate", "plots/sft", "plots/train", "plots/rubric", "data/rubric/report.json",
                "dvc.lock", "params.yaml"]
OBJECTIVE_KEYS = ("accuracy", "conciseness", "clarity", "length", "hypervolume")


def copy_results(src: Path, dest: Path) -> None:
    """Copy the files of ``RESULT_FILES`` that exist under ``src`` into ``dest`` (created)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in RESULT_FILES:
        s = src / rel
        if s.is_dir():
            shutil.copytree(s, dest / rel)
        elif s.exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, dest / rel)


def save(src: Path = Path("."), dest: Path = REFERENCE) -> Path:
    """Snapshot the run in ``src`` into ``dest`` (replacing it atomically) with a ``run.json`` of its provenance."""
    from moalign.io import atomic_path
    from moalign.provenance import git_state, machine, versions

    if not (src / "metrics/evaluate.json").exists():
        raise FileNotFoundError(f"{src / 'metrics/evaluate.json'} not found: run `dvc repro` first")
    commit, dirty = git_state(src, ("moalign", "stages", "params.yaml", "dvc.yaml"))
    with atomic_path(dest) as tmp:
        copy_results(src, tmp)
        run = {"git_commit": commit, "code_dirty": dirty, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "machine": machine(), "versions": versions(),
               "command": "dvc repro (params.yaml), then moalign reference save"}
        (tmp / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return dest


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def compare(run: dict, ref: dict) -> list[str]:
    """Lines comparing two ``metrics/evaluate.json`` dicts, policy by policy, objective by objective.

    A value is flagged ``*`` when it differs from the reference by more than two combined standard
    errors (``sqrt(se_run^2 + se_ref^2)``; hypervolume, which has a bootstrap interval instead, is
    flagged when the reference lies outside your run's interval).
    """
    pols = [p for p in run if isinstance(run[p], dict) and "hypervolume" in run[p]]
    lines = [f"{'policy':<22}" + "".join(f"{k:>26}" for k in OBJECTIVE_KEYS)]
    flagged = 0
    for p in pols:
        cells, r = [], ref.get(p) or {}
        for k in OBJECTIVE_KEYS:
            a, b = run[p].get(k), r.get(k)
            if a is None:
                cells.append(f"{'-':>26}")
                continue
            mark = " "
            if b is not None and k == "hypervolume" and run[p].get("hypervolume_ci"):
                lo, hi = run[p]["hypervolume_ci"]
                mark = "*" if not lo <= b <= hi else " "
            elif b is not None and run[p].get(f"{k}_se") is not None and r.get(f"{k}_se") is not None:
                se = math.hypot(run[p][f"{k}_se"], r[f"{k}_se"])
                mark = "*" if abs(a - b) > 2 * se else " "
            flagged += mark == "*"
            d = 1 if k == "length" else 3
            cells.append(f"{a:>12.{d}f} (ref {'-' if b is None else f'{b:.{d}f}'}){mark}".rjust(26))
        lines.append(f"{p:<22}" + "".join(cells))
    lines.append(f"{flagged} value(s) marked * differ from the reference by more than 2 standard errors "
                 "(another machine's float rounding acts like another seed; see README 'Tests').")
    return lines


def report(root: Path = Path("."), ref: Path = REFERENCE) -> str:
    """What ``make repro`` prints at its end: your run vs the reference, where the plots are, how to compare."""
    run, refm = _load(root / "metrics/evaluate.json"), _load(ref / "metrics/evaluate.json")
    if run is None:
        return f"{root / 'metrics/evaluate.json'} not found: run `dvc repro` first"
    info = _load(ref / "run.json") or {}
    head = [f"Your run: {root / 'metrics/evaluate.json'} (test split, {run.get('point')} points, "
            f"hypervolume reference {run.get('reference')}); non-dominated: {', '.join(run.get('non_dominated', []))}."]
    if refm is None:
        body = [f"(no reference at {ref}: `moalign reference save` makes one)"]
    else:
        head.append(f"Reference: {ref} (commit {str(info.get('git_commit', '?'))[:10]}, "
                    f"{(info.get('machine') or {}).get('cpu_capability', '?')} kernels, {info.get('date', '?')}).")
        body = compare(run, refm)
    tail = ["Plots: plots/evaluate/pareto.png, plots/train/<strategy>/weights.png; all curves: "
            "`make plots` (offline page in dvc_plots/index.html).",
            "Compare the runs in MLflow: `mlflow ui --backend-store-uri sqlite:///mlflow.db` "
            "(experiment moalign, tick the train@* runs, Compare)."]
    return "\n".join(head + body + tail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="moalign reference", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, text in (("compare", "print this checkout's run beside the reference"),
                       ("save", "snapshot this checkout's run as the reference")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--root", type=Path, default=Path("."), help="the checkout whose metrics/ is your run")
        p.add_argument("--reference", type=Path, default=None, help=f"default: <root>/{REFERENCE}")
    a = ap.parse_args(argv)
    ref = a.reference or a.root / REFERENCE
    if a.cmd == "save":
        try:
            print(f"reference saved: {save(a.root, ref)}")
        except FileNotFoundError as e:
            print(f"moalign reference: error: {e}", file=sys.stderr)
            return 2
        return 0
    print(report(a.root, ref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
