"""The weighting study's decision rule and its recomputation (moalign/study_summary.py, moalign.report --check).

Hand-made records with known answers: the paired t-test against scipy's and a hand computation, the
tie outcome, the pick rows, the calibration choice, and edits of raw records failing the check.
"""

import json
import math
import shutil
from pathlib import Path

import pytest

from moalign import study_summary as ss
from moalign.report import cli as report
from moalign.study import GRID, choose

ROOT = Path(__file__).resolve().parents[1]


def _run(strategy, seed, hv, acc=0.1, length=40.0):
    return {"strategy": strategy, "seed": seed, "objectives": ["accuracy", "conciseness", "clarity"], "steps": 10,
            "point": [acc, 0.5, 0.9], "se": [0.01, 0.01, 0.01], "length": length, "length_se": 1.0, "hypervolume": hv,
            "final_weights": [1 / 3] * 3, "initial_weights": [1 / 3] * 3, "styles": {}, "weights": [[1 / 3] * 3],
            "validation": [{"step": 10, "hypervolume": hv}]}


def test_paired_test_by_hand():
    t = ss.paired_test([0.01, 0.02, 0.03])  # mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 3.464, 2 df
    assert t["mean"] == pytest.approx(0.02) and t["sd"] == pytest.approx(0.01) and t["wins"] == 3
    assert t["t"] == pytest.approx(2 * math.sqrt(3))
    assert t["p"] == pytest.approx(0.0742, abs=1e-4)  # 2 * (1 - F_t2(3.464)) = 1 - 3.464 / sqrt(2 + 3.464^2)
    half = 4.302653 * 0.01 / math.sqrt(3)  # t_{0.975, 2} = 4.3027
    assert t["ci95"] == pytest.approx([0.02 - half, 0.02 + half], abs=1e-6)
    assert ss.verdict(t) == "tie" and ss.verdict(t, alpha=0.1) == "yes"
    assert ss.verdict(ss.paired_test([-0.03, -0.031, -0.029, -0.03])) == "no"
    assert ss.verdict(ss.paired_test([0.01])) == "tie"  # one seed: no test


def test_decisions_use_one_rule():
    runs = []
    for seed, (a, b, c) in enumerate([(0.115, 0.09, 0.05), (0.106, 0.08, 0.04), (0.124, 0.10, 0.05), (0.116, 0.09, 0.06)]):
        runs += [_run("fixed-accuracy", seed, b, acc=0.2), _run("hypervolume", seed, a, acc=0.2 + 0.001 * seed),
                 _run("gradient", seed, c, acc=0.1, length=30.0)]
    tab = ss.table(runs)
    rows = {r["goal"]: r for r in ss.decisions(runs, tab, "fixed-accuracy")}
    hv = rows["does hypervolume beat fixed-accuracy (test HV, paired)?"]
    assert hv["pick"] == "yes" and hv["test"]["p"] < 0.05 and hv["wins"] == 4  # +0.024..+0.026 on every seed
    assert rows["does gradient beat fixed-accuracy (test HV, paired)?"]["pick"] == "no"
    assert rows["largest hypervolume (all three objectives)"]["pick"] == "hypervolume"
    assert rows["shortest answers"]["pick"] == "gradient"  # 30 vs 40 tokens on every seed
    acc = rows["highest accuracy"]  # hypervolume 0.2015 vs fixed-accuracy 0.2: not significant
    assert acc["pick"] == "tie: hypervolume, fixed-accuracy" and acc["test"]["p"] > 0.05


def test_gain_over_start_is_paired_by_prompt():
    def rec(strategy, seed, acc):  # per-prompt accuracy on 4 prompts; the other objectives fixed
        pp = [[a, 0.5, 0.9] for a in acc]
        return {**_run(strategy, seed, 0.05, acc=sum(acc) / 4), "per_prompt": pp, "row_index": [3, 5, 7, 9]}

    start = [rec("sft", 0, [0.0, 0.25, 0.5, 0.0]), rec("sft", 1, [0.0, 0.0, 0.5, 0.25])]
    runs = [rec("gradient", 0, [0.25, 0.5, 0.75, 0.0]), rec("gradient", 1, [0.25, 0.25, 0.5, 0.5])]
    g = ss.prompt_gain(runs[0], start[0], 0)  # differences 0.25, 0.25, 0.25, 0: mean 0.1875, sd 0.125
    assert g["gain"] == pytest.approx(0.1875) and g["se"] == pytest.approx(0.125 / 2)
    assert g["z"] == pytest.approx(3.0) and g["prompts"] == 4
    over = ss.over_start(runs, start)["gradient"]
    # seed 1: differences 0.25, 0.25, 0, 0.25: the same mean and sd
    assert [x["accuracy"]["gain"] for x in over["per_seed"]] == pytest.approx([0.1875, 0.1875])
    assert over["min_z"] == pytest.approx(3.0) and over["per_seed"][0]["clarity"]["gain"] == 0.0
    assert over["verdict"] == "yes" and over["test"]["p"] == 0.0  # the same gain on both seeds
    with pytest.raises(ValueError, match="different prompts"):
        ss.prompt_gain({**runs[0], "row_index": [1, 2, 3, 4]}, start[0], 0)
    lines = ss.start_table({"objectives": ["accuracy", "conciseness", "clarity"], "over_start": ss.over_start(runs, start),
                            "start": {"accuracy": {"mean": 0.1}, "conciseness": {"mean": 0.5},
                                      "clarity": {"mean": 0.9}, "length": {"mean": 40.0}}})
    assert "| gradient | +0.188 (+3.0), +0.188 (+3.0) |" in lines[-1] and "**yes**" in lines[-1]


def test_sft_seeds_pair_on_sft_and_rl_seed():
    """With --sft-seeds each comparison stays within one (SFT seed, RL seed) pair: the same RL seed under another SFT
    policy is another unit, and the test over units sees the SFT policy's variation."""
    runs = []
    for sft, base in ((0, 0.10), (1, 0.06)):  # the second SFT policy is worse for everyone
        for seed in (0, 1):
            runs += [{**_run("fixed-accuracy", seed, base), "sft_seed": sft},
                     {**_run("hypervolume", seed, base + 0.01 + 0.001 * seed), "sft_seed": sft}]
    runs.append({**_run("hypervolume", 2, 0.5), "sft_seed": 1})  # no partner: never paired
    tab = ss.table(runs)
    assert tab["fixed-accuracy"]["seeds"] == ["0/0", "0/1", "1/0", "1/1"]
    diffs = ss._diffs(runs, "hypervolume", "fixed-accuracy", lambda r: r["hypervolume"])
    assert diffs == pytest.approx([0.01, 0.011, 0.01, 0.011])  # paired within units: the SFT gap cancels
    pair = ss.paired(runs, "fixed-accuracy")["hypervolume"]
    assert pair["seeds"] == ["0/0", "0/1", "1/0", "1/1"] and pair["hypervolume"]["wins"] == 4
    start = [{**_run("sft", seed, 0.0), "sft_seed": sft, "per_prompt": [[0.0, 0.5, 0.9]] * 2, "row_index": [0, 1]}
             for sft in (0, 1) for seed in (0, 1)]
    recs = [{**r, "per_prompt": [[0.1 * (1 + r["sft_seed"]), 0.5, 0.9]] * 2, "row_index": [0, 1]} for r in runs]
    over = ss.over_start(recs, start)["hypervolume"]  # the unpartnered 1/2 has no start row: left out
    assert [x["seed"] for x in over["per_seed"]] == ["0/0", "0/1", "1/0", "1/1"]
    assert [x["accuracy"]["gain"] for x in over["per_seed"]] == pytest.approx([0.1, 0.1, 0.2, 0.2])
    assert ss.unit({"seed": 3}) == 3 and ss.unit({"seed": 3, "sft_seed": None}) == 3


def test_choose_takes_the_best_mean_validation_hv():
    runs = [{"strategy": "gradient", "value": v, "seed": s, "hypervolume": h}
            for v, hs in (("0.1", [0.1, 0.2]), ("1.0", [0.3, 0.2]), ("10.0", [0.2, 0.5])) for s, h in zip((100, 101), hs)]
    c = choose(runs)["gradient"]
    assert c["chosen"] == "10.0" and c["val_hv"]["1.0"] == pytest.approx(0.25) and c["seeds"] == [100, 101]
    assert c["overrides"] == GRID["gradient"][1]["10.0"]


@pytest.fixture
def study(tmp_path):
    shutil.copytree(ROOT / report.STUDY, tmp_path / report.STUDY)
    assert report.derived(tmp_path) == []
    return tmp_path / report.STUDY


def _edit(path: Path, fn) -> None:
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    path.write_text("".join(json.dumps(fn(r)) + "\n" for r in recs))


def test_check_fails_on_an_edited_study_record(study):
    _edit(study / "study/runs.jsonl", lambda r: {**r, "hypervolume": 0.5} if r["strategy"] == "gradient-paper" else r)
    assert report.derived(study.parents[2]) == [f"{report.STUDY}/summary.json"]


def test_check_fails_on_emptied_calibration_or_edited_choice(study):
    chosen = json.loads((study / "calibration/chosen.json").read_text())
    k = next(iter(chosen))
    chosen[k]["chosen"] = "x"
    (study / "calibration/chosen.json").write_text(json.dumps(chosen))
    assert f"{report.STUDY}/calibration/chosen.json" in report.derived(study.parents[2])
    shutil.copy(ROOT / report.STUDY / "calibration/chosen.json", study / "calibration/chosen.json")
    (study / "calibration/runs.jsonl").write_text("")
    assert f"{report.STUDY}/calibration/chosen.json" in report.derived(study.parents[2])


def test_records_carry_provenance_and_are_never_mixed(tmp_path):
    from moalign.provenance import config_hash, provenance
    from moalign.runlog import RunLog

    p = provenance({"lr": 1e-4}, ROOT, rows=128, decodes=4)
    assert len(p["git_commit"]) == 40 and p["config_sha256"] == config_hash({"lr": 1e-4}) and p["rows"] == 128
    assert "torch" in p["versions"] and "cpu_capability" in p["machine"]
    log = RunLog(tmp_path)
    log.add({"seed": 0, "provenance": p})
    log.add({"seed": 1, "provenance": provenance({"lr": 1e-4}, ROOT)})  # same config: fine
    with pytest.raises(ValueError, match="records from different configs"):
        log.add({"seed": 2, "provenance": provenance({"lr": 3e-4}, ROOT)})
    assert len(RunLog(tmp_path).runs) == 2  # the refused record was not written
    runs = [_run("fixed-accuracy", s, 0.1) for s in (0, 1)]
    runs[1]["provenance"] = p
    runs[0]["provenance"] = {**p, "config_sha256": "other"}
    (tmp_path / "study").mkdir()
    (tmp_path / "study/runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    with pytest.raises(ValueError, match="would be mixed"):
        ss.summarise(tmp_path, write=False)


def test_check_recomputes_the_real_model_contest_from_its_start_records(tmp_path):
    rel = "results/smollm2-study"
    shutil.copytree(ROOT / rel, tmp_path / rel)
    assert report.derived(tmp_path) == []
    # the SFT policy scored lower on one prompt of seed 0: every gain over the start changes
    _edit(tmp_path / rel / "start/runs.jsonl",
          lambda r: {**r, "per_prompt": [[0.0, *p[1:]] for p in r["per_prompt"]]} if r["seed"] == 0 else r)
    assert report.derived(tmp_path) == [f"{rel}/summary.json"]
