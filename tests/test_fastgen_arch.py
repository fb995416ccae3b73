"""``fast`` on any architecture: fused step only where proven equal, greedy tokens = ``generate``'s for
every family, and the fused-weight cache stays correct when weights change between calls."""

from __future__ import annotations

import logging

import pytest
import torch

import moalign.fastgen_fused as ff
from moalign.generation import BACKENDS
from tests.test_fastgen import build, tok  # noqa: F401  (tok: module fixture)

PROMPTS = ["Question: 1 + 2 = ?\nSolution:", "Q: 7 * 8", "Question: 10 + 20 = ?\nSolution: 1.", "Question: 99 - 5 = ?"]
GRANITE = dict(embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.0156, logits_scaling=8.0)
WINDOW = {"sliding_window": 8}  # shorter than prompt + 24 new tokens: the sliding layers really slide
ARCHS = [  # (model_type, config overrides, expected step and the reason its log line gives)
    ("llama", {}, "fused step, self-check"),
    ("qwen2", {"kv": 2}, "fused step, self-check"),
    ("qwen3", {"kv": 2}, "fused step, self-check"),
    ("mistral", {"kv": 2, "sliding_window": None}, "fused step, self-check"),
    ("mistral", {"kv": 2, **WINDOW}, "generic step, sliding window"),  # the fused buffers would attend to all
    ("gemma2", {"kv": 2, **WINDOW}, "generic step, model_type"),  # embedding scale, post-norms, soft-capping
    ("gemma3_text", {"kv": 2, **WINDOW, "layer_types": ["sliding_attention", "full_attention"]},
     "generic step, model_type"),  # a rotary embedding per layer type
    ("granite", {"kv": 2, **GRANITE}, "generic step, model_type"),  # residual / logit multipliers
    ("stablelm", {}, "generic step, model_type"),  # partial rotary, LayerNorm
    ("phi3", {"kv": 2}, "generic step, model_type"),  # one qkv_proj module
]
IDS = [k + ("-window" if w.get("sliding_window") else "") for k, w, _ in ARCHS]


def _greedy_equal(model, tok, n_new: int = 24) -> None:
    ref = BACKENDS.get("hf")(model, tok, PROMPTS, n_new, False)
    for static in (False, True):
        got = BACKENDS.get("fast")(model, tok, PROMPTS, n_new, False, static=static)
        assert torch.equal(got.ids, ref.ids), static
        assert torch.equal(got.completion_mask, ref.completion_mask) and got.lengths == ref.lengths


@pytest.mark.parametrize("kind,kw,path", ARCHS, ids=IDS)
def test_greedy_tokens_match_generate_on_every_architecture(tok, caplog, kind, kw, path):
    model = build(tok, kind, **kw)
    with caplog.at_level(logging.INFO, logger="moalign.fastgen"):
        _greedy_equal(model, tok)
    lines = [r.getMessage() for r in caplog.records if r.name == "moalign.fastgen"]
    assert len(lines) == 1, lines  # one line per model: which step and why
    assert path in lines[0], lines[0]


@pytest.mark.parametrize("kind,kw", [("gemma2", {"kv": 2}), ("gemma3_text", {"kv": 2}), ("granite", GRANITE),
                                     ("stablelm", {})], ids=["gemma2", "gemma3_text", "granite", "stablelm"])
def test_self_check_rejects_look_alikes(tok, monkeypatch, kind, kw):
    """With the allow-list opened to every family, the numeric self-check alone keeps each look-alike
    layout (same module names, different computation) on the generic step, and greedy stays exact."""
    monkeypatch.setattr(ff, "FUSED_MODEL_TYPES", tuple(k for k, _, _ in ARCHS))
    model = build(tok, kind, **kw)
    assert ff._has_layout(model)  # module names alone would have sent it to the fused step
    ok, why = ff.choose(model, 40)
    assert not ok and "self-check" in why, why
    _greedy_equal(model, tok)


def test_self_check_accepts_the_llama_family(tok):
    for kind in ("llama", "qwen3"):
        model = build(tok, kind)
        assert ff.self_check_error(model) < 1e-5
        ok, why = ff.choose(model, 40)
        assert ok and "self-check" in why


def _frozen_base_with_lora(tok):
    peft = pytest.importorskip("peft")
    model = build(tok, "llama")
    return model, peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                             init_lora_weights=False))


def test_fused_weights_are_cached_per_model_not_rebuilt_per_call(tok):
    """The per-call cost on deep models: q|k|v and gate|up were concatenated on every call."""
    base, lora = _frozen_base_with_lora(tok)
    BACKENDS.get("fast")(lora, tok, PROMPTS, 4, False)
    qkv, gate_up = ff.fused_weights(base)
    assert all(g is None for g in qkv)  # LoRA-wrapped q/v: each module runs its own forward
    assert all(g is not None for g in gate_up)  # frozen plain MLP projections: fused
    BACKENDS.get("fast")(lora, tok, PROMPTS, 4, False)
    assert all(a[0][0] is b[0][0] for a, b in zip(gate_up, ff.fused_weights(base)[1]))  # same tensors


def test_fused_weight_cache_follows_weight_updates(tok):
    """Between RL steps the weights change: LoRA optimizer steps, a frozen base reloaded or edited."""
    base, lora = _frozen_base_with_lora(tok)
    _greedy_equal(lora, tok, 12)
    before = BACKENDS.get("fast")(lora, tok, PROMPTS, 12, False).ids
    opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=0.5)
    lora(input_ids=torch.tensor([[3, 4, 5, 6]]), labels=torch.tensor([[3, 4, 5, 6]])).loss.backward()
    opt.step()
    _greedy_equal(lora, tok, 12)
    state = {k: v + 0.4 * torch.randn_like(v) if "mlp" in k else v for k, v in base.state_dict().items()}
    base.load_state_dict(state)  # frozen gate/up change in place (same storage)
    _greedy_equal(lora, tok, 12)
    with torch.no_grad():
        base.model.layers[0].mlp.up_proj.weight.mul_(-1.0)
    _greedy_equal(lora, tok, 12)
    assert not torch.equal(BACKENDS.get("fast")(lora, tok, PROMPTS, 12, False).ids, before)


@pytest.mark.parametrize("fused_adam", [False, True])
def test_trainable_weights_are_never_stale(tok, fused_adam):
    """Full fine-tuning: an AdamW step (fused AdamW does not bump version counters) changes every weight."""
    model = build(tok, "qwen2", kv=2).train()
    _greedy_equal(model, tok, 12)
    before = BACKENDS.get("fast")(model, tok, PROMPTS, 12, False).ids
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, fused=fused_adam)
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    _greedy_equal(model, tok, 12)
    assert not torch.equal(BACKENDS.get("fast")(model, tok, PROMPTS, 12, False).ids, before)


def test_clear_cache_after_a_data_edit_of_frozen_weights(tok):
    """Writes through ``.data`` bypass version counters (documented): ``clear_cache`` is the remedy."""
    base, lora = _frozen_base_with_lora(tok)
    BACKENDS.get("fast")(lora, tok, PROMPTS, 12, False)
    base.model.layers[0].mlp.up_proj.weight.data.mul_(-1.0)
    ff.clear_cache(base)
    _greedy_equal(lora, tok, 12)
