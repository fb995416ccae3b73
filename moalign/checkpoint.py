"""Atomic training checkpoints that resume exactly.

A checkpoint folder ``<dir>/step-<N>`` holds ``state.pt`` (model, optimizer, scheduler,
RNG states, counters and any extra state such as reward-weighting buffers) and
``fingerprint.txt``, a hash of everything that determines the run. Resume only picks up
a checkpoint with the same fingerprint, so a changed ``params.yaml`` starts afresh
instead of silently mixing two configurations. Checkpoints live outside DVC outputs
(DVC deletes outputs before it reruns a stage).

A checkpoint that cannot be read (a truncated or empty ``state.pt`` left by a crash or a full
disk) is reported with a warning naming the file and skipped: :func:`latest` falls back to
the newest readable one, or says that training starts afresh. Each of these warnings is given
once per process (a stage may look for its checkpoint more than once).

:func:`last_checkpoint` is the newest checkpoint this process wrote or resumed from; the stage
edge names it when a kill interrupts the stage ("resume with the same command").
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moalign.io import atomic_path

log = logging.getLogger("moalign.checkpoint")
_said: set[tuple] = set()  # warnings already given (see _warn_once)
_last: Path | None = None


def _warn_once(key: tuple, msg: str, *args: Any) -> None:
    if key not in _said:
        _said.add(key)
        log.warning(msg, *args)


def last_checkpoint() -> Path | None:
    """The newest checkpoint folder this process saved or resumed from (None: none yet)."""
    return _last


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
    global _last
    root = Path(ckpt_dir)
    dest = root / f"step-{step:07d}"
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        torch.save({**state, "step": step, "rng": rng_state()}, tmp / "state.pt")
        (tmp / "fingerprint.txt").write_text(fp)
    _last = dest
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def _load(path: Path) -> dict[str, Any] | None:
    """``torch.load(path)``, or None (with a warning naming the file) when it cannot be read."""
    try:
        st = path.stat()
        key: tuple = ("skip", str(path), st.st_size, st.st_mtime_ns)  # a rewritten file is news again
    except OSError:
        key = ("skip", str(path))
    try:
        state = torch.load(path, weights_only=False)
    except Exception as e:  # noqa: BLE001 - truncated zip, empty file, unpickling error, I/O error
        _warn_once(key, "checkpoint %s is unreadable (%s: %s); skipping it", path, type(e).__name__, str(e)[:200])
        return None
    if not isinstance(state, dict) or "step" not in state or "rng" not in state:
        _warn_once(key, "checkpoint %s is not a moalign training state; skipping it", path)
        return None
    return state


def latest(ckpt_dir: str | Path, fp: str) -> dict[str, Any] | None:
    """The newest readable checkpoint whose fingerprint matches ``fp`` (None when there is none).

    Unreadable checkpoints are skipped with a warning; when some existed but none could be
    read, a warning says that training starts from scratch.
    """
    global _last
    skipped = 0
    for d in sorted(Path(ckpt_dir).glob("step-*"), reverse=True):
        f = d / "fingerprint.txt"
        try:
            same = f.exists() and f.read_text() == fp
        except OSError:
            same = False
        if not same or not (d / "state.pt").exists():
            continue
        state = _load(d / "state.pt")
        if state is not None:
            if skipped:
                _warn_once(("resume", str(d)), "resuming from the older checkpoint %s", d)
            _last = d
            return state
        skipped += 1
    if skipped:
        _warn_once(("fresh", str(ckpt_dir), skipped), "no readable checkpoint in %s (%d skipped); starting from scratch",
                   ckpt_dir, skipped)
    return None


def clear(ckpt_dir: str | Path) -> None:
    shutil.rmtree(ckpt_dir, ignore_errors=True)
