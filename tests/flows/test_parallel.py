"""``flows.pipeline run --parallel N``: train@* stages run concurrently and DVC stays the record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.parallel import groups, slot_envs, stage_cmd
from tests.tiny import ROOT, make_repo


def test_groups_merge_only_consecutive_train_items():
    order = ["prepare", "balance", "sft", "rubric", "train@fixed", "train@hypervolume", "train@gradient", "evaluate"]
    assert groups(order) == [["prepare"], ["balance"], ["sft"], ["rubric"],
                             ["train@fixed", "train@hypervolume", "train@gradient"], ["evaluate"]]


def test_slots_split_cores_and_pin_one_gpu_each():
    assert slot_envs(2, cores=2, gpus=[]) == [{"MOALIGN_THREADS": "1"}] * 2
    assert slot_envs(3, cores=16, gpus=[]) == [{"MOALIGN_THREADS": "5"}] * 3
    envs = slot_envs(2, cores=16, gpus=["0", "1"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1"]


def test_stage_cmd_expands_foreach_items():
    cmd = stage_cmd("train@gradient", ROOT / "dvc.yaml")
    assert cmd[0] == sys.executable and cmd[1:] == ["-m", "stages.train", "--strategy", "gradient"]


def test_threads_env_overrides_base_threads(monkeypatch):
    import torch

    from stages._edge import seed_everything

    old = torch.get_num_threads()
    monkeypatch.setenv("MOALIGN_THREADS", "1")
    try:
        seed_everything(0, threads=2)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.mark.slow
def test_parallel_flow_leaves_dvc_status_clean(harness, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # dvc, python
    repo = make_repo(tmp_path / "repo", git=True)
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MOALIGN_PARENT_RUN_ID", raising=False)
    from flows.pipeline import pipeline

    out = pipeline(parallel=2)
    st = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True, cwd=repo, check=True)
    assert json.loads(st.stdout or "{}") == {}, st.stdout  # nothing to reproduce
    lock = (repo / "dvc.lock").read_text()
    strategies = ["fixed", "hypervolume", "gradient"]
    for s in strategies:
        assert f"train@{s}:" in lock and (repo / "models/train" / s / "model.safetensors").exists()
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["moalign"])
    tr = runs[(runs["tags.moalign.stage"] == "train") & (runs["tags.mlflow.parentRunId"] == out["parent_run_id"])]
    assert sorted(tr["tags.moalign.strategy"]) == sorted(strategies)
    spans = sorted(zip(tr["start_time"], tr["end_time"]))
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans  # two train runs overlapped in time
