"""``moalign study run`` end to end on a tiny project: records, summary, decisions, provenance, MLflow, resume, -S.

The project copy holds the learnable fixture's policy as ``models/sft`` (tests/rl/learnable.py, fitted in about
a second) and arithmetic rows as ``data/prepared/{train,val,test}`` (no prepare/balance/sft stages), with the
tiny train section (tests/tiny.py: 2 prompts x 2 rollouts of <= 12 tokens, val_rows 4). The study is 2
strategies (fixed-accuracy, hypervolume) x 2 reporting seeds x 2 steps, with one tuning seed for the
hypervolume grid (4 values), each run scored on 2 prompts per domain x 1 sampled decode.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from moalign.cli import main as cli

VAL_ROWS = 4  # tests/tiny.py's train.val_rows: the rows the trainer validates on during training
ARGS = ["study", "run", "--strategies", "fixed-accuracy", "hypervolume", "--seeds", "0", "1", "--tuning-seeds", "100",
        "--steps", "2", "--rows", "2", "--samples", "1", "-S", "train.lr=0.002", "-S", "train.group_size=3"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    import datasets

    from moalign.data.arith import generate
    from tests.rl.learnable import learnable
    from tests.tiny import make_repo

    d = make_repo(tmp_path_factory.mktemp("study") / "repo")
    _, tok, model = learnable()
    model.save_pretrained(d / "models/sft", safe_serialization=True)
    tok.save_pretrained(d / "models/sft")
    rows = generate({"en": 60, "de": 2}, 6, 2, {"add": 1}, 0)  # 6 val and 6 test rows per domain
    for split in ("train", "val", "test"):
        datasets.Dataset.from_list(rows[split]).save_to_disk(str(d / "data/prepared" / split))
    return d


def _recs(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def study(repo, harness):
    """The study run once (in-process, as `moalign study run`), with what the tests read."""
    old = Path.cwd()
    os.chdir(repo)
    os.environ.pop("MOALIGN_PARENT_RUN_ID", None)
    try:
        assert cli([*ARGS, "--out", "results/study/t"]) == 0
    finally:
        os.chdir(old)
    return repo / "results/study/t"


def test_study_writes_records_summary_and_decisions(study):
    cal, rep = _recs(study / "calibration/runs.jsonl"), _recs(study / "study/runs.jsonl")
    assert sorted((r["strategy"], r["value"], r["seed"]) for r in cal) == \
        [("hypervolume", v, 100) for v in sorted(["1.0", "3.0", "10.0", "30.0"])]
    assert sorted((r["strategy"], r["seed"]) for r in rep) == [("fixed-accuracy", 0), ("fixed-accuracy", 1),
                                                               ("hypervolume", 0), ("hypervolume", 1)]
    chosen = json.loads((study / "calibration/chosen.json").read_text())["hypervolume"]
    assert all(r["value"] == chosen["chosen"] for r in rep if r["strategy"] == "hypervolume")  # the calibrated knob
    assert all(r["steps"] == 2 and len(r["weights"]) == 2 and r["split"] == "test" for r in rep)
    for r in cal + rep:  # provenance: commit, one config fingerprint per phase, the SFT policy's hash
        p = r["provenance"]
        assert {"git_commit", "config_sha256", "versions", "machine", "sft_sha256"} <= set(p)
    assert len({r["provenance"]["config_sha256"] for r in rep}) == 1
    assert len({r["provenance"]["config_sha256"] for r in cal}) == 1
    summary = json.loads((study / "summary.json").read_text())
    assert set(summary["table"]) == {"fixed-accuracy", "hypervolume"} and summary["seeds"] == [0, 1]
    assert summary["best_fixed"] == "fixed-accuracy" and summary["calibration"]["hypervolume"] == chosen
    md = (study / "decisions.md").read_text()
    assert "| goal | pick |" in md and "does hypervolume beat fixed-accuracy" in md
    # the SFT policy itself, scored per seed on the same test prompts: every strategy's gain over its start
    start = _recs(study / "start/runs.jsonl")
    assert sorted((r["strategy"], r["seed"], r["steps"]) for r in start) == [("sft", 0, 0), ("sft", 1, 0)]
    assert all(r["row_index"] == rep[0]["row_index"] and len(r["per_prompt"]) == 4 for r in start + rep)
    over = summary["over_start"]
    assert set(over) == {"fixed-accuracy", "hypervolume"}
    for s, o in over.items():
        assert [x["seed"] for x in o["per_seed"]] == [0, 1]
        for x in o["per_seed"]:
            r = next(r for r in rep if r["strategy"] == s and r["seed"] == x["seed"])
            st = next(r for r in start if r["seed"] == x["seed"])
            assert x["accuracy"]["gain"] == pytest.approx(r["point"][0] - st["point"][0], abs=1e-5)
    assert "Gain over the SFT policy" in md
    inv = json.loads((study / "run.json").read_text())["invocations"]  # the wall time of each invocation
    assert inv[0]["status"] == "FINISHED" and inv[0]["wall_seconds"] > 0 and inv[0]["records_after"] == 10
    assert (study / "weights.png").exists() and (study / "front.png").exists()


def test_overrides_reach_every_run_and_mlflow_nests_them(study, repo):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("moalign")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("moalign.stage") == "study" and r.info.run_name == "study"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and "train.lr=0.002" in parent.data.params["overrides"]
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(kids) == 10  # 4 calibration + 2 start (SFT scored) + 4 reporting runs, all under the one parent
    for k in kids:  # the -S overrides were applied before validation and reached every run
        assert k.data.params["train.lr"] == "0.002" and k.data.params["train.group_size"] == "3"
        assert {"final/accuracy", "final/hypervolume", "final/length"} <= set(k.data.metrics)
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "decisions.md"} <= arts


def test_calibration_is_scored_on_validation_rows_the_trainer_never_sees(study, repo):
    import datasets

    val = list(datasets.load_from_disk(str(repo / "data/prepared/val")))
    during = {r["question"] for r in val[:VAL_ROWS]}  # the trainer's validation points: val[:train.val_rows]
    for r in _recs(study / "calibration/runs.jsonl"):
        assert r["split"] == "val" and r["row_index"] and min(r["row_index"]) >= VAL_ROWS
        scored = [val[i] for i in r["row_index"]]
        assert not {x["question"] for x in scored} & during
        assert {x["domain"] for x in scored} == {"en", "de"} and r["provenance"]["rows"] == len(scored) == 4
    test = list(datasets.load_from_disk(str(repo / "data/prepared/test")))
    for r in _recs(study / "study/runs.jsonl"):
        assert r["split"] == "test" and [test[i]["domain"] for i in r["row_index"]].count("de") == 2


def test_rerun_adds_nothing(study, repo, monkeypatch):
    before = {p: p.read_bytes() for p in (study / "calibration/runs.jsonl", study / "study/runs.jsonl",
                                          study / "start/runs.jsonl")}
    monkeypatch.chdir(repo)
    assert cli([*ARGS, "--out", "results/study/t"]) == 0
    assert {p: p.read_bytes() for p in before} == before


def test_other_settings_are_refused_in_the_same_folder(study, repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    assert cli([*ARGS[:-4], "--out", "results/study/t"]) == 2  # without the -S overrides: another config
    err = capsys.readouterr().err
    assert "another config" in err and "--out" in err


def test_unknown_override_key_fails_naming_it(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    assert cli(["study", "run", "-S", "train.max_stepz=3", "--out", "results/study/bad"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moalign study: error:") and "train.max_stepz" in err and len(err.strip().splitlines()) == 1
    assert not (repo / "results/study/bad/study/runs.jsonl").exists()


@pytest.mark.slow
def test_dask_local_cluster_of_two_workers(repo, harness, monkeypatch, tmp_path):
    """Two runs on a LocalCluster of 2 worker processes (prefect_dask.DaskTaskRunner), recorded by the flow."""
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MOALIGN_PARENT_RUN_ID", raising=False)
    out = tmp_path / "dask"
    assert cli(["study", "run", "--strategies", "fixed-accuracy", "--seeds", "0", "1", "--tuning-seeds",
                "--steps", "2", "--rows", "2", "--samples", "1", "--dask", "--workers", "2", "--out", str(out)]) == 0
    recs = _recs(out / "study/runs.jsonl")
    assert sorted(r["seed"] for r in recs) == [0, 1] and not (out / "calibration/chosen.json").exists()
    assert (out / "decisions.md").exists()
    with sqlite3.connect(repo / "mlflow.db") as db:  # nested under one parent although trained in other processes
        kids = db.execute("SELECT COUNT(*) FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid WHERE "
                          "t.key = 'mlflow.parentRunId' AND t.value = (SELECT run_uuid FROM runs WHERE name = 'study' "
                          "ORDER BY start_time DESC LIMIT 1)").fetchone()[0]
    assert kids == 4  # 2 start (the SFT policy scored) + 2 reporting runs
    shutil.rmtree(out)


def test_overrides_parse_as_dvc_exp_run_s():
    from moalign.config import apply_sets
    from moalign.study import held_out_val

    raw = apply_sets({"train": {"lr": 0.1, "weighting": {"hv_scale": 3.0}}},
                     ["train.lr=1e-4", "train.weighting.hv_scale=10", "train.strategies=[fixed-accuracy,gradient]"])
    assert raw == {"train": {"lr": 1e-4, "weighting": {"hv_scale": 10}, "strategies": ["fixed-accuracy", "gradient"]}}
    assert held_out_val(list(range(6)), 4) == ([4, 5], 4)
    with pytest.raises(ValueError, match="train.val_rows"):
        held_out_val(list(range(4)), 4)
