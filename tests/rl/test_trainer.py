"""Trainer: parameters move, resume-after-kill equals an uninterrupted run, bad layer selection."""

import copy

import pytest
import torch

from moalign.rl.config import TrainConfig
from moalign.rl.rewards import REWARDS
from moalign.rl.trainer import KilledForTest, middle_layers_pattern, select_params, train
from tests.test_core_sft import tiny


def cfg(**kw):
    base = dict(max_steps=4, prompts_per_step=2, group_size=2, max_new_tokens=8, eval_every=2, val_rows=2,
                checkpoint_every=2, snapshot_every=2, lr=1e-3, strategies=["fixed", "hypervolume", "gradient"],
                grad_layers=[r"mlp\.down_proj"])
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def setup():
    rows, tok, model = tiny()
    return rows, tok, model


def test_parameters_change_after_one_step(setup):
    rows, tok, model = setup
    m = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    res = train(cfg(max_steps=1, temperature=1.5), "fixed", m, tok, rows["train"], rows["val"], seed=0)
    changed = [n for n, p in m.named_parameters() if not torch.equal(p, before[n])]
    assert changed, "no parameter moved after one RL step"
    assert {"rewards/accuracy/mean", "weights/clarity", "losses/policy", "charts/completion_length"} <= set(res.history[0])


@pytest.mark.parametrize("strategy", ["gradient", "hypervolume"])
def test_resume_after_kill_matches_uninterrupted(setup, tmp_path, strategy):
    rows, tok, model = setup
    full = train(cfg(), strategy, copy.deepcopy(model), tok, rows["train"], rows["val"], seed=0,
                 ckpt_dir=tmp_path / "a", fingerprint="f")
    with pytest.raises(KilledForTest):
        train(cfg(), strategy, copy.deepcopy(model), tok, rows["train"], rows["val"], seed=0,
              ckpt_dir=tmp_path / "b", fingerprint="f", stop_after=2)
    resumed = train(cfg(), strategy, copy.deepcopy(model), tok, rows["train"], rows["val"], seed=0,
                    ckpt_dir=tmp_path / "b", fingerprint="f")
    assert resumed.weights == full.weights
    for h1, h2 in zip(full.history, resumed.history):
        assert h1.keys() == h2.keys()
        for k in (k for k in h1 if not k.startswith("perf/")):  # wall times differ run to run
            assert h1[k] == pytest.approx(h2[k], rel=1e-5, abs=1e-6), k
    assert [v["point"] for v in resumed.validation] == [v["point"] for v in full.validation]


def _frac(chars):
    class Frac:  # test objective: share of ``chars`` in the completion (varies even for an untrained policy)
        def __call__(self, completions, **_):
            return [sum(c in chars for c in t) / max(len(t), 1) for t in completions]
    return Frac


for _name, _chars in (("t_digits", "0123456789"), ("t_space", " \n")):
    if _name not in REWARDS:
        REWARDS.register(_name)(_frac(_chars))


def test_gradient_strategy_moves_weights(setup):
    rows, tok, model = setup
    objs = ["t_digits", "t_space"]
    res = train(cfg(max_steps=2, temperature=1.5, objectives=objs, group_size=4), "gradient", copy.deepcopy(model),
                tok, rows["train"], rows["val"], seed=1)
    assert res.initial_weights == pytest.approx([0.5, 0.5])
    assert max(abs(a - b) for a, b in zip(res.final_weights, res.initial_weights)) > 1e-4  # the weights moved
    shares = [res.history[-1][f"influence_share/{o}"] for o in objs]
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)  # shares of ||G||^2
    assert abs(sum(res.weights[-1]) - 1) < 1e-6


def test_grad_every_updates_weights_only_on_its_steps(setup):
    rows, tok, model = setup
    objs = ["t_digits", "t_space"]
    res = train(cfg(max_steps=4, temperature=1.5, objectives=objs, group_size=4, grad_every=2), "gradient",
                copy.deepcopy(model), tok, rows["train"], rows["val"], seed=1)
    took = [h["step"] for h in res.history if "perf/objective_grads_s" in h]
    assert took == [1, 3]  # steps 0 and 2 (0-based) took the K gradients
    w = [tuple(x) for x in res.weights]  # weights used at each step
    assert w[0] == w[1] != w[2] == w[3]  # updated before the step that took them, kept in between


def test_middle_layers_and_full_norm_clipping(setup):
    _, _, model = setup
    n = model.config.num_hidden_layers
    chosen = {name for name, _ in select_params(model, ["middle"])}
    lo, hi = round(10 / 36 * n), max(round(10 / 36 * n) + 1, round(26 / 36 * n))
    assert chosen and all(any(f"layers.{i}." in c for i in range(lo, hi)) for c in chosen)
    assert middle_layers_pattern(36) == r"layers\.(" + "|".join(map(str, range(10, 26))) + r")\."  # authors' 10-25


def test_layer_selection_matching_nothing(setup):
    _, _, model = setup
    with pytest.raises(ValueError, match="train.grad_layers"):
        select_params(model, ["no_such_layer"])


def test_preset_strategy_names_set_the_fixed_weights(setup):
    rows, tok, model = setup
    res = train(cfg(max_steps=1, val_samples=2), "fixed-efficiency", copy.deepcopy(model), tok, rows["train"],
                rows["val"], seed=0)
    assert res.weights == [[0.25, 0.375, 0.375]] and res.final_weights == res.initial_weights
    assert res.validation[0]["step"] == 0 and len(res.validation[0]["point"]) == 3
