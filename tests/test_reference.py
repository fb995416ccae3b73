"""The reference run (moalign/reference.py): README renders from results/reference, which a user's repro never writes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moalign.reference import compare, main

ROOT = Path(__file__).resolve().parents[1]


def _ev(acc, se, hv, ci):
    pol = {"accuracy": acc, "accuracy_se": se, "conciseness": 0.5, "conciseness_se": 0.01, "clarity": 0.9,
           "clarity_se": 0.01, "length": 40.0, "length_se": 1.0, "hypervolume": hv, "hypervolume_ci": ci}
    return {"objectives": ["accuracy", "conciseness", "clarity"], "point": "sampled", "reference": [0, 0, 0],
            "non_dominated": ["sft"], "sft": pol}


def test_compare_flags_only_differences_beyond_two_standard_errors():
    ref = _ev(0.10, 0.02, 0.05, [0.04, 0.06])
    near = compare(_ev(0.13, 0.02, 0.055, [0.045, 0.065]), ref)  # 0.03 < 2 * hypot(0.02, 0.02) = 0.057
    assert "0 value(s) marked *" in near[-1] and "*" not in "".join(near[1:-1])
    far = compare(_ev(0.20, 0.02, 0.09, [0.08, 0.10]), ref)  # 0.10 > 0.057; ref HV 0.05 outside [0.08, 0.10]
    assert "2 value(s) marked *" in far[-1]
    row = far[1]
    assert row.startswith("sft") and "0.200 (ref 0.100)*" in row and "0.090 (ref 0.050)*" in row


def test_save_then_compare(tmp_path, capsys):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/evaluate.json").write_text(json.dumps(_ev(0.1, 0.02, 0.05, [0.04, 0.06])))
    (tmp_path / "plots/train/x").mkdir(parents=True)
    (tmp_path / "plots/train/x/history.csv").write_text("step\n1\n")
    assert main(["compare", "--root", str(tmp_path)]) == 0
    assert "no reference at" in capsys.readouterr().out
    assert main(["save", "--root", str(tmp_path)]) == 0
    ref = tmp_path / "results/reference"
    assert (ref / "plots/train/x/history.csv").exists()
    run = json.loads((ref / "run.json").read_text())
    assert {"git_commit", "machine", "date", "command"} <= set(run) and "cpu_capability" in run["machine"]
    assert main(["compare", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Your run:" in out and "Reference:" in out and "0 value(s) marked *" in out and "mlflow ui" in out


def test_save_without_a_run_names_the_fix(tmp_path, capsys):
    assert main(["save", "--root", str(tmp_path)]) == 2
    assert "run `dvc repro` first" in capsys.readouterr().err


def test_committed_reference_carries_its_provenance():
    run = json.loads((ROOT / "results/reference/run.json").read_text())
    assert len(run["git_commit"]) == 40 and (ROOT / "results/reference/metrics/evaluate.json").exists()


@pytest.mark.slow
def test_a_users_repro_then_the_readme_check_stays_green(tiny_pipeline):
    """`make repro` then `make test`: the check after a (tiny) repro reads the reference, not the user's run."""
    repo, _ = tiny_pipeline
    for rel in ("README.md", "benchmarks/README.md", "benchmarks/results", "results"):
        src, dst = ROOT / rel, repo / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    assert json.loads((repo / "metrics/evaluate.json").read_text()) != json.loads(
        (ROOT / "results/reference/metrics/evaluate.json").read_text())  # the user's run is not the reference
    check = subprocess.run([sys.executable, "-m", "moalign.report", "--check", "--root", str(repo)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    cmp = subprocess.run([sys.executable, "-m", "moalign.cli", "reference", "compare", "--root", str(repo)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0 and "Your run:" in cmp.stdout and "Reference: " in cmp.stdout, cmp.stderr
