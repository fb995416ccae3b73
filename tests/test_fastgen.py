"""The ``fast`` rollout backend against the ``hf`` one (``model.generate``) and the model's own distribution."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from moalign.fastgen_fused import choose
from moalign.generation import BACKENDS, token_logprobs
from moalign.modeling import train_tokenizer

PROMPTS = ["Question: 1 + 2 = ?\nSolution:", "Question: 10 + 20 = ?\nSolution:", "Q: 7 * 8", "Question: 99 - 5 = ?"]


@pytest.fixture(scope="module")
def tok():
    texts = [f"Question: {a} + {b} = ?\nSolution: 1. {a} + {b} = {a + b}\n\\boxed{{{a + b}}}" for a in range(30)
             for b in range(0, 30, 3)]
    return train_tokenizer(texts, 200)


def build(tok, kind: str, **kw):
    """Random model of family ``kind``; a wide init so logits are far from ties."""
    torch.manual_seed(0)
    common = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                  bos_token_id=tok.bos_token_id, initializer_range=0.3)
    if kind == "gpt2":
        cfg = AutoConfig.for_model("gpt2", n_embd=32, n_layer=2, n_head=2, n_positions=128, **common)
    else:
        cfg = AutoConfig.for_model(kind, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=kw.pop("kv", 4), head_dim=8,
                                   max_position_embeddings=128, tie_word_embeddings=True, **common, **kw)
    return AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize("kind,kw,fused", [
    ("llama", {}, True),
    ("qwen2", {"kv": 2}, True),  # q/k/v biases, grouped-query attention
    ("qwen3", {"kv": 2}, True),  # per-head q/k RMSNorm
    ("gpt2", {}, False),  # not Llama-family: the generic cached loop
])
def test_greedy_tokens_match_generate(tok, kind, kw, fused):
    model = build(tok, kind, **kw)
    assert choose(model, 64)[0] is fused
    ref = BACKENDS.get("hf")(model, tok, PROMPTS, 24, False)
    for static in (False, True):
        got = BACKENDS.get("fast")(model, tok, PROMPTS, 24, False, static=static)
        assert torch.equal(got.ids, ref.ids), (kind, static)
        assert torch.equal(got.mask, ref.mask) and torch.equal(got.completion_mask, ref.completion_mask)
        assert got.texts == ref.texts and got.lengths == ref.lengths


def test_rows_stop_at_eos_and_batches_compact(tok):
    """EOS early in some rows (so rows are dropped mid-decode) still gives hf's tokens, masks and lengths."""
    model = build(tok, "llama")
    with torch.no_grad():  # make EOS likely after a few tokens: bias the output towards it
        model.lm_head.weight[tok.eos_token_id] += 0.6 * model.model.norm.weight.sign()
    prompts = [f"Question: {i} + {2 * i} = ?" for i in range(16)]
    ref = BACKENDS.get("hf")(model, tok, prompts, 30, False)
    got = BACKENDS.get("fast")(model, tok, prompts, 30, False)
    assert len(set(ref.lengths)) > 2 and min(ref.lengths) < 30  # rows really finish at different steps
    assert torch.equal(got.ids, ref.ids) and got.lengths == ref.lengths


def test_lora_adapters_are_used(tok):
    peft = pytest.importorskip("peft")
    model = build(tok, "llama")
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))
    base = BACKENDS.get("fast")(build(tok, "llama"), tok, PROMPTS, 16, False)
    ref = BACKENDS.get("hf")(lora, tok, PROMPTS, 16, False)
    got = BACKENDS.get("fast")(lora, tok, PROMPTS, 16, False)
    assert torch.equal(got.ids, ref.ids)
    assert not torch.equal(got.ids, base.ids)  # the adapters changed the decode


def test_seeds_and_training_mode(tok):
    model = build(tok, "llama").train()
    a = BACKENDS.get("fast")(model, tok, PROMPTS * 4, 12, True, seed=3)
    b = BACKENDS.get("fast")(model, tok, PROMPTS * 4, 12, True, seed=3)
    c = BACKENDS.get("fast")(model, tok, PROMPTS * 4, 12, True, seed=4)
    assert torch.equal(a.ids, b.ids) and not torch.equal(a.ids, c.ids)
    assert model.training


def test_logprobs_of_fast_rollouts_are_consistent(tok):
    """Trainer contract: completion tokens are scored under the same positions they were sampled with."""
    model = build(tok, "qwen2", kv=2)
    g = BACKENDS.get("fast")(model, tok, PROMPTS, 10, False)
    with torch.no_grad():
        logits = model(input_ids=g.ids, attention_mask=g.mask,
                       position_ids=(g.mask.cumsum(-1) - 1).clamp(min=0)).logits
    cm = g.completion_mask[:, 1:].bool()
    assert (logits[:, :-1].argmax(-1)[cm] == g.ids[:, 1:][cm]).all()
    assert (token_logprobs(model, g.ids, g.mask)[:, 1:][cm] <= 0).all()


def test_bucketed_logprobs_equal_the_padded_batch(tok):
    """``buckets`` only drops padding: same log-probs and same parameter gradients."""
    model = build(tok, "llama").train()
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] += 0.6 * model.model.norm.weight.sign()
    g = BACKENDS.get("fast")(model, tok, [f"Question: {i} + {3 * i} = ?" for i in range(12)] + PROMPTS, 30, False)
    assert len(set(g.lengths)) > 2
    adv = torch.linspace(-1, 1, g.ids.shape[0])[:, None]
    out = {}
    for b in (1, 3):
        model.zero_grad()
        lp = token_logprobs(model, g.ids, g.mask, buckets=b)
        (lp * g.completion_mask * adv).sum().backward()
        out[b] = (lp.detach(), [p.grad.clone() for p in model.parameters()])
    cm = g.completion_mask.bool()  # the positions the trainer reads
    assert torch.allclose(out[1][0][cm], out[3][0][cm], atol=1e-5)
    assert all(torch.allclose(a, c, rtol=1e-4, atol=1e-4) for a, c in zip(out[1][1], out[3][1]))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ATEN_CPU_CAPABILITY") == "default",
                    reason="ATEN_CPU_CAPABILITY=default: inductor's CPU codegen fails to build the compiled step under "
                    "torch's portable kernels (torch 2.13); the compile path is checked under the machine's own kernels")
def test_compiled_static_decode_matches(tok):
    """The CUDA path's shape discipline (static buffers, torch.compile of the step) on CPU's inductor."""
    model = build(tok, "qwen2", kv=2)
    ref = BACKENDS.get("hf")(model, tok, PROMPTS, 16, False)
    for _ in range(2):  # the second call reuses the compiled step
        got = BACKENDS.get("fast")(model, tok, PROMPTS, 16, False, static=True, compile_step=True)
        assert torch.equal(got.ids, ref.ids)


def test_gpu_check_refuses_without_cuda_and_runs_its_cpu_smoke(capsys):
    import importlib.util

    from tests.tiny import ROOT

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    if not torch.cuda.is_available():
        assert gc.main([]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert gc.main(["--cpu-smoke", "--steps", "1", "--prompts", "2", "--group", "2", "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "greedy token agreement: 1.000" in out and "| fast | 1 |" in out and "| hf | 1 |" in out


@pytest.mark.parametrize("kind", ["llama", "gpt2"])  # gpt2: no logits_to_keep, the full-logits path
def test_logprobs_from_the_first_completion_column(tok, kind):
    model = build(tok, kind)
    g = BACKENDS.get("fast")(model, tok, PROMPTS, 12, True, seed=0)
    first = g.completion_start
    assert first == g.ids.shape[1] - max(g.lengths)
    with torch.no_grad():
        full = token_logprobs(model, g.ids, g.mask)
        for b in (1, 2):
            part = token_logprobs(model, g.ids, g.mask, b, first)
            cm = g.completion_mask.bool()
            assert torch.allclose(part[cm], full[cm], atol=1e-5)
            assert (part[:, :first] == 0).all()
