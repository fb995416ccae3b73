"""The committed weighting study (README "Which weighting should a user pick?"): ``moalign study`` with its settings.

The study itself is the product command ``moalign study run`` (moalign/study.py, flows/study.py), which runs
through the train stage's own loading path on any project's models/sft and data/prepared. This file only
names the settings the committed records in benchmarks/results/weighting_study were made with (5 reporting
seeds, tuning seeds 100 101, 150 steps, 32 prompts per domain x 4 sampled decodes), so rerunning it resumes
that study:

    python benchmarks/weighting_study.py [--dask --workers 2]     # = moalign study run <SETTINGS> ...
    moalign study summary --out benchmarks/results/weighting_study

``GRID`` and ``choose`` are re-exported from moalign/study.py (benchmarks/report.py --check recomputes
``calibration/chosen.json`` with them).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from moalign.study import GRID, PAPER, PRESETS, choose  # noqa: E402,F401

OUT = ROOT / "benchmarks/results/weighting_study"
SETTINGS = ["--seeds", "0", "1", "2", "3", "4", "--tuning-seeds", "100", "101", "--steps", "150", "--rows", "32",
            "--samples", "4", "--strategies", *PRESETS, "hypervolume", "gradient", *PAPER, "--out", str(OUT)]


def main(argv: list[str] | None = None) -> int:
    from moalign.cli import main as cli

    return cli(["study", "run", *SETTINGS, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
