"""The ``fast-bf16`` backend (bf16 decode matmuls, moalign/fastgen_fused.py) against fp32, and the shared prefill of
a group's rollouts (moalign/fastgen.py)."""

from __future__ import annotations

import pytest
import torch

from moalign import fastgen_fused as ff
from moalign.fastgen_fused import FusedStep, effective_linear, low_check, self_check_error
from moalign.generation import BACKENDS
from tests.test_fastgen import PROMPTS, build, tok  # noqa: F401 - tok: the fixture


def _lora(tok, targets=("q_proj", "k_proj", "v_proj", "o_proj", "down_proj")):
    peft = pytest.importorskip("peft")
    model = build(tok, "llama", kv=2)
    torch.manual_seed(1)
    return peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(targets),
                                                      init_lora_weights=False))  # B != 0: the adapters matter


@pytest.mark.parametrize("kind,kw", [("llama", {}), ("qwen2", {"kv": 2}), ("qwen3", {"kv": 2})])
def test_bf16_step_matches_the_forward_within_bf16_rounding(tok, kind, kw):
    model = build(tok, kind, **kw)
    err = self_check_error(model, torch.bfloat16)
    assert 0 < err < ff.LOW_CHECK_TOL  # not the fp32 step (err 0 up to 1e-6), and within bf16's 3 digits
    assert self_check_error(model) < 1e-5


def test_bf16_step_merges_the_lora_adapters(tok):
    """The merged effective weight is the adapter's output: without the delta the logits are far off."""
    lora = _lora(tok)
    lm = lora.get_base_model()
    assert self_check_error(lm, torch.bfloat16) < ff.LOW_CHECK_TOL
    q = lm.model.layers[0].self_attn.q_proj
    w, _ = effective_linear(q)
    x = torch.randn(3, w.shape[1])
    assert torch.allclose(torch.nn.functional.linear(x, w), q(x), atol=1e-5)
    with lora.disable_adapter():  # adapters off: the effective weight is the base weight
        assert torch.equal(effective_linear(q)[0], q.base_layer.weight)


def test_bf16_copies_of_trainable_weights_follow_the_optimizer(tok):
    """Frozen weights' bf16 copies are cached; the adapters' (trainable) are rebuilt on every call, so an update
    that does not bump the version counter is still seen."""
    lora = _lora(tok)
    lm = lora.get_base_model()
    first = ff.low_weights(lm, torch.bfloat16)
    again = ff.low_weights(lm, torch.bfloat16)
    assert again[0][2][0][0] is first[0][2][0][0]  # gate|up: frozen, cached
    q = lm.model.layers[0].self_attn.q_proj
    q.lora_B["default"].weight.data.add_(1.0)  # through .data: no version bump
    after = ff.low_weights(lm, torch.bfloat16)
    assert not torch.equal(after[0][0][0][0], first[0][0][0][0])  # q|k|v rebuilt with the new adapter


def test_fast_bf16_greedy_agrees_with_fp32(tok):
    """Greedy decodes in bf16 follow fp32's tokens (a wide-init model: logits far from ties)."""
    lora = _lora(tok)
    ref = BACKENDS.get("fast")(lora, tok, PROMPTS, 16, False)
    got = BACKENDS.get("fast-bf16")(lora, tok, PROMPTS, 16, False)
    assert low_check(lora.get_base_model(), torch.bfloat16)[0]
    same = (got.ids == ref.ids).float().mean()
    assert same > 0.9, same
    assert got.ids.shape[0] == ref.ids.shape[0]


def test_bf16_falls_back_when_the_check_fails(tok, monkeypatch):
    """A model whose bf16 step misses the tolerance decodes in its own dtype, as the fp32 backend."""
    model = build(tok, "llama")
    ff.clear_cache(model)
    monkeypatch.setattr(ff, "LOW_CHECK_TOL", 0.0)
    ok, why = low_check(model, torch.bfloat16)
    assert not ok and "tolerance" in why
    ref = BACKENDS.get("fast")(model, tok, PROMPTS, 12, False)
    got = BACKENDS.get("fast-bf16")(model, tok, PROMPTS, 12, False)
    assert torch.equal(got.ids, ref.ids)
    ff.clear_cache(model)


def test_fused_step_of_the_model_dtype_has_no_low_copies(tok):
    model = build(tok, "llama")
    from moalign.fastgen_fused import new_cache

    assert FusedStep(model, _prefilled(model, new_cache), 2, 8, 4).low is None


def _prefilled(model, new_cache):
    cache = new_cache(model.config)
    ids = torch.arange(8).view(2, 4) % model.config.vocab_size
    model(input_ids=ids, use_cache=True, past_key_values=cache)
    return cache


@pytest.mark.parametrize("do_sample", [False, True])
def test_shared_prefill_gives_the_same_rollouts(tok, do_sample, monkeypatch):
    """Rows with the same prompt are prefilled once: the rollouts equal those of prefilling every row."""
    model = build(tok, "llama")
    prompts = [p for p in PROMPTS for _ in range(3)]
    got = BACKENDS.get("fast")(model, tok, prompts, 16, do_sample, seed=5)
    real_unique = torch.unique
    calls = []

    def no_sharing(x, *a, **kw):  # every row distinct: the old path
        calls.append(x.shape[0])
        u, inv = real_unique(x, *a, **kw)
        return x, torch.arange(x.shape[0])

    monkeypatch.setattr(torch, "unique", no_sharing)
    ref = BACKENDS.get("fast")(model, tok, prompts, 16, do_sample, seed=5)
    assert calls  # the patched path ran
    assert torch.equal(got.ids, ref.ids) and got.texts == ref.texts
