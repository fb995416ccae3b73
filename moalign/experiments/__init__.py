"""Method studies behind benchmarks/README's and README's study tables (not speed measurements: those stay in
benchmarks/). Each is ``python -m moalign.experiments.<name>`` and appends its records to
``benchmarks/results/<name>/`` (relative to the checkout, ``ROOT``), which ``python -m moalign.report`` renders:

    balance          "Upsample or Upweight?" SFT balance strategies over seeds
    rl_efficiency    fixed presets vs hypervolume-guided vs gradient weighting, over seeds (one SFT policy)
    rubric_rl        RL on the rubric reward: initial vs refined meta-rubric
    rubric_seeds     pointwise vs pairwise rubric judging, base.seed varied
    trl_weighting    TRL's GRPOTrainer: static weights vs moalign's two weighting callbacks
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout (editable install): params.yaml, models/, data/
COPY = ["params.yaml", "dvc.yaml", "stages", "moalign", "flows", "rubrics", "pyproject.toml", ".gitignore"]


def copy_project(dest: Path) -> Path:
    """The project's code and pipeline files (``COPY``) copied into ``dest``: a scratch project to run stages or
    flows in (rubric_seeds, benchmarks/parallel_strategies.py and the tests' tiny repos)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "refined.yaml", "proposals.json"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest
