"""benchmarks/rl_throughput.py's FLOP count of the policy update (full fine-tuning vs LoRA) and peak probe."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from tests.test_fastgen import build, tok  # noqa: F401  (tok: module fixture)
from tests.tiny import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rl_throughput", ROOT / "benchmarks/rl_throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_update_flops_full_finetune_and_lora(tok, bench):
    model = build(tok, "qwen2", kv=2)  # 2 layers, hidden 32, 4 heads of 8, 2 kv heads, MLP 64, tied head
    h, kv, m, V = 32, 16, 64, len(tok)
    body = 2 * (h * h + 2 * h * kv + h * h + 3 * h * m)  # q, k, v, o, gate, up, down of two layers
    T, Tc = 100, 40
    fwd = 2 * (body * T + V * h * Tc)
    assert bench.update_flops(model, T, Tc) == 3 * fwd  # 6 P T: forward, input and weight gradients
    peft = pytest.importorskip("peft")
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    adapters = 2 * 4 * ((h + h) + (h + kv))  # A (r x in) + B (out x r) of q and v, two layers
    assert bench.update_flops(lora, T, Tc) == 2 * fwd + 4 * adapters * T + 2 * adapters * T  # frozen base: ~4 P T


def test_matmul_probe_and_prompt_rendering(bench):
    from moalign.text import format_prompt

    r = bench.run_matmul(SimpleNamespace(matmul_size=64, copy_mib=8))
    assert r["matmul_flop_per_s"] > 0 and r["matmul_size"] == 64 and r["copy_bytes_per_s"] > 1e8
    assert bench.render_prompt("What is 1 + 1?") == format_prompt("What is 1 + 1?")
