"""benchmarks/README's blocks (moalign/report/records.py, current.py): each renders the file its
benchmark or experiment writes, and ``python -m moalign.report --check`` sees a change in those files."""

import importlib.util
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

from moalign.io import write_json
from moalign.report import cli as report
from moalign.report import current as report_current
from moalign.report.records import RECORD_BLOCKS
from moalign.report.throughput import lines

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str):
    """benchmarks/<name>.py (a script folder, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / f"benchmarks/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rl_throughput = _bench("rl_throughput")


def test_check_sees_a_changed_record(tmp_path, capsys):
    (tmp_path / "results/reference/metrics").mkdir(parents=True)
    for f in ("evaluate.json", "sft.json"):
        shutil.copy(ROOT / "results/reference/metrics" / f, tmp_path / "results/reference/metrics" / f)
    shutil.copytree(ROOT / "benchmarks/results", tmp_path / "benchmarks/results")
    shutil.copy(ROOT / "benchmarks/README.md", tmp_path / "benchmarks/README.md")
    (tmp_path / "README.md").write_text("# x\n")
    assert report.main(["--check", "--root", str(tmp_path)]) == 0, capsys.readouterr().err
    runs = tmp_path / "benchmarks/results/rl_efficiency/runs.jsonl"
    recs = [json.loads(x) for x in runs.read_text().splitlines()]
    recs[0]["test_point"][0] += 0.1
    runs.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert report.main(["--check", "--root", str(tmp_path)]) == 1
    assert "benchmarks/README.md:rl_efficiency" in capsys.readouterr().err


def _bench_args(**kw):
    a = dict(sides=["trl", "fast", "fast-gradient"], model=None, lora_r=0, lora_targets=["q_proj"], steps=10,
             prompts=8, group=8, max_new_tokens=128, threads=2, buckets=4, matmul_size=2048, gen_batches=[1, 8],
             gen_reps=5, side=None, json="x.json")
    return SimpleNamespace(**{**a, **kw})


def test_throughput_block_renders_the_json_the_benchmark_writes(tmp_path):
    ph = {"generation": 0.5, "forward": 0.2, "backward": 0.25, "optimizer": 0.01}
    out = {"matmul": {"matmul_flop_per_s": 1e11, "matmul_size": 2048, "copy_bytes_per_s": 2e10},
           "trl": {"seconds": 25.0, "steps_per_s": 0.4, "peak_rss_mb": 900.0, "completion_length": 50.0},
           "fast": {"seconds": 10.0, "steps_per_s": 1.0, "peak_rss_mb": 990.0, "completion_length": 48.0, "phases": ph,
                    "update_flop_per_s": 2e10, "update_flops": 9e9, "update_tokens": 4000.0,
                    "decode_tokens_per_s": 320.0, "weight_bytes": 5.12e8},
           "fast-gradient": {"seconds": 12.5, "steps_per_s": 0.8, "peak_rss_mb": 1000.0, "completion_length": 47.0,
                             "phases": {**ph, "objective_grads": 0.3}},
           "gen": {"gen": {"hf@1": 0.2, "fast@1": 0.1, "hf@8": 0.9, "fast@8": 0.3}}}
    rec = rl_throughput.record(_bench_args(), out, ["--gen-batches", "1", "8"])
    write_json(tmp_path / "benchmarks/results/rl_throughput/tiny.json", rec)  # sorted keys, as --json writes
    names = ["TRL GRPOTrainer", "moalign fast/fixed", "moalign fast/gradient"]  # --sides' order, not the JSON's
    printed = lines(json.loads((tmp_path / "benchmarks/results/rl_throughput/tiny.json").read_text()))
    # per generated token: (1.0 x 48) / (0.4 x 50) = 2.40; decode bound: 64 rollouts x 20 GB/s / 0.512 GB = 2500
    assert "ratio vs TRL per generated token: x2.40" in printed
    assert any(ln.startswith("decode: 320 tokens/s at batch 64 = 13% of the bound 2500 tokens/s (copy bandwidth "
                             "20.0 GB/s, 0.51 GB") for ln in printed)
    assert [ln.split("  ")[0] for ln in printed[1:4]] == names
    md = RECORD_BLOCKS["throughput"](tmp_path)
    rows = [ln for ln in md.splitlines() if ln.startswith("| TRL") or ln.startswith("| moalign")]
    assert [r.split(" | ")[0] for r in rows] == ["| " + n for n in names]
    assert rows[2].endswith("| 0.500 | 0.200 | 0.250 | 0.300 | 0.010 |")  # generation, forward, backward, grads, opt
    assert "`ratio vs TRL: x2.50 (peak memory x1.10)`" in md
    assert "gradient / fixed step time x1.25: the issue's target (x1.3) met" in md
    assert "| 8 | 0.900 | 0.300 | x3.00 |" in md
    assert "20.00 GFLOP/s = 20% of the measured fp32 matmul rate" in md
    assert "`python benchmarks/rl_throughput.py --gen-batches 1 8`" in md
    out["fast-gradient"]["steps_per_s"] = 0.5
    write_json(tmp_path / "benchmarks/results/rl_throughput/tiny.json", rl_throughput.record(_bench_args(), out, []))
    assert "x2.00: the issue's target (x1.3) not met" in RECORD_BLOCKS["throughput"](tmp_path)
    pending = RECORD_BLOCKS["throughput_real"](tmp_path)
    assert pending.startswith("*(not yet rerun: `python benchmarks/rl_throughput.py "
                              "--model models/smollm2-135m-instruct")
    assert "--json benchmarks/results/rl_throughput/smollm2_lora16.json`" in pending


def _agg_run(seed: int, acc: float, length: float) -> dict:
    return {"strategy": "fixed-balanced", "seed": seed, "steps": 80,
            "objectives": ["accuracy", "conciseness", "clarity"],
            "test_point": [acc, 0.7, 0.9], "test_length": length, "test_hv": acc * 0.63,
            "test_styles": {"terse": 0.1, "outline": 0.5, "worked": 0.4},
            "initial_weights": [1 / 3] * 3, "final_weights": [1 / 3] * 3,
            "validation": [{"step": 80, "hypervolume": 0.1}]}


def test_aggregation_block_mean_sd_per_seed_and_pending_line(tmp_path):
    base = tmp_path / "benchmarks/results"
    (base / "agg2_normalize_then_sum").mkdir(parents=True)
    (base / "agg2_normalize_then_sum/runs.jsonl").write_text(
        "".join(json.dumps(_agg_run(s, a, n)) + "\n" for s, a, n in [(1, 0.2, 40.0), (0, 0.1, 38.0), (2, 0.3, 42.0)]))
    md = RECORD_BLOCKS["aggregation"](tmp_path)
    assert "not found: run `python -m moalign.experiments.rl_efficiency --seeds 0 1 2 --steps 80 --strategies " \
           "fixed-balanced --jobs 2 --set aggregation=sum_then_normalize " \
           "--out benchmarks/results/agg2_sum_then_normalize`" in md
    assert "agg2_normalize_then_sum/runs.jsonl` not found" not in md
    (base / "agg2_sum_then_normalize").mkdir()
    (base / "agg2_sum_then_normalize/runs.jsonl").write_text(
        "".join(json.dumps(_agg_run(s, a, n)) + "\n" for s, a, n in [(0, 0.05, 30.0), (1, 0.1, 31.0), (2, 0.15, 32.0)]))
    (tmp_path / "results/reference/metrics").mkdir(parents=True)
    (tmp_path / "results/reference/metrics/evaluate.json").write_text(json.dumps({"sft": {"accuracy": 0.09, "length": 41.9}}))
    md = RECORD_BLOCKS["aggregation"](tmp_path)
    assert "| `normalize_then_sum` | 0.200±0.100 | 0.700±0.000 | 0.900±0.000 | 40.0±2.0 | 0.126±0.063 |" in md
    assert "Per seed [0, 1, 2], accuracy 0.100 / 0.200 / 0.300 (normalize_then_sum) vs 0.050 / 0.100 / 0.150" in md
    assert "length 38.0 / 40.0 / 42.0 vs 30.0 / 31.0 / 32.0" in md
    assert "sum_then_normalize / normalize_then_sum: x0.50" in md
    assert "accuracy 0.090, length 41.9" in md


def test_gradient_variance_from_the_json_else_the_printout(tmp_path):
    d = tmp_path / "benchmarks/results/balance"
    d.mkdir(parents=True)
    assert report_current.grad_variance(tmp_path) is None
    (d / "summary.md").write_text("x\ntau=2.0: grad variance scalarization/temperature = 2.56 (F(tau) = 1.64)\n"
                                  "tau=5.0: grad variance scalarization/temperature = 10.26 (F(tau) = 4.70)\n")
    assert report_current.grad_variance(tmp_path) == {"2.0": {"ratio": 2.56, "F_tau": 1.64},
                                                       "5.0": {"ratio": 10.26, "F_tau": 4.70}}
    write_json(d / "grad_variance.json", {"taus": {"5.0": {"ratio": 9.0, "F_tau": 4.7}}})
    assert report_current.grad_variance(tmp_path) == {"5.0": {"ratio": 9.0, "F_tau": 4.7}}


def test_parallel_block_from_the_benchmark_record(tmp_path):
    rec = _bench("parallel_strategies").record(ROOT / "params.yaml", 2, (100.0, math.nan), (62.5, math.nan), ["--json", "p.json"])
    write_json(tmp_path / "benchmarks/results/parallel_strategies.json", rec)
    md = RECORD_BLOCKS["parallel"](tmp_path)
    assert "| 1 | 100.0 | - |" in md and "| 2 | 62.5 | - |" in md
    assert "Ratio: x1.60 (whole flow)." in md and rec["params"] == "params.yaml"
