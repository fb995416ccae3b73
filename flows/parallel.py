"""Run independent DVC stages (the ``train@*`` strategies) at the same time, with DVC as the record.

Why not N concurrent ``dvc repro`` processes: DVC documents parallel execution of independent
stages by launching ``dvc repro`` several times, but each process holds the repo lock while it
collects stages and again while it writes ``dvc.lock``, and a process that finds the lock taken
fails at once with "Unable to acquire lock" instead of waiting (treeverse/dvc#10465, #9805,
#5795). ``dvc exp run --queue`` + ``dvc queue start -j N`` runs each job in its own temporary
workspace and applies results as experiments, which does not leave the workspace's ``dvc.lock``
updated by one ``flows.pipeline run``.

What we do instead (per group of stale stages):

1. ``dvc status --json <stage>`` picks the stages that are out of date (all with ``--force``);
2. their commands (the ``cmd`` of ``dvc.yaml``, ``${item}`` substituted) run as plain
   subprocesses, up to N at once, each with its own slot: one GPU (``CUDA_VISIBLE_DEVICES``)
   when GPUs exist, and ``MOALIGN_THREADS = max(1, cores // N)`` torch threads (read by
   ``stages._edge.seed_everything``; not a param, so it does not make a stage stale);
3. ``dvc commit --force <stage>`` for each stage that succeeded, one after the other (one
   process holds the lock at a time): ``dvc.lock`` then records the deps, params and outputs
   that the run used, exactly as ``dvc repro`` would, and ``dvc status`` is clean.

Caveat of step 3: ``dvc commit`` hashes the deps as they are *after* the run, so do not edit
code or params while ``--parallel`` runs (the same holds for ``dvc repro``'s own record).
A failed stage is not committed, so DVC keeps it stale and the next run retries it.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import yaml

THREADS_ENV = "MOALIGN_THREADS"  # read by stages._edge.seed_everything
PARALLEL_STAGES = ("train",)  # foreach stages whose items are independent of each other


def stage_cmd(stage: str, dvc_yaml: str | Path = "dvc.yaml") -> list[str]:
    """argv of a stage's ``cmd`` (``name`` or ``name@item`` of a foreach stage)."""
    name, _, item = stage.partition("@")
    body = yaml.safe_load(Path(dvc_yaml).read_text())["stages"][name]
    argv = shlex.split(body["do"]["cmd"].replace("${item}", item) if item else body["cmd"])
    return [sys.executable, *argv[1:]] if argv and argv[0] == "python" else argv  # this environment's python


def is_stale(stage: str, env: dict[str, str] | None = None) -> bool:
    """True when ``dvc status`` reports anything for ``stage`` (never run, changed deps/outs)."""
    proc = subprocess.run(["dvc", "status", "--json", stage], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"dvc status {stage} failed:\n{proc.stderr[-2000:]}")
    return bool(json.loads(proc.stdout or "{}"))


def groups(order: list[str]) -> list[list[str]]:
    """Consecutive stages, with each run of ``train@*`` items merged into one group."""
    out: list[list[str]] = []
    for s in order:
        base = s.partition("@")[0]
        if "@" in s and base in PARALLEL_STAGES and out and out[-1][0].partition("@")[0] == base:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def gpu_ids() -> list[str]:
    """Visible GPUs (respecting an outer ``CUDA_VISIBLE_DEVICES``); [] on CPU."""
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        return [v for v in vis.split(",") if v.strip() and v.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch / no driver: CPU
        return []


def slot_envs(n: int, cores: int | None = None, gpus: list[str] | None = None) -> list[dict[str, str]]:
    """One environment per concurrent slot: a GPU each (when any) and an equal share of the cores."""
    cores = cores or os.cpu_count() or 1
    gpus = gpu_ids() if gpus is None else gpus
    envs = []
    for i in range(n):
        env = {THREADS_ENV: str(max(1, cores // n))}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        envs.append(env)
    return envs


def run_parallel(stages: list[str], n: int, env: dict[str, str], log: Callable[[str], None] = print,
                 force: bool = False) -> dict[str, int]:
    """Run the stale ``stages`` up to ``n`` at once, then ``dvc commit`` the successful ones.

    Returns {stage: exit code} of the stages that ran; raises if any failed (after committing
    the others).
    """
    todo = [s for s in stages if force or is_stale(s)]
    for s in sorted(set(stages) - set(todo)):
        log(f"{s}: up to date (dvc status), skipped")
    if not todo:
        return {}
    n = max(1, min(n, len(todo)))
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for e in slot_envs(n):
        slots.put(e)

    def one(stage: str) -> int:
        slot = slots.get()
        try:
            cmd = stage_cmd(stage)
            log(f"$ {' '.join(cmd)}  ({', '.join(f'{k}={v}' for k, v in slot.items())})")
            proc = subprocess.run(cmd, env={**os.environ, **env, **slot}, capture_output=True, text=True)
            if proc.returncode:
                log(f"{stage} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
            return proc.returncode
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=n) as pool:
        codes = dict(zip(todo, pool.map(one, todo)))
    for s in todo:  # one `dvc commit` at a time: DVC's repo lock allows no other
        if codes[s] == 0:
            proc = subprocess.run(["dvc", "commit", "--force", s], capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"dvc commit {s} failed:\n{proc.stderr[-2000:]}")
            log(f"{s}: recorded in dvc.lock (dvc commit)")
    failed = [s for s, c in codes.items() if c]
    if failed:
        raise RuntimeError(f"stages failed: {', '.join(failed)} (not recorded in dvc.lock; rerun to retry)")
    return codes
