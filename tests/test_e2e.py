"""End-to-end `dvc repro` of the whole DAG on the tiny config (what CI runs), in a temp copy.

The first `dvc repro` is the session fixture ``tiny_pipeline`` (tests/conftest.py), which the
MLflow browser test opens too.
"""

import json
import os
import subprocess
import sys

import mlflow
import pytest

pytestmark = pytest.mark.slow


def dvc(repo, *args):
    p = subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def ran(out: str) -> list[str]:
    return [ln.split("'")[1] for ln in out.splitlines() if ln.startswith("Running stage")]


def test_dvc_repro_end_to_end(tiny_pipeline, tmp_path):
    repo, out = tiny_pipeline
    stages = ran(out)
    assert stages[:3] == ["prepare", "balance", "sft"] and stages[-1] == "evaluate"
    assert {"rubric", "train@fixed", "train@hypervolume", "train@gradient"} <= set(stages)
    # second repro reruns nothing
    assert ran(dvc(repo, "repro")) == []
    # metrics: per-strategy hypervolume
    shown = dvc(repo, "metrics", "show", "--json")
    m = json.loads((repo / "metrics/evaluate.json").read_text())
    for s in ("sft", "fixed", "hypervolume", "gradient"):
        assert "hypervolume" in m[s]
    assert "hypervolume" in shown
    # an experiment changing one evaluate key reruns evaluate only
    assert ran(dvc(repo, "exp", "run", "-S", "evaluate.match_tol=0.01")) == ["evaluate"]
    # a prepare key invalidates prepare (and, through its outputs, what depends on them)
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("vocab_size: 320", "vocab_size: 330"))
    status = dvc(repo, "status", "prepare", "--json")
    changed = json.loads(status)["prepare"][0]["changed deps"]["params.yaml"]
    assert changed == {"prepare": "modified"}  # dvc.yaml tracks the whole prepare section
    # the sweep flow: one more estimator as a DVC experiment, summarised and logged to MLflow
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    sw = subprocess.run([sys.executable, "-m", "flows.sweep", "run", "--estimators", "rloo", "--seeds", "0"],
                        cwd=repo, capture_output=True, text=True, env=env)
    assert sw.returncode == 0, sw.stdout[-3000:] + sw.stderr[-3000:]
    summary = json.loads(next(ln for ln in sw.stdout.splitlines() if ln.startswith("SUMMARY "))[8:])
    assert {"fixed/rloo", "hypervolume/rloo", "gradient/rloo"} <= set(summary)
    # MLflow has every stage and each strategy's run
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["moalign"])
    assert {"prepare", "balance", "sft", "rubric", "train", "evaluate", "sweep"} <= set(runs["tags.moalign.stage"])
    assert {"fixed", "hypervolume", "gradient"} <= set(runs["tags.moalign.strategy"].dropna())
