"""The gradient subclass's per-reward gradients go through TRL's own loss; zero weights stay zero; when TRL
reads a new weight (steps_per_generation x num_iterations > 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("trl", minversion="1.16")

from trl import GRPOTrainer  # noqa: E402

from moalign.integrations.trl import GradientWeightingGRPOTrainer, RewardWeightingCallback  # noqa: E402
from moalign.integrations.trl_core import trl_reward_grads  # noqa: E402
from moalign.rl.grads import select_params  # noqa: E402
from tests.integrations.tiny_trl import TOK, args, dataset, even, model, odd  # noqa: E402


@pytest.mark.parametrize("loss_type,beta", [("dapo", 0.0), ("dapo", 0.5), ("grpo", 0.5), ("dr_grpo", 0.0),
                                            ("bnpo", 0.5)])
def test_reward_grads_equal_trls_own_loss_gradient(tmp_path, loss_type, beta):
    """g_k = the gradient of TRL's compute_loss on the generation batch with reward k's advantages (clipped and
    restricted as ours): loss_type's aggregation, beta x KL (policy != reference after a perturbation)."""
    model().save_pretrained(tmp_path / "policy")  # TRL builds its KL reference from the policy's path
    tr = GRPOTrainer(model=str(tmp_path / "policy"), reward_funcs=[even], train_dataset=dataset(), processing_class=TOK,
                     args=args(tmp_path, loss_type=loss_type, beta=beta))  # (even + odd = 1: no advantage)
    tr.model.train()
    tr.current_gradient_accumulation_steps = 1
    batch = tr._generate_and_score_completions([tr.train_dataset[i] for i in range(2) for _ in range(4)])
    with torch.no_grad():  # the policy moves away from the reference, so the KL term has a gradient
        for p in tr.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    params = [p for p in tr.model.parameters() if p.requires_grad]
    chosen = {id(p) for _, p in select_params(tr.model, ["layers\\.1\\."])}
    adv = torch.stack([batch["advantages"], -0.5 * batch["advantages"]], 1)  # two rewards' advantages
    # theirs: TRL's compute_loss with each reward's advantages, at ratio 1 (old log-probs = current ones)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    T = batch["completion_ids"].shape[1]
    theirs = []
    for k in range(2):
        inp = dict(batch, advantages=adv[:, k])
        with torch.no_grad():
            inp["old_per_token_logps"] = tr._get_per_token_logps_and_entropies(tr.model, ids, att, T)[0]
        loss = tr.compute_loss(tr.model, inp)
        g = torch.autograd.grad(loss, params, allow_unused=True)
        g = [x if x is not None else torch.zeros_like(p) for x, p in zip(g, params)]
        norm = torch.sqrt(sum(x.pow(2).sum() for x in g)).item()
        theirs.append(torch.cat([x.reshape(-1) for x, p in zip(g, params) if id(p) in chosen]) * min(1, 1 / norm))
    logp = tr._get_per_token_logps_and_entropies(tr.model, ids, att, T)[0]
    ours = trl_reward_grads(adv, logp, batch["completion_mask"], params, chosen, loss_type, beta,
                            batch.get("ref_per_token_logps"), tr.args.use_bias_correction_kl, tr.max_completion_length,
                            batch.get("num_items_in_batch"))
    assert ours.abs().sum() > 0
    assert torch.allclose(ours, torch.stack(theirs), atol=1e-6, rtol=1e-4), (ours - torch.stack(theirs)).abs().amax(1)
    if beta:  # the KL term is in it: without it the gradients differ
        logp = tr._get_per_token_logps_and_entropies(tr.model, ids, att, T)[0]
        no_kl = trl_reward_grads(adv, logp, batch["completion_mask"], params, chosen, loss_type, 0.0, None, False,
                                 tr.max_completion_length, batch.get("num_items_in_batch"))
        assert not torch.allclose(no_kl, ours, atol=1e-6)


def test_settings_it_cannot_match_are_refused_in_one_line(tmp_path):
    for kw, what in [({"loss_type": "sapo"}, "loss_type='sapo'"),
                     ({"importance_sampling_level": "sequence", "loss_type": "grpo"}, "importance_sampling_level"),
                     ({"top_entropy_quantile": 0.5}, "top_entropy_quantile")]:
        with pytest.raises(ValueError, match=f"cannot match {what}") as e:
            GradientWeightingGRPOTrainer(model=model(), reward_funcs=[even, odd], args=args(tmp_path, **kw),
                                         train_dataset=dataset(), processing_class=TOK)
        assert "\n" not in str(e.value)


def test_a_reward_weighted_zero_stays_zero(tmp_path):
    tr = GradientWeightingGRPOTrainer(model=model(), reward_funcs=[even, odd], train_dataset=dataset(),
                                      processing_class=TOK, args=args(tmp_path, reward_weights=[1.0, 0.0]))
    g = torch.tensor([[1.0, 0.0], [-3.0, 2.0]])
    for _ in range(3):
        tr.weighting_callback.update_from_grads(g, 10.0)
        assert tr.reward_weights.tolist() == [1.0, 0.0]  # scale 1, all of it on the one active reward


class Generations(GRPOTrainer):
    """Records (optimizer steps done, the weights TRL read) at each generation batch."""

    def _generate_and_score_completions(self, inputs):
        self.gen = getattr(self, "gen", []) + [(self.state.global_step, self.reward_weights.clone())]
        return super()._generate_and_score_completions(inputs)


def test_new_weights_reach_trl_at_the_next_generation_batch(tmp_path):
    """steps_per_generation 2 x num_iterations 2: TRL scores a generation batch every 4 optimizer steps, so the
    callback's weights set at steps 1-3 are never used and those set at step 4 act on steps 5-8 (README)."""
    tr = Generations(model=model(), reward_funcs=[even, odd], train_dataset=dataset(), processing_class=TOK,
                     args=args(tmp_path, max_steps=6, steps_per_generation=2, num_iterations=2))
    cb = RewardWeightingCallback(tr, "hypervolume", {"eval_every": 1},
                                 validation=lambda m, step: np.array([0.1 + 0.1 * step, 0.5]))  # accuracy-like gains
    tr.add_callback(cb)
    tr.train()
    steps = [s for s, _ in tr.gen]
    assert steps == [0, 4]  # one generation batch per 4 optimizer steps
    used = cb.history["weights"]  # the weights in force during optimizer steps 1..6
    assert len(used) == 6 and not np.allclose(used[0], used[3])  # the callback moved them at steps 1-3 ...
    assert torch.allclose(tr.gen[0][1], torch.tensor([1.0, 1.0]))  # ... TRL scored batch 1 before any of that
    assert np.allclose(tr.gen[1][1].numpy(), 2 * np.asarray(used[4]))  # batch 2 read the weights set at step 4
