"""One smoke run per stage, in order, in-process on the tiny config (DVC-free; test_e2e covers dvc repro)."""

import json
from pathlib import Path

import datasets
import mlflow
import pytest
import yaml

from moalign.config import load_params
from stages import balance, evaluate, prepare, rubric, sft, train


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    import os

    from tests.tiny import make_repo

    d = make_repo(tmp_path_factory.mktemp("stages") / "repo")
    old = os.getcwd()
    os.chdir(d)
    os.environ.pop("MOALIGN_PARENT_RUN_ID", None)
    prepare.run(load_params())
    yield d
    os.chdir(old)


def test_balance_smoke(repo):
    plan = balance.run(load_params())
    assert Path("data/balanced/plan.json").exists() and Path("data/balanced/report.png").exists()
    assert [p["tau"] for p in plan["phases"]] == [5.0, 1.0]


def test_sft_smoke(repo):
    m = sft.run(load_params())
    assert "all/accuracy" in m and "en/loss" in m
    assert Path("models/sft/model.safetensors").exists() and Path("models/sft/tokenizer.json").exists()
    assert not Path("checkpoints/sft").exists()  # cleared after success
    # per-domain validation-loss curve: one column per domain, one row per val_loss_every steps (+ step 0)
    csv = Path("plots/sft/domain_val_loss.csv").read_text().splitlines()
    assert csv[0] == "step,de,en,es,fr"
    assert [int(r.split(",")[0]) for r in csv[1:]] == [0, 3, 6]
    assert all(len(r.split(",")) == 5 and all(float(x) > 0 for x in r.split(",")[1:]) for r in csv[1:])
    assert Path("plots/sft/domain_val_loss.png").exists()
    last = dict(zip(csv[0].split(","), csv[-1].split(",")))
    assert float(last["de"]) == pytest.approx(m["de/loss"], abs=1e-5)  # the same loss the final eval reports
    mlflow.set_tracking_uri(load_params().base.tracking.uri)
    run = mlflow.search_runs(experiment_names=["moalign"], filter_string="tags.`moalign.stage` = 'sft'").iloc[0]
    hist = mlflow.tracking.MlflowClient().get_metric_history(run.run_id, "val_loss/de")
    assert sorted(h.step for h in hist) == [0, 3, 6]


def test_rubric_smoke(repo):
    m = rubric.run(load_params())
    assert Path("rubrics/refined.yaml").exists() and Path("data/rubric/proposals.json").exists()
    # the reported agreements are those of the written rubrics on the saved test pairs
    from moalign.rubric.evolve import agreement
    from moalign.rubric.judges import make_judge
    from moalign.rubric.schema import load_meta_rubric

    cfg = load_params().rubric
    test = list(datasets.load_from_disk("data/rubric/preferences")["test"])
    judge = make_judge(cfg.judge)
    initial = load_meta_rubric(cfg.meta, cfg.domain_layer, cfg.accepted)
    assert m["refined_test"] == pytest.approx(agreement(judge, load_meta_rubric("rubrics/refined.yaml"), test,
                                                        cfg.evolve.tie_credit))
    assert m["initial_test"] == pytest.approx(agreement(judge, initial, test, cfg.evolve.tie_credit))
    assert m["gain_test"] == pytest.approx(m["refined_test"] - m["initial_test"])
    # OpenRS's comparison on the same held-out pairs: pairwise and pointwise x initial/refined x all/tie split
    from moalign.rubric.pointwise import pointwise_agreement
    from moalign.rubric.preferences import tie_split

    written = json.loads(Path("metrics/rubric.json").read_text())
    refined, tie = load_meta_rubric("rubrics/refined.yaml"), tie_split(test)
    assert written["pairs_test_tie"] == len(tie) == sum(r["tie"] for r in test)
    for judge_name in ("pairwise_test", "pointwise_test"):
        assert set(written[judge_name]) == {"initial", "refined", "initial_tie", "refined_tie", "gain", "gain_tie"}
    assert written["pairwise_test"]["refined"] == pytest.approx(m["refined_test"])
    assert written["pairwise_test"]["initial_tie"] == pytest.approx(agreement(judge, initial, tie, cfg.evolve.tie_credit))
    assert written["pointwise_test"]["refined_tie"] == pytest.approx(pointwise_agreement(refined, tie,
                                                                                         cfg.evolve.tie_credit))
    assert written["pointwise_test"]["initial"] == pytest.approx(pointwise_agreement(initial, test,
                                                                                     cfg.evolve.tie_credit))


@pytest.mark.parametrize("strategy", ["fixed", "hypervolume", "gradient"])
def test_train_smoke(repo, strategy):
    m = train.run(load_params(), strategy=strategy)
    assert {"rewards/accuracy/mean", "weights/accuracy", "losses/policy"} <= set(m)
    d = Path("models/train") / strategy
    assert (d / "model.safetensors").exists() and list((d / "snapshots").glob("step-*"))
    hist = json.loads((d / "history.json").read_text())
    assert hist["validation"][0]["step"] == 0
    assert Path(f"plots/train/{strategy}/history.csv").read_text().startswith("step,")


def test_evaluate_smoke(repo):
    m = evaluate.run(load_params())
    for s in ("sft", "fixed", "hypervolume", "gradient"):
        assert "hypervolume" in m[s] and "length" in m[s]
    lowered = (m["degenerate"] or {}).get("reference_lowered", {})  # an untrained tiny policy: constant objectives
    assert m["reference"] == [lowered.get(o, 0.0) for o in m["objectives"]]  # origin (default), made informative
    for s in ("sft", "fixed", "hypervolume", "gradient"):
        lo, hi = m[s]["hypervolume_ci"]
        assert lo <= hi and {"weight_shift", "on_front", "accuracy_se", "greedy_accuracy"} <= set(m[s])
        assert m[s]["on_front"] == (s in m["non_dominated"])
    for s in ("fixed", "hypervolume", "gradient"):  # max_k |w_final - w_initial| from the run's own record
        h = json.loads(Path(f"models/train/{s}/history.json").read_text())
        exp = max(abs(a - b) for a, b in zip(h["final_weights"], h["initial_weights"]))
        assert m[s]["weight_shift"] == pytest.approx(exp)
    assert m["fixed"]["weight_shift"] == 0.0
    assert m["baseline"] == "fixed"  # best_fixed: the only fixed strategy here
    table = Path("plots/evaluate/policies.csv").read_text().splitlines()
    assert table[0].startswith("policy,") and len(table) == 5  # header + sft + 3 strategies
    for f in ("pareto.png", "hypervolume.csv", "weights.csv", "points.csv"):
        assert Path("plots/evaluate", f).exists()
    mlflow.set_tracking_uri(load_params().base.tracking.uri)
    runs = mlflow.search_runs(experiment_names=["moalign"])
    assert {"fixed", "hypervolume", "gradient"} <= set(runs["tags.moalign.strategy"].dropna())
    # every strategy run carries the same metric names (MLflow compare view lines them up)
    tr = runs[runs["tags.moalign.stage"] == "train"]
    cols = {s: {c for c in tr.columns if c.startswith("metrics.") and tr[tr["tags.moalign.strategy"] == s][c].notna().any()}
            for s in ("fixed", "hypervolume")}
    assert {"metrics.pareto/hypervolume", "metrics.weights/accuracy"} <= cols["fixed"] & cols["hypervolume"]


def test_evaluate_bad_inputs(repo):
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["evaluate"]["reference"] = [0.1, 0.2]
    Path("params.bad.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ValueError, match="evaluate.reference"):
        evaluate.run(load_params("params.bad.yaml"))
    p["evaluate"]["reference"] = [1.0, 1.0, 1.0]  # nobody dominates it: hypervolume 0, points excluded
    Path("params.bad.yaml").write_text(yaml.safe_dump(p))
    m = evaluate.run(load_params("params.bad.yaml"))
    assert all(m[s]["hypervolume"] == 0.0 for s in ("sft", "fixed"))  # explicit coordinates are kept as given
    assert m["reference"] == [1.0, 1.0, 1.0] and m["degenerate"]["never_above_reference"] == m["objectives"]
    p["train"]["strategies"] = ["fixed", "hypervolume", "gradient"]
    Path("models/train/gradient").rename("models/train/gradient.bak")
    try:
        with pytest.raises(FileNotFoundError, match="train@gradient"):
            evaluate.run(load_params())
    finally:
        Path("models/train/gradient.bak").rename("models/train/gradient")


def test_train_with_rubric_objective_moves_it(repo):
    """Runs last: it overwrites models/train/fixed with a different objective list."""
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["train"]["objectives"] = ["accuracy", "rubric"]
    p["train"]["strategies"] = ["fixed"]
    Path("params.yaml.rubric").write_text(yaml.safe_dump(p))
    m = train.run(load_params("params.yaml.rubric"), strategy="fixed")
    hist = json.loads(Path("models/train/fixed/history.json").read_text())
    assert hist["objectives"] == ["accuracy", "rubric"] and m["weights/rubric"] > 0
    # the rubric reward separated the rollouts (a constant reward gives no advantage to move on)
    assert any(h["rewards/rubric/std"] > 0 for h in hist["history"])
    assert hist["validation"][-1]["point"][1] == pytest.approx(m["eval/rubric"])
    # the objective the run trained on prefers a correct worked answer to a wrong unboxed one
    from moalign.rl.rewards import make_reward

    fn = make_reward("rubric", **load_params("params.yaml.rubric").train.reward_options.get("rubric", {}))
    good, bad = "1. 2 + 3 = 5\n2. so 5\nAnswer: \\boxed{5}", "it is 6"
    r_good, r_bad = fn([good, bad], prompts=["Question: 2 + 3?\nSolution:"] * 2, answer=["5", "5"], group_size=2)
    assert r_good > r_bad


def test_rubric_objective_experiment_as_documented(repo):
    """README: dvc exp run -S 'train.objectives=[accuracy,conciseness,clarity,rubric]' -S 'train.strategies=[...]'."""
    from moalign.rl.config import TrainConfig

    p = yaml.safe_load(Path("params.yaml").read_text())
    p["train"]["objectives"] = ["accuracy", "conciseness", "clarity", "rubric"]
    # the paper's presets are defined for three objectives: the fixed-<preset> strategies say how to fix it
    with pytest.raises(ValueError, match="train.weighting.weights"):
        from moalign.rl.weighting import make_weighting

        make_weighting("fixed-accuracy", p["train"]["objectives"], TrainConfig(**p["train"]).weighting)
    p["train"]["strategies"] = ["fixed", "hypervolume", "gradient"]
    p["train"]["reward_options"] = {"rubric": {"rubric_path": "rubrics/meta.yaml"}}  # the initial rubric
    Path("params.yaml.rubric4").write_text(yaml.safe_dump(p))
    m = train.run(load_params("params.yaml.rubric4"), strategy="hypervolume")
    hist = json.loads(Path("models/train/hypervolume/history.json").read_text())
    assert hist["objectives"] == p["train"]["objectives"] and len(hist["validation"][-1]["point"]) == 4
    assert 0 <= m["eval/rubric"] <= 1 and "weights/rubric" in m
    with pytest.raises(FileNotFoundError, match="dvc repro rubric"):
        p["train"]["reward_options"] = {"rubric": {"rubric_path": "rubrics/none.yaml"}}
        Path("params.yaml.rubric4").write_text(yaml.safe_dump(p))
        train.run(load_params("params.yaml.rubric4"), strategy="fixed")
