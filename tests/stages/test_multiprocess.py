"""Two-process training on CPU (gloo): `accelerate launch --multi_gpu --num_processes 2 -m stages.train`.

On a machine without GPUs, ``--multi_gpu`` is what starts N processes (torchrun); ``--cpu
--num_processes 2`` starts one process (accelerate multi-CPU needs mpirun). The stage's
Accelerator(cpu=True) then joins a gloo process group. Each rank writes its state through the
``MOALIGN_RANK_DUMP`` hook (moalign/rl/distributed.py), and the test compares the ranks.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~2 min: three stages in-process, then four 2-process launches

SAME = ("param_hash", "weights", "final_weights", "validation", "grad_norm", "rewards_state", "start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(repo: Path, strategy: str, dump: Path, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", "stages.train", "--strategy", strategy]
    full = {**os.environ, "MOALIGN_RANK_DUMP": str(dump), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(repo), **env}
    full.pop("MOALIGN_PARENT_RUN_ID", None)
    full.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run(cmd, cwd=repo, env=full, capture_output=True, text=True, timeout=600)


def dumps(d: Path) -> tuple[dict, dict]:
    a, b = (json.loads((d / f"rank{r}.json").read_text()) for r in (0, 1))
    assert a["world"] == b["world"] == 2
    return a, b


def train_runs(repo: Path, strategy: str) -> int:
    with sqlite3.connect(repo / "mlflow.db") as db:
        return db.execute("SELECT COUNT(*) FROM tags WHERE key = 'moalign.strategy' AND value = ?",
                          (strategy,)).fetchone()[0]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from tests.tiny import make_repo

    d = make_repo(tmp_path_factory.mktemp("mp") / "repo",
                  extra={"train": {"max_steps": 3, "checkpoint_every": 1, "eval_every": 1}})
    old = os.getcwd()
    os.chdir(d)
    os.environ.pop("MOALIGN_PARENT_RUN_ID", None)
    from moalign.config import load_params
    from stages import balance, prepare, sft

    prepare.run(load_params())
    balance.run(load_params())
    sft.run(load_params())
    yield d
    os.chdir(old)


@pytest.mark.parametrize("strategy", ["gradient", "hypervolume"])
def test_two_ranks_stay_in_lockstep_and_only_rank0_writes(repo, tmp_path, strategy):
    proc = launch(repo, strategy, tmp_path / "dump")
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = dumps(tmp_path / "dump")
    assert a["sampled"] != b["sampled"]  # ranks draw different prompts
    assert len(a["sampled"]) == 3
    for k in SAME:  # same policy, weights, validation points (so HV decisions), averaged grad norm
        assert a[k] == b[k], k
    out = repo / "models/train" / strategy
    hist = json.loads((out / "history.json").read_text())
    assert [v["point"] for v in hist["validation"]] == [v["point"] for v in a["validation"]]
    assert hist["final_weights"] == a["final_weights"]
    from moalign.modeling import load_policy
    from moalign.rl.distributed import param_hash

    assert param_hash(load_policy(out)) == a["param_hash"]  # rank 0 wrote the policy both ranks hold
    assert (repo / "metrics/train" / f"{strategy}.json").exists()
    assert (repo / "plots/train" / strategy / "weights.png").exists()
    assert not (repo / "checkpoints/train" / strategy).exists()  # cleared after success
    assert not list((repo / "models/train").glob(".*tmp*"))
    assert train_runs(repo, strategy) == 1  # one MLflow run: rank 1 tracks nothing


def test_two_ranks_resume_exactly(repo, tmp_path):
    """Stop both ranks after step 2's checkpoint, resume with two processes: same result as uninterrupted."""
    strategy = "hypervolume"
    ref = tmp_path / "ref"
    assert launch(repo, strategy, ref).returncode == 0
    r0, _ = dumps(ref)
    stopped = launch(repo, strategy, tmp_path / "stopped", MOALIGN_STOP_AFTER="2")
    assert stopped.returncode != 0 and "stopped after step 2" in stopped.stderr
    ck = sorted((repo / "checkpoints/train" / strategy).glob("step-*"))
    assert [c.name for c in ck] == ["step-0000001", "step-0000002"]  # rank 0 wrote each one once, completely
    resumed = launch(repo, strategy, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = dumps(tmp_path / "resumed")
    assert a["start"] == b["start"] == 2 and list(a["sampled"]) == ["3"]
    for k in ("param_hash", "weights", "final_weights", "validation", "rewards_state"):
        assert a[k] == b[k] == r0[k], k
