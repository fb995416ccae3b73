"""Trainer fidelity to TRL and the authors: log-probs at the sampling temperature, the KL term in the
per-objective gradients, batch statistics over ranks."""

import copy

import pytest
import torch

from moalign.generation import token_logprobs
from moalign.rl import trainer as trainer_mod
from moalign.rl import update as update_mod
from moalign.rl.config import TrainConfig
from moalign.rl.estimators import combine_advantages, policy_loss
from moalign.rl.trainer import objective_grads, train
from tests.test_core_sft import tiny


def test_token_logprobs_at_temperature_by_hand():
    rows, tok, model = tiny()
    ids = torch.tensor([tok("Question: 1 + 2", add_special_tokens=False)["input_ids"]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1]
        for T in (1.0, 0.7, 2.0):
            exp = torch.log_softmax(logits / T, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            got = token_logprobs(model, ids, mask, temperature=T)[:, 1:]
            assert torch.allclose(got, exp, atol=1e-5), T


@pytest.mark.parametrize("micro", [True, False])
@pytest.mark.parametrize("T", [0.7, 1.3])
def test_trainer_takes_logprobs_at_the_rollout_temperature(monkeypatch, T, micro):
    """The policy and the reference are scored at train.temperature (TRL: logits / self.temperature), whole batch
    or bucket by bucket (train.micro_batch_update)."""
    rows, tok, model = tiny()
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    seen = []
    real, real_bucket = trainer_mod.token_logprobs, update_mod.bucket_logprobs

    def spy(m, ids, mask, buckets=1, start=1, temperature=1.0):
        seen.append(("ref" if m is ref else "policy", temperature))
        return real(m, ids, mask, buckets, start, temperature)

    def spy_bucket(m, ids, mask, bucket, temperature=1.0):
        seen.append(("ref" if m is ref else "policy", temperature))
        return real_bucket(m, ids, mask, bucket, temperature)

    monkeypatch.setattr(trainer_mod, "token_logprobs", spy)
    monkeypatch.setattr(update_mod, "bucket_logprobs", spy_bucket)
    cfg = TrainConfig(max_steps=1, prompts_per_step=2, group_size=2, max_new_tokens=6, eval_every=10, val_rows=2,
                      temperature=T, kl_coef=0.1, strategies=["fixed"], checkpoint_every=10, snapshot_every=10,
                      micro_batch_update=micro)
    train(cfg, "fixed", copy.deepcopy(model), tok, rows["train"], rows["val"], seed=0, ref_model=ref)
    assert {s for s, _ in seen} == {"policy", "ref"} and {t for _, t in seen} == {T}
    assert len(seen) == (2 * min(cfg.logprob_buckets, 4) if micro else 2)  # per bucket, or policy then reference


def test_objective_grads_include_the_kl_term_as_the_authors():
    """g_k = clip_1(grad(policy-gradient term of objective k + kl_coef * KL)) over all params (grad_kl: true);
    without grad_kl the KL gradient is left out."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 5)
    x = torch.randn(4, 6, 3)  # N = B*G = 4 sequences of 6 tokens
    mask = torch.ones(4, 6)
    r3 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]]])  # (B=2, G=2, K=2)
    params = list(lin.parameters())
    logp = torch.log_softmax(lin(x), -1)[..., 0]
    ref = logp.detach() - 0.3 * torch.rand(4, 6)  # the policy has moved away from the reference
    cfg = TrainConfig(kl_coef=0.5, grad_kl=True, strategies=["gradient"], group_size=2)
    chosen = {id(p) for p in params}
    with_kl = objective_grads(cfg, r3, logp, logp.detach(), mask, params, chosen, ref)
    without = objective_grads(cfg.model_copy(update={"grad_kl": False}), r3, logp, logp.detach(), mask, params,
                              chosen, ref)
    for k in range(2):
        adv = combine_advantages(r3, torch.eye(2)[k], "grpo", "normalize_then_sum_unscaled").reshape(-1)
        for kl, got in ((0.5, with_kl[k]), (0.0, without[k])):
            loss, _ = policy_loss(logp, logp.detach(), adv, mask, None, ref if kl else None, kl)
            g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params, retain_graph=True)])
            exp = g * min(1.0, 1.0 / g.norm().item())
            assert torch.allclose(got, exp, atol=1e-6), (k, kl)
    assert not torch.allclose(with_kl, without, atol=1e-4)


def test_logits_only_from_the_completion_through_a_peft_wrapper():
    """forward_params looks through PEFT (its forward takes **kwargs), so a LoRA policy also computes logits
    only from the first completion column - with the same log-probs."""
    from peft import LoraConfig, get_peft_model

    from moalign.generation import forward_params

    rows, tok, model = tiny()
    pm = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert "logits_to_keep" in forward_params(pm)
    ids = torch.tensor([tok("Question: 12 + 3 = ? Solution: 1. 15", add_special_tokens=False)["input_ids"]] * 2)
    mask = torch.ones_like(ids)
    cut, full = token_logprobs(pm, ids, mask, 1, 5), token_logprobs(pm, ids, mask, 1, 1)
    assert torch.allclose(cut[:, 5:], full[:, 5:], atol=1e-5) and (cut[:, :5] == 0).all()
