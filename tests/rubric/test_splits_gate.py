"""The rubric stage's splits and gate: test labels reach only test numbers; ``rubric.gate_checks`` decides the gate.

The stage runs on a user preference file (``rubric.preferences``), so no SFT model is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml

from moalign.config import load_params
from moalign.rubric.evolve import agreement, verdicts
from moalign.rubric.judges import make_judge
from moalign.rubric.pointwise import pointwise_agreement
from moalign.rubric.preferences import split_by_prompt, synthetic_pairs, tie_split
from moalign.rubric.schema import Criterion, load_meta_rubric
from stages import rubric as stage
from tests.rubric.helpers import META, sft_like_samples

N_PROMPTS, SEED = 80, 0
REFINED = "rubrics/refined.yaml"


def _pairs() -> list[dict]:
    p, a, s = sft_like_samples(N_PROMPTS, 4, seed=1)
    return synthetic_pairs(p, a, ["en"] * N_PROMPTS, s, 0.1, SEED, 3, True, "rules")


def _write(rows: list[dict]) -> None:
    Path("prefs.jsonl").write_text("".join(json.dumps({k: r[k] for k in ("prompt", "chosen", "rejected", "answer")})
                                           + "\n" for r in rows))


def _outputs() -> dict:
    return {"refined": Path("rubrics/refined.yaml").read_text(), "diff": Path("data/rubric/diff.patch").read_text(),
            "proposals": json.loads(Path("data/rubric/proposals.json").read_text()),
            "report": json.loads(Path("data/rubric/report.json").read_text()),
            "metrics": json.loads(Path("metrics/rubric.json").read_text())}


def _train_val(out: dict) -> dict:
    """Everything the stage reports that must not depend on the test split."""
    keep = {k: v for k, v in out.items() if k not in ("report", "metrics")}
    keep["agreement"] = {k: v for k, v in out["report"]["agreement"].items() if not k.endswith("/test")}
    keep["history"] = out["report"]["history"]
    keep["metrics"] = {k: v for k, v in out["metrics"].items() if "test" not in k}
    return keep


@pytest.fixture
def prefs_repo(tiny_repo):
    """The tiny repo with a user preference file, a rubric without a fatal criterion, and no gate."""
    meta = yaml.safe_load(Path(META).read_text())
    meta["criteria"] = [c for c in meta["criteria"] if c.get("tier") != "fatal"]  # correctness left to the gate
    Path("meta_nofatal.yaml").write_text(yaml.safe_dump(meta))
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["base"]["tracking"]["enabled"] = False
    p["rubric"].update({"preferences": "prefs.jsonl", "meta": "meta_nofatal.yaml", "gate_checks": [],
                        "evolve": {"population": 6, "generations": 4, "elite": 1}})
    Path("params.yaml").write_text(yaml.safe_dump(p))
    return tiny_repo


def test_test_labels_change_no_rubric_and_no_train_val_number(prefs_repo):
    rows = _pairs()
    params = load_params()
    test_prompts = {r["prompt"] for r in split_by_prompt(rows, params.rubric.splits, SEED)["test"]}
    _write(rows)
    stage.run(params)
    first = _outputs()
    flipped = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} if r["prompt"] in test_prompts else r
               for r in rows]
    _write(flipped)
    stage.run(params)
    second = _outputs()
    # the flip reached the test numbers. With tie credit 0.5 and no gate the flipped agreement is exactly
    # 1 - the first (every seed 0-19), so this fails only when the refined rubric says A and B equally
    # often on test (agreement 0.5). |difference| over seeds 0-19 (samples seed 1+s, SEED and base.seed
    # s): mean 0.364, worst 0.017 (seed 5: one pair of 60)
    assert first["metrics"]["refined_test"] != second["metrics"]["refined_test"]
    assert _train_val(first) == _train_val(second)  # every seed 0-19


def test_gate_checks_decide_the_gate_everywhere(prefs_repo):
    _write(_pairs())
    params = load_params()
    m = stage.run(params)
    cfg, judge = params.rubric, make_judge("rules")
    splits = {s: list(v) for s, v in datasets.load_from_disk("data/rubric/preferences").items()}
    initial, refined = load_meta_rubric(cfg.meta, cfg.domain_layer, cfg.accepted), load_meta_rubric(REFINED)
    tc = cfg.evolve.tie_credit
    for s in ("train", "val", "test"):  # evolution's fitness, selection and report: no gate
        assert m[f"initial_{s}"] == pytest.approx(agreement(judge, initial, splits[s], tc, ()))
        assert m[f"refined_{s}"] == pytest.approx(agreement(judge, refined, splits[s], tc, ()))
    # the ground-truth gate would have given other numbers: the setting is live
    # |difference| over seeds 0-19 (samples seed 1+s, base.seed s): mean 0.126, worst 0.058
    assert m["initial_train"] != pytest.approx(agreement(judge, initial, splits["train"], tc, ("ground_truth",)))
    assert m["pointwise_test"]["initial"] == pytest.approx(pointwise_agreement(initial, splits["test"], tc, ()))
    # |difference| over seeds 0-19: mean 0.125, worst 0.033 (two pairs of 60)
    assert m["pointwise_test"]["initial"] != pytest.approx(
        pointwise_agreement(initial, splits["test"], tc, ("ground_truth",)))
    # review proposals: fixes / breaks counted on val verdicts without a gate
    base = verdicts(judge, refined, splits["val"], ())
    written = json.loads(Path("data/rubric/proposals.json").read_text())
    assert written  # over seeds 0-19: mean 3.8 proposals, worst 3
    for p in written:
        trial = refined.model_copy(deep=True)
        trial.criteria = trial.criteria + [Criterion(**p["criterion"])]
        new = verdicts(judge, trial, splits["val"], ())
        assert p["fixes"] == sum(a != "A" and b == "A" for a, b in zip(base, new)), p["edit"]
        assert p["breaks"] == sum(a == "A" and b != "A" for a, b in zip(base, new)), p["edit"]

def test_no_tie_pairs_report_null_not_zero():
    """A test split without a correctness tie: its tie agreements and gains are None (JSON null), 0 pairs."""
    rows = [r for r in _pairs() if not r["tie"]]
    assert rows and not tie_split(rows)  # over seeds 0-19: mean 98 non-tie rows, worst 79
    rubric, judge = load_meta_rubric(META), make_judge("rules")
    out = stage.compare_judges(judge, rubric, rubric, rows, 0.5)
    for name in ("pairwise_test", "pointwise_test"):
        assert out[name]["initial_tie"] is None and out[name]["refined_tie"] is None
        assert out[name]["gain_tie"] is None and out[name]["initial"] is not None
    assert agreement(judge, rubric, [], 0.5) is None and pointwise_agreement(rubric, []) is None
