"""Atomic training checkpoints that resume exactly.

A checkpoint folder ``<dir>/step-<N>`` holds ``state.pt`` (model, optimizer, scheduler,
RNG states, counters and any extra state such as reward-weighting buffers) and
``fingerprint.txt``, a hash of everything that determines the run. Resume only picks up
a checkpoint with the same fingerprint, so a changed ``params.yaml`` starts afresh
instead of silently mixing two configurations. Checkpoints live outside DVC outputs
(DVC deletes outputs before it reruns a stage).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moalign.io import atomic_path


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(s: dict[str, Any]) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])


def save(ckpt_dir: str | Path, step: int, fp: str, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``step-<step>`` atomically, then drop all but the newest ``keep`` checkpoints."""
    root = Path(ckpt_dir)
    dest = root / f"step-{step:07d}"
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        torch.save({**state, "step": step, "rng": rng_state()}, tmp / "state.pt")
        (tmp / "fingerprint.txt").write_text(fp)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def latest(ckpt_dir: str | Path, fp: str) -> dict[str, Any] | None:
    """The newest checkpoint whose fingerprint matches ``fp`` (None when there is none)."""
    for d in sorted(Path(ckpt_dir).glob("step-*"), reverse=True):
        f = d / "fingerprint.txt"
        if f.exists() and f.read_text() == fp and (d / "state.pt").exists():
            return torch.load(d / "state.pt", weights_only=False)
    return None


def clear(ckpt_dir: str | Path) -> None:
    shutil.rmtree(ckpt_dir, ignore_errors=True)
