"""balance plan core: probabilities vs hand values, Theorems 1-2, UniMax, plan, config errors."""

import json
import math

import pytest
import torch

from moalign.balance import (
    BALANCERS,
    BalanceConfig,
    build_plan,
    plot_plan,
    scalarization_weights,
    temperature_probs,
    unimax_allocation,
    unimax_probs,
    variance_factor,
)
from moalign.config import Params
from moalign.schema import ParamsError

SIZES = {"a": 100, "b": 1}


def test_registry_has_the_four_strategies():
    assert BALANCERS.names() == ["cooldown", "scalarization", "temperature", "unimax"]


def test_temperature_probs_hand_computed():
    p = temperature_probs(SIZES, 2.0)  # 100^(1/2) = 10, 1^(1/2) = 1 -> 10/11, 1/11
    assert p["a"] == pytest.approx(10 / 11) and p["b"] == pytest.approx(1 / 11)
    assert temperature_probs(SIZES, 1.0)["a"] == pytest.approx(100 / 101)


def test_temperature_large_tau_is_uniform_and_huge_sizes_are_stable():
    sizes = {"a": 10000, "b": 1, "c": 50}
    for tau, tol in ((100.0, 0.05), (1e6, 1e-4)):
        assert all(v == pytest.approx(1 / 3, abs=tol) for v in temperature_probs(sizes, tau).values())
    p = temperature_probs({"a": 10**300, "b": 1}, 0.01)  # n^(1/tau) overflows floats; log space does not
    assert p["a"] == pytest.approx(1.0) and math.isfinite(p["b"])


def test_scalarization_weights_hand_computed():
    w = scalarization_weights(SIZES, 2.0)
    assert w["a"] == pytest.approx((10 / 11) / (100 / 101))
    assert w["b"] == pytest.approx((1 / 11) / (1 / 101))


def test_theorem1_full_batch_loss_matches_on_per_example_losses():
    # per-example losses; domain loss = mean over its examples
    losses = {"a": [0.5, 1.5, 2.0, 0.1], "b": [3.0, 1.0], "c": [7.0]}
    sizes = {d: len(v) for d, v in losses.items()}
    mean = {d: sum(v) / len(v) for d, v in losses.items()}
    tau = 3.0
    p1, pt, w = temperature_probs(sizes, 1.0), temperature_probs(sizes, tau), scalarization_weights(sizes, tau)
    scalarized = sum(p1[d] * w[d] * mean[d] for d in sizes)
    temperature = sum(pt[d] * mean[d] for d in sizes)
    assert abs(scalarized - temperature) < 1e-6
    # the same as a per-example full-batch sum: proportional sampling gives each example 1/N
    n = sum(sizes.values())
    assert abs(sum(w[d] * x / n for d in sizes for x in losses[d]) - temperature) < 1e-6


def test_theorem1_full_batch_gradient_matches_on_linear_model():
    sizes = {"a": 7, "b": 3, "c": 1}
    tau = 3.0
    g = torch.Generator().manual_seed(0)
    X = {d: torch.randn(n, 4, generator=g, dtype=torch.float64) for d, n in sizes.items()}
    Y = {d: torch.randn(n, generator=g, dtype=torch.float64) for d, n in sizes.items()}
    lin = torch.nn.Linear(4, 1).double()

    def dom_loss(d: str) -> torch.Tensor:
        return ((lin(X[d]).squeeze(-1) - Y[d]) ** 2).mean()

    pt, p1, w = temperature_probs(sizes, tau), temperature_probs(sizes, 1.0), scalarization_weights(sizes, tau)
    ts = sum(pt[d] * dom_loss(d) for d in sizes)
    sc = sum(p1[d] * w[d] * dom_loss(d) for d in sizes)
    assert abs(ts.item() - sc.item()) < 1e-6
    g_ts = torch.autograd.grad(ts, list(lin.parameters()))
    g_sc = torch.autograd.grad(sc, list(lin.parameters()))
    for a, b in zip(g_ts, g_sc):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_theorem2_variance_factor_at_least_one_and_increasing():
    sizes = {"a": 10000, "b": 2000, "c": 400, "d": 100}
    fs = [variance_factor(sizes, t) for t in (1, 1.5, 2, 5, 100)]
    assert fs[0] == pytest.approx(1.0)
    assert all(f >= 1 - 1e-12 for f in fs)
    assert all(b > a for a, b in zip(fs, fs[1:]))
    assert variance_factor({"a": 5, "b": 5}, 10.0) == pytest.approx(1.0)  # balanced data: no extra variance


def test_unimax_worked_example():
    # ascending by size, budget B = 600, max_epochs = 2:
    #   a (n=10):   b = 600/3 = 200, U = min(200, 2*10)   = 20,  left 580
    #   b (n=100):  b = 580/2 = 290, U = min(290, 2*100)  = 200, left 380
    #   c (n=1000): b = 380/1 = 380, U = min(380, 2*1000) = 380, left 0
    sizes = {"a": 10, "b": 100, "c": 1000}
    assert unimax_allocation(sizes, 600, 2) == pytest.approx({"a": 20, "b": 200, "c": 380})
    assert unimax_probs(sizes, 600, 2) == pytest.approx({"a": 20 / 600, "b": 200 / 600, "c": 380 / 600})
    # large budget, no caps hit for the big domain: uniform
    assert unimax_probs({"a": 1000, "b": 1000}, 100, 1) == pytest.approx({"a": 0.5, "b": 0.5})


@pytest.mark.parametrize("strategy", ["temperature", "scalarization", "unimax", "cooldown"])
def test_build_plan_every_strategy_is_json_and_consistent(strategy, tmp_path):
    sizes = {"en": 1000, "de": 10, "fr": 100}
    plan = build_plan(BalanceConfig(strategy=strategy, unimax_budget=3000), sizes, total_samples=2000)
    assert json.loads(json.dumps(plan)) == plan
    assert plan["domains"] == ["de", "en", "fr"] and plan["strategy"] == strategy
    assert sum(plan["durations"]) == pytest.approx(1.0)
    for ph in plan["phases"]:
        assert sum(ph["probs"].values()) == pytest.approx(1.0)
    drawn = sum(e * sizes[d] for d, e in plan["expected_epochs"].items())
    assert drawn == pytest.approx(2000)  # every sample goes to some domain
    plot_plan(plan, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_temperature_and_scalarization_plans():
    sizes = {"en": 1000, "de": 10}
    t = build_plan(BalanceConfig(strategy="temperature", tau=2.0), sizes, 100)
    assert t["phases"][0]["probs"]["de"] == pytest.approx(math.sqrt(10) / (math.sqrt(10) + math.sqrt(1000)))
    assert set(t["phases"][0]["loss_weights"].values()) == {1.0}
    s = build_plan(BalanceConfig(strategy="scalarization", tau=5.0), sizes, 100)
    ph = s["phases"][0]
    assert ph["probs"]["en"] == pytest.approx(1000 / 1010)
    assert ph["loss_weights"]["de"] > 1 > ph["loss_weights"]["en"]
    assert s["F_tau"] == pytest.approx(variance_factor(sizes, 5.0))
    assert s["F_tau_mean"] == pytest.approx(s["F_tau"])
    assert s["expected_epochs"]["de"] == pytest.approx(100 * 10 / 1010 / 10)


def test_cooldown_plan_phases_epochs_and_f():
    sizes = {"en": 1000, "de": 10}
    plan = build_plan(BalanceConfig(strategy="cooldown"), sizes, total_samples=2000)
    assert [ph["tau"] for ph in plan["phases"]] == [5.0, 1.0] and plan["durations"] == [0.5, 0.5]
    p0, p1 = (ph["probs"]["de"] for ph in plan["phases"])
    assert plan["expected_epochs"]["de"] == pytest.approx((1000 * p0 + 1000 * p1) / 10)
    assert plan["F_tau"] == pytest.approx([variance_factor(sizes, 5.0), 1.0])
    assert plan["F_tau_mean"] == pytest.approx(0.5 * variance_factor(sizes, 5.0) + 0.5)


def _err(section: dict) -> str:
    with pytest.raises(ParamsError) as e:
        Params({"balance": section})
    return str(e.value)


def test_bad_tau_names_the_key():
    for bad in (0, -1, float("nan")):
        msg = _err({"tau": bad})
        assert "balance.tau" in msg and "Fix" in msg
    assert "tau" in _err({"schedule": [{"start": 0.0, "tau": -1}]})
    assert "unimax_max_epochs" in _err({"unimax_max_epochs": 0})
    with pytest.raises(ValueError, match="tau"):
        temperature_probs(SIZES, 0.0)


def test_bad_schedule_names_the_key_and_fix():
    for sched in ([{"start": 0.0, "tau": 5}, {"start": 0.0, "tau": 1}],  # not strictly increasing
                  [{"start": 0.0, "tau": 5}, {"start": 0.6, "tau": 1}, {"start": 0.3, "tau": 2}],
                  [{"start": 0.2, "tau": 5}],  # does not start at 0
                  [{"start": 0.0, "tau": 5}, {"start": 1.0, "tau": 1}],  # start >= 1
                  []):
        msg = _err({"schedule": sched})
        assert "balance.schedule" in msg and "Fix" in msg, msg


def test_unknown_strategy_lists_valid_names():
    msg = _err({"strategy": "upsample"})
    assert "balance.strategy" in msg and "valid names: cooldown, scalarization, temperature, unimax" in msg
    assert "unknown key" in _err({"temperature": 2})


def test_unimax_budget_below_domains_names_the_key():
    with pytest.raises(ValueError, match=r"balance\.unimax_budget.*Fix"):
        build_plan(BalanceConfig(strategy="unimax", unimax_budget=2), {"a": 5, "b": 5, "c": 5}, 100)
    build_plan(BalanceConfig(strategy="unimax", unimax_budget=3), {"a": 5, "b": 5, "c": 5}, 100)


def test_zero_row_domain_names_the_domain():
    with pytest.raises(ValueError, match=r"'de' has no rows.*Fix: remove the domain"):
        build_plan(BalanceConfig(), {"en": 5, "de": 0}, 100)
    with pytest.raises(ValueError, match="no domains"):
        build_plan(BalanceConfig(), {}, 100)


def test_params_yaml_balance_section_is_valid():
    import yaml

    from moalign.config import Params
    from tests.tiny import ROOT

    p = Params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert p.balance.strategy in BALANCERS
