"""The report's one loader and one formatter: every block (report_blocks, report_current, report_records) reads
its committed file through :func:`_load` / :func:`_runs` and prints numbers through :func:`f3` / :func:`pm`."""

from __future__ import annotations

import json
from pathlib import Path

from moalign.runlog import read_runs


def _load(root: Path, rel: str):
    p = root / rel
    return json.loads(p.read_text()) if p.exists() else None


def _missing(rel: str, cmd: str) -> str:
    return f"*(`{rel}` not found: run `{cmd}`)*"


def f3(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def pm(m, s, d=3) -> str:
    return "-" if m is None else f"{m:.{d}f} ± {s:.{d}f}"


def _runs(root: Path, rel: str) -> list[dict]:
    return read_runs(root / rel)


def _msd(xs) -> tuple[float, float]:
    import numpy as np

    x = np.asarray(xs, dtype=float)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0
