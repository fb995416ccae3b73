"""``accelerate launch ... -m tests.rl.mp_train --strategy NAME``: the train stage of the two-process tests.

It is ``python -m stages.train`` with the learnable fixture's test objectives registered (so a
params.yaml may name ``t_digits``), plus two per-rank instruments, both test-only:

- an audit hook records every path under the working directory (the project copy) that this
  rank opens for writing, creates, renames or deletes, and writes the list to
  ``$MOALIGN_RANK_DUMP/writes-rank<r>.json`` at the end (``__pycache__`` left out): only rank 0
  may write checkpoints, snapshots and outputs;
- ``MOALIGN_TEST_SKEW_VALIDATION=1`` adds 0.01 to rank 1's validation points, standing in for a
  rank whose decodes differ in the last bits (other kernels, other hardware): rank 0's point must
  reach every rank's strategy (moalign/rl/distributed.py ``broadcast_point``);
- ``MOALIGN_TEST_KILL_AFTER=<step>`` sends SIGTERM to every rank once the checkpoint of that step is
  complete (the trainer's ``on_checkpoint``): a real kill at a known point, which the stage turns into
  its one line and exit 143, so the test can resume from that checkpoint;
- ``MOALIGN_TEST_SHORT_RANK1=1`` makes dynamic sampling's filter keep no group on rank 1, so rank 1
  needs every extra round while rank 0 is usually full after the first: the ranks must still run the
  same rounds (moalign/rl/filtering.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import tests.rl.learnable  # noqa: F401 - registers the test objectives

SKEW_ENV = "MOALIGN_TEST_SKEW_VALIDATION"
SHORT_ENV = "MOALIGN_TEST_SHORT_RANK1"
KILL_ENV = "MOALIGN_TEST_KILL_AFTER"
_WRITE_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate", "os.symlink"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _record_writes(root: Path, into: set[str]):
    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if not ((isinstance(mode, str) and any(ch in mode for ch in "wax+"))
                    or (mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)):
                return
            paths = [path]
        elif event in _WRITE_EVENTS:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        for p in paths:
            if isinstance(p, int):
                continue
            p = os.fsdecode(os.fspath(p))
            full = os.path.abspath(p)
            if full.startswith(str(root) + os.sep) and "__pycache__" not in full:
                into.add(os.path.relpath(full, root))

    return hook


def main(argv: list[str] | None = None) -> int:
    rank = int(os.environ.get("RANK", "0"))
    writes: set[str] = set()
    sys.addaudithook(_record_writes(Path(os.getcwd()), writes))
    if os.environ.get(SKEW_ENV) == "1" and rank == 1:
        from moalign.rl import trainer

        exact = trainer.validation_point
        trainer.validation_point = lambda *a, **kw: exact(*a, **kw) + 0.01
    if os.environ.get(SHORT_ENV) == "1" and rank == 1:
        import torch

        from moalign.rl import filtering

        filtering.informative = lambda rewards, idx: torch.zeros(rewards.shape[0], dtype=torch.bool)
    import stages.train
    from stages.train import main as stage_main

    kill = os.environ.get(KILL_ENV)
    if kill:
        import signal

        def kill_after(done: int) -> None:
            if done >= int(kill):
                os.kill(os.getpid(), signal.SIGTERM)

        exact_train = stages.train.train
        stages.train.train = lambda *a, **kw: exact_train(*a, **kw, on_checkpoint=kill_after)

    try:
        return stage_main(argv)
    finally:
        dump = os.environ.get("MOALIGN_RANK_DUMP")
        if dump:
            Path(dump).mkdir(parents=True, exist_ok=True)
            (Path(dump) / f"writes-rank{rank}.json").write_text(json.dumps(sorted(writes)))


if __name__ == "__main__":
    raise SystemExit(main())
