"""``moalign study run --sft-seeds``: SFT re-run per SFT seed in its own folder, every run from each, records paired on
(SFT seed, RL seed). A tiny project through prepare and balance (tests/tiny.py: 6 SFT steps), 2 SFT seeds x 1 RL
seed x 2 fixed presets x 1 step, no calibration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moalign.cli import main as cli
from moalign.study import tree_hash

ARGS = ["study", "run", "--strategies", "fixed-accuracy", "fixed-balanced", "--seeds", "0", "--sft-seeds", "0", "1",
        "--tuning-seeds", "--steps", "1", "--rows", "1", "--samples", "1", "--out", "results/study/sft"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from tests.tiny import make_repo

    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    repo = make_repo(tmp_path_factory.mktemp("sft_seeds") / "repo")
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    for stage in ("prepare", "balance"):
        subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=repo, env=env, check=True, capture_output=True)
    old = Path.cwd()
    os.chdir(repo)
    try:
        with prefect_test_harness(server_startup_timeout=180):
            assert cli(ARGS) == 0
            out = repo / "results/study/sft"
            first = {p: p.stat().st_mtime for p in out.rglob("models/sft/*")}
            assert cli(ARGS) == 0  # resumed: nothing to do, no SFT rerun
            assert {p: p.stat().st_mtime for p in out.rglob("models/sft/*")} == first
    finally:
        os.chdir(old)
    return repo, out


def _recs(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_each_sft_seed_trains_its_own_policy(study):
    repo, out = study
    hashes = {k: tree_hash(out / f"sft/seed{k}/models/sft") for k in (0, 1)}
    assert hashes[0] != hashes[1]  # base.seed = k: another initialisation and batch order
    assert not (repo / "models/sft").exists()  # the project's own models/sft is not needed
    rep = _recs(out / "study/runs.jsonl")
    assert sorted((r["strategy"], r["sft_seed"], r["seed"]) for r in rep) == [
        ("fixed-accuracy", 0, 0), ("fixed-accuracy", 1, 0), ("fixed-balanced", 0, 0), ("fixed-balanced", 1, 0)]
    for r in rep:  # each record names the policy it started from, and all share one config fingerprint
        assert r["provenance"]["sft_sha256"] == hashes[r["sft_seed"]]
    assert len({r["provenance"]["config_sha256"] for r in rep}) == 1
    assert sorted((r["sft_seed"], r["seed"]) for r in _recs(out / "start/runs.jsonl")) == [(0, 0), (1, 0)]


def test_summary_pairs_on_sft_and_rl_seed(study):
    _, out = study
    s = json.loads((out / "summary.json").read_text())
    assert s["seeds"] == ["0/0", "1/0"] and s["sft_seeds"] == [0, 1]
    assert [x["seed"] for x in s["over_start"]["fixed-balanced"]["per_seed"]] == ["0/0", "1/0"]
    assert "(SFT seed/RL seed) pairs" in (out / "decisions.md").read_text()
