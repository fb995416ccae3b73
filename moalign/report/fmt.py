"""The report's one loader and one formatter: every block (blocks, current, records) reads its committed file
through :func:`load` / :func:`load_runs` and prints numbers through :func:`f3` / :func:`pm` / :func:`per_seed`."""

from __future__ import annotations

import json
from pathlib import Path

from moalign.runlog import read_runs

RES = "benchmarks/results"  # the committed records of the benchmarks and experiments


def load(root: Path, rel: str):
    p = root / rel
    return json.loads(p.read_text()) if p.exists() else None


def load_runs(root: Path, rel: str) -> list[dict]:
    return read_runs(root / rel)


def missing(rel: str, cmd: str) -> str:
    return f"*(`{rel}` not found: run `{cmd}`)*"


def f3(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def pm(m, s, d=3, sep="±") -> str:
    return "-" if m is None else f"{m:.{d}f} {sep} {s:.{d}f}"


def per_seed(xs, d: int = 3) -> str:
    return " / ".join(f"{x:.{d}f}" for x in xs)


def msd(xs) -> tuple[float, float]:
    import numpy as np

    x = np.asarray(xs, dtype=float)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0
