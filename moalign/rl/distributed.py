"""What the RL trainer needs to stay consistent across ``accelerate launch`` processes.

With N processes every rank samples its own prompts (seeded by (seed, step, rank)) and the
prepared (DDP) model averages the policy gradients, so the policies stay identical. What DDP
does not synchronise, and why each helper exists:

- :func:`sync_reward_state`: stateful rewards (conciseness keeps a running mean length) see
  only their rank's rollouts; without a sync their state drifts apart and a checkpoint written
  by rank 0 would not resume rank 1 exactly. After each step the state is the one a single
  process would have after seeing all ranks' rollouts (the current batch is scored with the
  rank's own rollouts added, the others' arrive one step later).
- :func:`sum_fn`: batch statistics of the advantages (the batch re-normalisation of
  ``normalize_then_sum``, REINFORCE's batch baseline) are taken over every rank's rollouts, as TRL
  normalises over the gathered batch; without it each rank would scale its advantages by its own std.
- :func:`broadcast_point`: every rank computes the same validation point (same policy, same
  seeds); rank 0's copy is broadcast so the hypervolume strategy's decisions are identical
  even if floating point ever differs.
- :func:`is_main` / :func:`barrier`: only rank 0 writes checkpoints and snapshots; the others
  wait until the files are complete.
- :func:`dump_rank_state` (debug hook): with ``MOALIGN_RANK_DUMP=<dir>`` each rank writes
  ``<dir>/rank<r>.json`` at the end of ``train()`` (sampled prompt indices, weights,
  validation points, per-step grad norms, a hash of the policy parameters) so a test can compare ranks.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

DUMP_ENV = "MOALIGN_RANK_DUMP"


def rank_of(accelerator) -> int:
    return accelerator.process_index if accelerator is not None else 0


def world_of(accelerator) -> int:
    return accelerator.num_processes if accelerator is not None else 1


def sum_fn(accelerator):
    """A function summing a tensor over ranks (batch statistics of the advantages), or None for one process."""
    if world_of(accelerator) < 2:
        return None
    return lambda t: accelerator.reduce(t.to(accelerator.device), "sum")


def is_main(accelerator) -> bool:
    return accelerator is None or accelerator.is_main_process


def barrier(accelerator) -> None:
    if world_of(accelerator) > 1:
        accelerator.wait_for_everyone()


def reward_states(fns: dict[str, Callable]) -> dict[str, dict[str, Any]]:
    return {o: f.state_dict() for o, f in fns.items() if hasattr(f, "state_dict")}


def sync_reward_state(fns: dict[str, Callable], before: dict[str, dict[str, Any]], accelerator) -> None:
    """state <- before + sum over ranks of (state_r - before), for every numeric state entry."""
    if world_of(accelerator) < 2 or not before:
        return
    keys = [(o, k) for o in sorted(before) for k in sorted(before[o])]
    after = reward_states(fns)
    delta = torch.tensor([float(after[o][k]) - float(before[o][k]) for o, k in keys], dtype=torch.float64,
                         device=accelerator.device)
    total = accelerator.reduce(delta, "sum").cpu().tolist()
    new: dict[str, dict[str, Any]] = {o: {} for o in before}
    for (o, k), d in zip(keys, total):
        new[o][k] = float(before[o][k]) + d
    for o, s in new.items():
        fns[o].load_state_dict(s)


def broadcast_point(point: np.ndarray, accelerator) -> np.ndarray:
    """Rank 0's validation point on every rank."""
    if world_of(accelerator) < 2:
        return point
    from accelerate.utils import broadcast_object_list

    return np.asarray(broadcast_object_list([point.tolist()], from_process=0)[0], dtype=float)


def param_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def dump_rank_state(accelerator, model: torch.nn.Module, record: dict[str, Any]) -> Path | None:
    """Write ``$MOALIGN_RANK_DUMP/rank<r>.json`` (a debug/test hook; nothing when the env var is unset)."""
    root = os.environ.get(DUMP_ENV)
    if not root:
        return None
    rank = rank_of(accelerator)
    path = Path(root) / f"rank{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rank": rank, "world": world_of(accelerator), "param_hash": param_hash(model),
                                **record}, default=float))
    return path
