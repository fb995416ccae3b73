"""The TRL adapter on real GRPOTrainer runs of the tiny model: weights follow our strategies, move as the
rules say, are logged under weights/<name>, and survive a resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("trl", minversion="1.16")

from trl import GRPOTrainer  # noqa: E402

from moalign.integrations.trl import (GradientWeightingGRPOTrainer, HypervolumeWeightingCallback,  # noqa: E402
                                      RewardWeightingCallback)
from moalign.integrations.trl_core import trl_advantages  # noqa: E402
from moalign.integrations.trl_validation import validation_point  # noqa: E402
from moalign.rl.weighting import GradientBased, WeightingConfig, make_weighting  # noqa: E402
from tests.integrations.tiny_trl import TOK, Length, args, dataset, even, even2, model, odd, rows  # noqa: E402


class Recording(GRPOTrainer):
    """Records the reward weights TRL reads when it scores each batch."""

    def _calculate_rewards(self, *a):
        self.used = getattr(self, "used", []) + [self.reward_weights.clone()]
        return super()._calculate_rewards(*a)


def test_hypervolume_callback_follows_our_strategy_and_logs_it(tmp_path):
    tr = Recording(model=model(), reward_funcs=[even, odd], args=args(tmp_path, max_steps=4),
                   train_dataset=dataset(), processing_class=TOK)
    cb = HypervolumeWeightingCallback(tr, validation=dataset("val", 4), config={"eval_every": 2})
    tr.add_callback(cb)
    tr.train()
    val = cb.history["validation"]
    assert [v["step"] for v in val] == [0, 2, 4]
    ref = make_weighting("hypervolume", ["even", "odd"], WeightingConfig(weights=[0.5, 0.5]))
    after = [ref.weights()]  # after[i]: our strategy's weights once it has seen validation points 0..i-1
    for v in val:
        info = ref.observe_validation(np.asarray(v["point"]), v["step"])
        assert info["hypervolume"] == v["hypervolume"]
        after.append(ref.weights())
    expect_used = [after[1], after[1], after[2], after[2]]  # steps 1-2 use p0's update, 3-4 p2's
    assert np.allclose(torch.stack(tr.used).numpy(), 2 * np.asarray(expect_used))  # scale = sum of [1, 1]
    assert np.allclose(tr.reward_weights.numpy(), 2 * after[3])
    logs = [h for h in tr.state.log_history if "weights/even" in h]
    assert np.allclose([[h["weights/even"], h["weights/odd"]] for h in logs], expect_used)
    hv = {h["step"]: h["pareto/hypervolume"] for h in tr.state.log_history if "pareto/hypervolume" in h}
    assert hv == {2: val[1]["hypervolume"], 4: val[2]["hypervolume"]}
    # the direction: after a gain, the objective with the larger credit gained relative weight
    moved = [(after[i + 1] / after[i], v) for i, v in enumerate(val) if v["delta_hv"] > 0]
    assert moved, "no validation point advanced the front: the run learnt nothing"
    for ratio, v in moved:
        assert np.argmax(ratio) == np.argmax([v["credit/even"], v["credit/odd"]])
    assert not np.allclose(after[3], [0.5, 0.5])


def test_validation_point_is_the_mean_reward_of_the_decodes_and_leaves_no_trace(tmp_path):
    length = Length()
    tr = GRPOTrainer(model=model(), reward_funcs=[even, length], args=args(tmp_path), train_dataset=dataset(),
                     processing_class=TOK)
    length.total, length.count = 50.0, 10
    val = rows("val", 3)
    torch.manual_seed(5)
    expect = torch.rand(3)
    torch.manual_seed(5)
    greedy = validation_point(tr, val, samples=0, seed=0)
    assert torch.equal(torch.rand(3), expect)  # the training RNG stream is untouched
    assert length.state_dict() == {"total": 50.0, "count": 10}  # stateful rewards restored
    m = tr.model.eval()
    for i, r in enumerate(val):  # one prompt at a time, no padding: the same greedy decode
        ids = TOK(r["prompt"])["input_ids"]
        comp = m.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, pad_token_id=TOK.pad_token_id,
                          eos_token_id=TOK.eos_token_id)[0, len(ids):].tolist()
        comp = comp[: comp.index(TOK.eos_token_id) + 1] if TOK.eos_token_id in comp else comp
        assert greedy["per_prompt"][i, 0] == pytest.approx(even(None, [comp])[0])
    sampled = validation_point(tr, val, samples=3, seed=1)
    assert np.allclose(sampled["point"], sampled["per_prompt"].mean(0))
    assert np.allclose(sampled["se"], sampled["per_prompt"].std(0, ddof=1) / np.sqrt(3))
    assert np.array_equal(validation_point(tr, val, samples=3, seed=1)["point"], sampled["point"])  # seeded


def test_validation_rows_keep_their_samples_and_columns(tmp_path):
    """Each prompt's n samples are averaged together and reach the reward with that row's columns."""

    def is_first(completions, prompts, answer, **_):
        return [float(p == val[0]["prompt"] and a == val[0]["answer"]) for p, a in zip(prompts, answer)]

    val = rows("val", 3)
    tr = GRPOTrainer(model=model(), reward_funcs=[even, is_first], args=args(tmp_path), train_dataset=dataset(),
                     processing_class=TOK)
    out = validation_point(tr, val, samples=4, seed=0)
    assert out["per_prompt"][:, 1].tolist() == [1.0, 0.0, 0.0] and out["point"][1] == pytest.approx(1 / 3)


def test_hv_apply_reward_multiplies_the_weights_by_the_meta_reward(tmp_path):
    tr = GRPOTrainer(model=model(), reward_funcs=[even, odd], args=args(tmp_path), train_dataset=dataset(),
                     processing_class=TOK)
    points = iter([[0.4, 0.5], [0.6, 0.5]])
    cb = HypervolumeWeightingCallback(tr, lambda m, step: next(points), {"weighting": {"hv_apply": "reward"}})
    cb.observe(0)
    info = cb.observe(5)
    assert info["pareto/meta"] > 1 and np.allclose(cb.weights(), [0.5, 0.5])  # weights kept, rewards scaled
    assert np.allclose(tr.reward_weights.numpy(), 2 * np.asarray([0.5, 0.5]) * info["pareto/meta"])


def test_moalign_rewards_read_token_lengths_and_expose_their_state():
    from moalign.integrations.trl import moalign_reward_funcs

    acc, conc = moalign_reward_funcs(["accuracy", "conciseness"])
    assert acc.__name__ == "accuracy" and not hasattr(acc, "state_dict")
    # two completions of 1 word each but 2 and 6 tokens: conciseness counts tokens (mean 4)
    assert conc(["a", "b"], completion_ids=[[1, 2], [1] * 6]) == [1.0, 0.0]
    assert conc.state_dict() == {"total": 8.0, "count": 2}
    assert acc([[{"role": "assistant", "content": "\\boxed{3}"}]], answer=["3"]) == [1.0]


def test_gradient_update_equals_our_strategy_on_the_same_matrix(tmp_path):
    tr = GradientWeightingGRPOTrainer(model=model(), reward_funcs=[even, odd, even2],
                                      args=args(tmp_path, reward_weights=[2.0, 1.0, 1.0]), train_dataset=dataset(),
                                      processing_class=TOK)
    rw = tr.reward_weights
    ref = GradientBased(["even", "odd", "even2"], WeightingConfig(weights=[0.5, 0.25, 0.25]))
    g = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    for i in range(3):
        assert tr.weighting_callback.update_from_grads(g * (i + 1), 1e-3) == ref.update_from_grads(g * (i + 1), 1e-3)
        assert np.allclose(tr.reward_weights.numpy(), 4 * ref.weights())  # scale = 2 + 1 + 1
    assert tr.reward_weights is rw and rw.dtype == torch.float32  # written in place
    assert not np.allclose(ref.weights(), [0.5, 0.25, 0.25])


class GradRecording(GradientWeightingGRPOTrainer):
    """Records each (K, D) matrix, the rewards it came from, and the advantages the loss then used."""

    def objective_grads(self, batch, adv):
        g = super().objective_grads(batch, adv)
        self.rec = getattr(self, "rec", []) + [{"grads": g, "rewards": self._rewards_per_func.clone()}]
        return g

    def _compute_loss(self, model, inputs):
        self.rec[-1]["adv"] = inputs["advantages"].clone()
        self.rec[-1]["weights"] = self.reward_weights.clone()
        return super()._compute_loss(model, inputs)


@pytest.mark.parametrize("aggregation,scale", [("sum_then_normalize", "group"), ("normalize_then_sum", "group"),
                                               ("sum_then_normalize", "batch"), ("sum_then_normalize", "none")])
def test_gradient_trainer_moves_weights_by_influence_on_a_real_run(tmp_path, aggregation, scale):
    tr = GradRecording(model=model(), reward_funcs=[even, odd, even2], train_dataset=dataset(), processing_class=TOK,
                       args=args(tmp_path, multi_objective_aggregation=aggregation, scale_rewards=scale),
                       weighting={"grad_layers": ["layers"]})
    tr.train()
    ref = GradientBased(["even", "odd", "even2"], WeightingConfig(weights=[1 / 3] * 3))
    used = tr.weighting_callback.history["weights"]
    assert len(tr.rec) == len(used) == 3
    for r, w in zip(tr.rec, used):
        assert r["grads"].abs().sum() > 0
        ref.update_from_grads(r["grads"], 1e-2)
        assert np.allclose(ref.weights(), w)  # weights before each step = our rule on the same matrix
        # the loss used advantages of the *new* weights (the batch was re-scored after the update)
        new = trl_advantages(r["rewards"], r["weights"], 4, aggregation, scale)
        assert torch.allclose(r["adv"].sort().values, new.sort().values, atol=1e-6)
    w = np.asarray([[1 / 3] * 3] + used)
    # odd = 1 - even: g_odd = -g_even, so I_odd < 0 < I_even = I_even2 and odd loses weight at every step
    assert (np.diff(w[:, 1]) < 0).all() and (np.diff(w[:, 0]) > 0).all() and np.allclose(w[:, 0], w[:, 2])
    logs = [h for h in tr.state.log_history if "weights/odd" in h]
    assert np.allclose([h["weights/odd"] for h in logs], w[1:, 1])
    assert all(h["influence/odd"] < 0 < h["influence/even"] for h in logs)


@pytest.mark.parametrize("strategy", ["hypervolume", "gradient"])
def test_resume_restores_weights_buffer_and_reward_state_exactly(tmp_path, strategy):
    def run(out, resume=None):
        length = Length()
        kw = dict(model=model(), reward_funcs=[even, odd, even2, length], train_dataset=dataset(), processing_class=TOK,
                  args=args(out, max_steps=4, save_strategy="steps", save_steps=2))
        val = dataset("val", 4)
        if strategy == "gradient":
            tr = GradientWeightingGRPOTrainer(**kw, weighting={"eval_every": 2}, validation=val)
            cb = tr.weighting_callback
        else:
            tr = GRPOTrainer(**kw)
            cb = HypervolumeWeightingCallback(tr, validation=val, config={"eval_every": 2})
            tr.add_callback(cb)
        tr.train(resume_from_checkpoint=resume)
        return tr, cb, length

    full, fcb, flen = run(tmp_path / "a")
    resumed, rcb, rlen = run(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-2"))
    assert len(fcb.history["weights"]) == 4 and len(fcb.history["validation"]) == 3
    assert rcb.history == fcb.history  # steps 1-2 restored, 3-4 recomputed identically
    assert rcb.weighting.state_dict() == fcb.weighting.state_dict()  # weights, reference, buffer, meta
    assert torch.equal(resumed.reward_weights, full.reward_weights)
    assert rlen.state_dict() == flen.state_dict() and flen.count == 4 * 8  # running mean over all 4 steps
    assert not np.allclose(fcb.weights(), [1 / 4] * 4)  # the weights moved


def test_mlflow_run_shows_the_weights_and_hypervolume(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "trl")
    tr = GRPOTrainer(model=model(), reward_funcs=[even, odd], args=args(tmp_path, max_steps=2, report_to="mlflow"),
                     train_dataset=dataset(), processing_class=TOK)
    tr.add_callback(HypervolumeWeightingCallback(tr, validation=dataset("val", 2), config={"eval_every": 1}))
    tr.train()
    client = mlflow.tracking.MlflowClient()
    run = client.search_runs([client.get_experiment_by_name("trl").experiment_id])[0]
    assert len(client.get_metric_history(run.info.run_id, "weights/even")) == 2
    assert len(client.get_metric_history(run.info.run_id, "pareto/hypervolume")) == 2


def test_bad_setups_fail_with_the_fix(tmp_path):
    tr = GRPOTrainer(model=model(), reward_funcs=[even, odd], args=args(tmp_path), train_dataset=dataset(),
                     processing_class=TOK)
    with pytest.raises(ValueError, match="needs validation points"):
        RewardWeightingCallback(tr, "hypervolume")
    with pytest.raises(ValueError, match="hv_apply 'objective'"):
        HypervolumeWeightingCallback(tr, rows("val", 2), {"weighting": {"hv_apply": "advantage"}})
    with pytest.raises(ValueError, match="repeat"):
        GradientWeightingGRPOTrainer(model=model(), reward_funcs=[even, even], args=args(tmp_path),
                                     train_dataset=dataset(), processing_class=TOK)
    with pytest.raises(Exception, match="eval_every"):
        HypervolumeWeightingCallback(tr, rows("val", 2), {"eval_every": 0})
