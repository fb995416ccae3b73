"""Trainer on the learnable fixture (tests/rl/learnable.py): metrics, the gradient strategy's weights, layer selection.

The update itself is checked against oracles in test_trainer_oracle.py, the sign of learning in
test_learnable.py, resume in test_resume.py.
"""

import pytest

from moalign.rl.trainer import middle_layers_pattern, select_params, train
from tests.rl.learnable import cfg, learnable


@pytest.fixture(scope="module")
def setup():
    return learnable()


def test_one_step_logs_the_metrics_and_moves_the_policy(setup):
    rows, tok, model = setup
    m = learnable()[2]
    res = train(cfg(max_steps=1), "fixed", m, tok, rows["train"], rows["val"], seed=0)
    moved = [n for (n, p), q in zip(m.named_parameters(), model.parameters()) if not (p == q).all()]
    assert len(moved) == len(list(model.parameters()))  # weight decay is 0: only a gradient moves them
    assert {"rewards/t_digits/mean", "rewards/conciseness/std", "weights/t_digits", "losses/policy",
            "charts/completion_length", "charts/grad_norm"} <= set(res.history[0])
    assert res.history[0]["charts/grad_norm"] > 0


def test_gradient_strategy_moves_weights(setup):
    rows, tok, _ = setup
    objs = ["t_digits", "t_letters"]
    res = train(cfg(max_steps=2, objectives=objs), "gradient", learnable()[2], tok, rows["train"], rows["val"], seed=1)
    assert res.initial_weights == pytest.approx([0.5, 0.5])
    assert max(abs(a - b) for a, b in zip(res.final_weights, res.initial_weights)) > 1e-3  # the weights moved
    shares = [res.history[-1][f"influence_share/{o}"] for o in objs]
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)  # shares of ||G||^2
    assert all(res.history[-1][f"influence/{o}"] != 0 for o in objs)
    assert abs(sum(res.weights[-1]) - 1) < 1e-6


def test_grad_every_updates_weights_only_on_its_steps(setup):
    rows, tok, _ = setup
    objs = ["t_digits", "t_letters"]
    res = train(cfg(max_steps=4, objectives=objs, grad_every=2), "gradient", learnable()[2], tok, rows["train"],
                rows["val"], seed=1)
    took = [h["step"] for h in res.history if "perf/objective_grads_s" in h]
    assert took == [1, 3]  # steps 0 and 2 (0-based) took the K gradients
    w = [tuple(x) for x in res.weights]  # weights used at each step
    assert w[0] == w[1] != w[2] == w[3]  # updated before the step that took them, kept in between


def test_middle_layers_pattern(setup):
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
    rows, tok, _ = setup
    c = cfg(max_steps=1, objectives=["accuracy", "conciseness", "clarity"])
    res = train(c, "fixed-efficiency", learnable()[2], tok, rows["train"], rows["val"], seed=0)
    assert res.weights == [[0.25, 0.375, 0.375]] and res.final_weights == res.initial_weights
    assert res.validation[0]["step"] == 0 and len(res.validation[0]["point"]) == 3
