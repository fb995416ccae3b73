"""Two processes (accelerate launch, CPU/gloo) running both TRL adapters: every rank holds the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", minversion="1.16")
pytestmark = pytest.mark.slow  # one 2-process launch: both strategies, 3 steps each

ROOT = Path(__file__).resolve().parents[2]


def test_two_ranks_hold_the_same_weights_and_reward_state(tmp_path):
    from tests.stages.test_multiprocess import free_port

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", "tests.integrations.trl_mp_worker",
           str(tmp_path / "out"), str(tmp_path / "dump")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "DISABLE_MLFLOW_INTEGRATION": "TRUE"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (json.loads((tmp_path / "dump" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert a["world"] == b["world"] == 2
    assert a["gradient"]["local"] != b["gradient"]["local"]  # the ranks' own gradients differ ...
    for s in ("gradient", "hypervolume"):
        for k in ("history", "weights", "reward_weights", "rewards", "param_hash"):
            assert a[s][k] == b[s][k], (s, k)  # ... and yet weights, validation and policies agree
        assert a[s]["rewards"]["count"] == 3 * 16  # the reward state counts both ranks' completions
        assert a[s]["weights"] != [0.25] * 4
