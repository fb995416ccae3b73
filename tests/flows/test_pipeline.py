"""The Prefect flow runs DVC stages under an MLflow parent run; deployments carry a cron."""

import asyncio
import os
import subprocess

import mlflow
import pytest

from tests.tiny import make_repo


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_flow_runs_stage_through_dvc_nested_in_parent(harness, tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo", git=True)
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MOALIGN_PARENT_RUN_ID", raising=False)
    from flows.pipeline import pipeline, stage_order

    order = stage_order()
    assert order[:3] == ["prepare", "balance", "sft"] and order[-1] == "evaluate"
    assert {"train@fixed", "train@hypervolume", "train@gradient"} <= set(order)
    out = pipeline(stages=["prepare"])
    assert (repo / "dvc.lock").exists() and "prepare" in (repo / "dvc.lock").read_text()
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["moalign"])
    parent = runs[runs["run_id"] == out["parent_run_id"]]
    assert len(parent) == 1 and parent.iloc[0]["tags.moalign.stage"] == "pipeline"
    child = runs[runs["tags.mlflow.parentRunId"] == out["parent_run_id"]]
    assert list(child["tags.moalign.stage"]) == ["prepare"]
    # DVC's record: a second run finds prepare up to date
    st = subprocess.run(["dvc", "status", "prepare"], capture_output=True, text=True, cwd=repo)
    assert "changed" not in st.stdout


def test_pipeline_deployment_has_cron(harness, tmp_path, monkeypatch):
    monkeypatch.chdir(make_repo(tmp_path / "repo"))
    from prefect.client.orchestration import get_client

    from flows.pipeline import deployment

    dep_id = deployment("0 3 * * *", name="test-cron").apply()

    async def read():
        async with get_client() as c:
            return await c.read_deployment(dep_id)

    dep = asyncio.run(read())
    assert dep.name == "test-cron"
    assert any(getattr(s.schedule, "cron", None) == "0 3 * * *" for s in dep.schedules)


def test_bad_params_fail_before_any_stage(harness, tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("seed:", "sed:"))
    from flows.pipeline import pipeline
    from moalign.schema import ParamsError

    with pytest.raises(ParamsError, match="base.sed"):
        pipeline(stages=["prepare"])
    assert not (repo / "data" / "prepared").exists()
