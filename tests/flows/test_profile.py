"""flows.profile: a profile (overlay of params.yaml) run end to end in its own workspace, its results
folder, the README section rendered from that folder, and both model registries of the run."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from flows.profile import main, profile_params
from moalign.report.profile import render


def test_overlays_and_sets_stack_in_order(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("sft: {lr: 0.001, lora: {enabled: true}}\ntrain: {strategies: [fixed]}\n")
    b.write_text("sft: {lr: 0.0002}\n")
    p = profile_params([a, b], ["train.max_steps=3", "train.strategies=[gradient]"])
    assert p["sft"]["lr"] == 0.0002 and p["sft"]["lora"] == {**p["sft"]["lora"], "enabled": True, "r": 16}
    assert p["train"]["max_steps"] == 3 and p["train"]["strategies"] == ["gradient"]
    assert p["evaluate"]["samples"] == 4  # untouched keys keep params.yaml's values
    # the one override syntax (moalign.config.apply_sets, as `dvc exp run -S`): typed values, bad items named
    from moalign.schema import ParamsError

    assert profile_params([], ["train.lr=1e-3", "train.grad_layers=[a, b]"])["train"]["grad_layers"] == ["a", "b"]
    with pytest.raises(ParamsError, match="not key=value"):
        profile_params([], ["train.max_steps"])


@pytest.mark.slow
def test_profile_run_results_report_and_registries(tmp_path):
    from tests.rubric_tiny import RUBRIC_TINY
    from tests.tiny import TINY, merge

    prof = tmp_path / "tinyprof.yaml"
    overlay = merge(TINY, {"rubric": RUBRIC_TINY, "train": {"strategies": ["fixed", "hypervolume"]},
                           "evaluate": {"bootstrap": 20}, "base": {"tracking": {"experiment": "moalign-tiny"}}})
    prof.write_text(yaml.safe_dump(overlay))
    ws, res = tmp_path / "ws", tmp_path / "results"
    assert main(["run", str(prof), "--workspace", str(ws), "--results", str(res), "-S", "sft.max_steps=4"]) == 0
    run = json.loads((res / "run.json").read_text())
    stages = ["prepare", "balance", "sft", "rubric", "train@fixed", "train@hypervolume", "evaluate"]
    assert list(run["wall_seconds"]) == [*stages, "total", "invocation"] and all(v > 0 for v in run["wall_seconds"].values())
    assert run["cached"] == []
    assert run["set"] == ["sft.max_steps=4"] and yaml.safe_load((res / "params.yaml").read_text())["sft"]["max_steps"] == 4
    for f in ("metrics/evaluate.json", "metrics/sft.json", "metrics/train/hypervolume.json", "metrics/rubric.json",
              "plots/evaluate/policies.csv", "plots/evaluate/pareto.png", "dvc.lock"):
        assert (res / f).exists(), f
    # the README section: every number from the results folder
    ev = json.loads((res / "metrics/evaluate.json").read_text())
    text = render(res)
    for n in ("sft", "fixed", "hypervolume"):
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| {n} |"))
        assert f"{ev[n]['accuracy']:.3f} +- {ev[n]['accuracy_se']:.3f}" in row
        assert f"{ev[n]['length']:.1f} +- {ev[n]['length_se']:.1f}" in row
    assert f"**{run['wall_seconds']['total'] / 60:.1f} min**" in text
    # MLflow (the workspace's own store): parent run + nested stage runs, policies registered by strategy
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{ws / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["moalign-tiny"])
    parent = runs[runs["tags.mlflow.runName"] == "profile:tinyprof"].iloc[0]
    assert set(stages) - {"train@fixed", "train@hypervolume"} | {"train"} <= set(
        runs[runs["tags.mlflow.parentRunId"] == parent.run_id]["tags.moalign.stage"])
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("moalign-policy", "hypervolume").tags["moalign.strategy"] == "hypervolume"
    # DVC's registry: the run is committed in the workspace and each policy tagged
    out = tmp_path / "got"
    p = subprocess.run(["dvc", "artifacts", "get", str(ws), "policy-hypervolume", "-o", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (out / "model.safetensors").exists() and (out / "history.json").exists()
    # a rerun finds every stage up to date (DVC skips them) and still reports what the outputs cost
    assert main(["run", str(prof), "--workspace", str(ws), "--results", str(res), "-S", "sft.max_steps=4"]) == 0
    again = json.loads((res / "run.json").read_text())
    assert again["cached"] == stages
    assert {k: again["wall_seconds"][k] for k in stages} == {k: run["wall_seconds"][k] for k in stages}
    assert "were up to date in the last invocation" in render(res)


def test_skipped_stages_cost_what_they_took_when_they_last_ran():
    from flows.profile import stage_costs

    ledger = {"sft": {"seconds": 227.0}, "train@a": {"seconds": 50.0}}
    times = {"sft": 0.8, "train@a": 120.0, "evaluate": 60.0}
    costs, cached = stage_costs(ledger, times, {"sft": False, "train@a": True, "evaluate": True})
    assert cached == ["sft"]
    assert costs["sft"] == 227.0 and costs["train@a"] == 120.0  # a stage that ran costs this invocation's time
    assert costs["total"] == 227.0 + 120.0 + 60.0
    # a skipped stage with no ledger entry keeps the time it took now (nothing better is known)
    costs, cached = stage_costs({}, {"sft": 0.8}, {"sft": False})
    assert costs == {"sft": 0.8, "total": 0.8} and cached == ["sft"]
