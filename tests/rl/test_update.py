"""The bucket-by-bucket update (moalign/rl/update.py) gives the whole batch's loss, gradient and stats."""

import copy

import pytest
import torch

from moalign.generation import hf_generate, token_logprobs
from moalign.rl import update as update_mod
from moalign.rl.config import TrainConfig
from moalign.rl.estimators import policy_loss
from moalign.rl.trainer import PhaseClock, train
from tests.test_core_sft import tiny


def _batch(model, tok, rows, n=6):
    torch.manual_seed(1)
    prompts = [f"Question: {r['question']}\nSolution:" for r in rows[:n]]
    return hf_generate(model, tok, prompts, 10, do_sample=True, temperature=1.0)


def _grads(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("buckets,clip,kl", [(3, None, 0.0), (2, 0.2, 0.4), (6, 0.2, 0.4)])
def test_bucketed_update_equals_the_whole_batch(buckets, clip, kl):
    """Same gradient (to float rounding), loss and stats as one graph for the whole batch, with clipping and the KL
    term to a reference that differs from the policy."""
    rows, tok, model = tiny()
    g = _batch(model, tok, rows["train"])
    ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))  # the policy has moved away from its reference
    adv = torch.linspace(-1.0, 1.2, g.ids.shape[0])
    cmask = g.completion_mask[:, 1:]
    first = g.completion_start
    logp = token_logprobs(model, g.ids, g.mask, buckets, first, 1.0)[:, 1:]
    ref = token_logprobs(ref_model, g.ids, g.mask, buckets, first, 1.0)[:, 1:].detach() if kl else None
    want_loss, want_stats = policy_loss(logp, logp.detach(), adv, cmask, clip, ref, kl)
    model.zero_grad()
    want_loss.backward()
    want_loss = want_loss.detach()
    want = _grads(model)
    model.zero_grad()
    seen = []
    loss, stats = update_mod.bucketed_update(
        model, ref_model if kl else None, g.ids, g.mask, cmask, first, adv, buckets=buckets, temperature=1.0,
        clip_eps=clip, kl_coef=kl, clock=PhaseClock(), backward=lambda lo: (seen.append(lo), lo.backward()))
    assert len(seen) == min(buckets, g.ids.shape[0])  # one backward per bucket
    assert torch.allclose(_grads(model), want, atol=1e-6, rtol=1e-5)
    assert loss == pytest.approx(want_loss.item(), abs=1e-6)
    assert stats["kl"] == pytest.approx(want_stats["kl"], abs=1e-6)
    assert stats["clip_fraction"] == pytest.approx(want_stats["clip_fraction"], abs=1e-6)
    if kl:
        assert stats["kl"] > 0


def test_only_the_last_bucket_syncs_gradients():
    """Under DDP every bucket but the last backwards inside no_sync: one all-reduce per step."""
    rows, tok, model = tiny()
    g = _batch(model, tok, rows["train"])
    inside = []

    class Ctx:
        def __enter__(self):
            inside.append(True)

        def __exit__(self, *a):
            return False

    calls = []
    update_mod.bucketed_update(model, None, g.ids, g.mask, g.completion_mask[:, 1:], g.completion_start,
                               torch.ones(g.ids.shape[0]), buckets=3, temperature=1.0, clip_eps=0.2, kl_coef=0.0,
                               clock=PhaseClock(), backward=lambda lo: (calls.append(len(inside)), lo.backward()),
                               no_sync=Ctx)
    assert calls == [1, 2, 2]  # buckets 1 and 2 inside no_sync, the last outside


@pytest.mark.parametrize("strategy", ["fixed", "gradient"])
def test_trainer_is_the_same_with_and_without_micro_batches(strategy):
    """Two steps with micro_batch_update on and off end at the same weights (the gradient strategy keeps the whole
    batch's graph on its objective-gradient steps: grad_every 2 exercises both kinds of step)."""
    rows, tok, model = tiny()
    finals, metrics = [], []
    for micro in (True, False):
        cfg = TrainConfig(max_steps=2, prompts_per_step=2, group_size=3, max_new_tokens=8, eval_every=10, val_rows=2,
                          kl_coef=0.1, strategies=[strategy], checkpoint_every=10, snapshot_every=10,
                          logprob_buckets=3, micro_batch_update=micro, grad_every=2)
        m = copy.deepcopy(model)
        res = train(cfg, strategy, m, tok, rows["train"], rows["val"], seed=0,
                    ref_model=copy.deepcopy(model).eval().requires_grad_(False))
        finals.append(torch.cat([p.detach().reshape(-1) for p in m.parameters()]))
        metrics.append([h["perf/micro_batches"] for h in res.history])
    assert torch.allclose(finals[0], finals[1], atol=1e-5)
    assert metrics[1] == [1.0, 1.0]
    assert metrics[0] == ([1.0, 3.0] if strategy == "gradient" else [3.0, 3.0])
