"""Smoke runs (1-2 steps) of examples/trl_dynamic_weights.py and moalign/experiments/trl_weighting.py on a tiny world."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", minversion="1.16")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """data/prepared (train/val/test with question, answer, domain) and a tiny random policy folder."""
    import datasets

    from moalign.data.arith import generate
    from tests.integrations.tiny_trl import TOK, model

    d = tmp_path_factory.mktemp("world")
    for split, rows in generate({"en": 40, "de": 2}, 2, 2, {"add": 1}, 0).items():
        datasets.Dataset.from_list(rows).save_to_disk(str(d / "prepared" / split))
    model().save_pretrained(d / "sft")
    TOK.save_pretrained(d / "sft")
    return d


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("strategy", ["hypervolume", "gradient"])
def test_example_trains_and_resumes(world, tmp_path, monkeypatch, capsys, strategy):
    ex = load(ROOT / "examples/trl_dynamic_weights.py")
    base = ["x", "--strategy", strategy, "--model", str(world / "sft"), "--data", str(world / "prepared"),
            "--out", str(tmp_path / "out"), "--prompts", "2", "--group", "2", "--max-new-tokens", "8",
            "--val-rows", "2", "--eval-every", "1", "--save-every", "1"]
    monkeypatch.setattr(sys, "argv", base + ["--steps", "1"])
    ex.main()
    monkeypatch.setattr(sys, "argv", base + ["--steps", "2", "--resume"])
    ex.main()
    assert "'weights/accuracy'" in capsys.readouterr().out
    state = json.loads((tmp_path / "out/checkpoint-2/trainer_state.json").read_text())
    saved = state["stateful_callbacks"]["moalign_reward_weighting"]
    assert saved["strategy"] == strategy and len(saved["history"]["weights"]) == 2  # step 1 restored, step 2 added


def test_benchmark_smoke_writes_records_and_skips_them_on_rerun(world, tmp_path, monkeypatch, capsys):
    from moalign.experiments import trl_weighting as bench

    argv = ["x", "--seeds", "0", "--steps", "1", "--samples", "1", "--test-rows", "1", "--threads", "1",
            "--out", str(tmp_path / "res"), "--work", str(tmp_path / "work"), "--model", str(world / "sft"),
            "--data", str(world / "prepared"),
            "--set", "prompts_per_step=2", "group_size=2", "max_new_tokens=8", "val_rows=2", "eval_every=1"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    runs = [json.loads(x) for x in (tmp_path / "res/runs.jsonl").read_text().splitlines()]
    assert [r["side"] for r in runs] == ["static", "hypervolume", "gradient"]
    assert all(len(r["test_point"]) == 3 and [v["step"] for v in r["validation"]] == [0, 1] for r in runs)
    bench.main()  # everything is there: nothing retrained
    assert len((tmp_path / "res/runs.jsonl").read_text().splitlines()) == 3
    assert "paired difference from static" in capsys.readouterr().out
