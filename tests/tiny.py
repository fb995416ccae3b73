"""The tiny config of the tests and of CI's end-to-end `dvc repro`: params.yaml with small sizes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from moalign.experiments import copy_project  # the project's code and pipeline files, copied (also benchmarks/)
from moalign.schema import deep_merge

ROOT = Path(__file__).resolve().parents[1]

TINY: dict[str, Any] = {
    "base": {"threads": 1},
    "prepare": {
        "generator": {"sizes": {"en": 200, "es": 40, "fr": 8, "de": 2}, "eval_rows": 4, "max_digits": 2},
        "tokenizer": {"vocab_size": 320},
        "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "max_length": 160},
    },
    "balance": {"unimax_budget": 64},
    "sft": {"max_steps": 6, "batch_size": 4, "eval_every": 3, "eval_rows": 2, "max_new_tokens": 12,
            "checkpoint_every": 3, "warmup_steps": 1, "val_loss_every": 3},
    "rubric": {},
    # three strategies (not the default five) keep CI short; fixed-<preset> names are unit-tested
    "train": {"max_steps": 2, "prompts_per_step": 2, "group_size": 2, "max_new_tokens": 12, "eval_every": 1,
              "val_rows": 4, "snapshot_every": 1, "checkpoint_every": 1,
              "strategies": ["fixed", "hypervolume", "gradient"]},
    "evaluate": {"test_rows": 2, "max_new_tokens": 12},
}


merge = deep_merge  # the project's one nested-dict merge (moalign/schema.py)


def tiny_params(extra: dict | None = None, tracking_uri: str | None = None) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    from tests.rubric_tiny import RUBRIC_TINY  # noqa: PLC0415 - rubric section shrinks with its own keys

    p = merge(raw, merge(TINY, {"rubric": RUBRIC_TINY}))
    if tracking_uri:
        p["base"]["tracking"]["uri"] = tracking_uri
    return merge(p, extra or {})


def make_repo(dest: Path, extra: dict | None = None, git: bool = False) -> Path:
    """A copy of the project in ``dest`` with the tiny params (and, if ``git``, git + dvc init and a commit)."""
    copy_project(dest)
    (dest / "tests").mkdir(exist_ok=True)
    params = tiny_params(extra, tracking_uri=f"sqlite:///{dest / 'mlflow.db'}")
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if git:
        run = lambda *c: subprocess.run(c, cwd=dest, check=True, capture_output=True)  # noqa: E731
        run("git", "init", "-q")
        run("git", "config", "user.email", "t@t")
        run("git", "config", "user.name", "t")
        run("dvc", "init", "-q")
        run("dvc", "config", "core.autostage", "true")
        run("git", "add", "-A")
        run("git", "commit", "-qm", "init")
    return dest
