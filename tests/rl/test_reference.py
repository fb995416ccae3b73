"""The KL reference of a LoRA policy is the policy with its adapters off (moalign/modeling.py ``AdapterOff``).

It must give the starting policy's log-probs after the adapters moved (a copy taken at the start does), cost no
second model, leave the policy's mode and gradients alone; a full-parameter policy still gets a frozen copy.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch

from moalign.generation import token_logprobs
from moalign.modeling import AdapterOff, add_lora, reference_policy, tiny_config


def _policy(lora: bool):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    tok = SimpleNamespace(pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", 64, 32, 2, 2, 64, tok))
    if lora:
        model = add_lora(model, {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]})
    return model


def test_lora_reference_is_the_start_policy_with_adapters_off():
    policy = _policy(True)
    ids = torch.randint(3, 64, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    start = copy.deepcopy(policy).eval()  # what the reference was before: a frozen copy at the start
    ref = reference_policy(policy)
    assert isinstance(ref, AdapterOff) and ref.model is policy  # no second model
    with torch.no_grad():  # move the adapters (as training does): the policy changes, its reference must not
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.add_(torch.randn_like(p) * 0.5)
    policy.train()
    with torch.no_grad():
        want = token_logprobs(start, ids, mask, 1, 4)
        got = token_logprobs(ref, ids, mask, 1, 4)
        moved = token_logprobs(policy.eval(), ids, mask, 1, 4)
    policy.train()
    assert torch.allclose(got, want, atol=1e-6)
    assert (moved - want).abs().max() > 1e-3  # the adapters did move the policy
    # the reference forward leaves the policy in train mode with its adapters on
    assert policy.training
    with torch.no_grad():
        assert torch.allclose(token_logprobs(policy.eval(), ids, mask, 1, 4), moved)


def test_full_parameter_policy_gets_a_frozen_copy():
    policy = _policy(False)
    ref = reference_policy(policy)
    assert ref is not policy and not ref.training
    assert not any(p.requires_grad for p in ref.parameters())
    assert all(p.requires_grad for p in policy.parameters())
