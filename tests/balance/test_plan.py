import math

import numpy as np
import pytest
import torch

from moalign.balance import (
    BalanceConfig,
    PlanSampler,
    build_plan,
    plot_plan,
    scalarization_weights,
    temperature_probs,
    unimax_probs,
    variance_factor,
)
from moalign.config import Params
from moalign.schema import ParamsError, validate_section

SIZES = {"a": 100, "b": 1}


def test_temperature_probs_hand_computed():
    p = temperature_probs(SIZES, 2.0)  # sqrt(100)=10, sqrt(1)=1
    assert p["a"] == pytest.approx(10 / 11) and p["b"] == pytest.approx(1 / 11)
    p1 = temperature_probs(SIZES, 1.0)
    assert p1["a"] == pytest.approx(100 / 101)
    pu = temperature_probs({"a": 10000, "b": 1, "c": 50}, 1e6)
    assert all(v == pytest.approx(1 / 3, abs=1e-4) for v in pu.values())


def test_scalarization_weights():
    w = scalarization_weights(SIZES, 2.0)
    assert w["a"] == pytest.approx((10 / 11) / (100 / 101))
    assert w["b"] == pytest.approx((1 / 11) / (1 / 101))


def test_theorem1_full_batch_loss_and_gradient_match():
    """Scalarization's full-batch loss/gradient equals temperature sampling's expectation."""
    sizes = {"a": 7, "b": 3, "c": 1}
    tau = 3.0
    g = torch.Generator().manual_seed(0)
    X = {d: torch.randn(n, 4, generator=g) for d, n in sizes.items()}
    Y = {d: torch.randn(n, generator=g) for d, n in sizes.items()}
    w_model = torch.randn(4, generator=g, requires_grad=True)

    def dom_loss(d):
        return ((X[d] @ w_model - Y[d]) ** 2).mean()

    pt, p1, wts = temperature_probs(sizes, tau), temperature_probs(sizes, 1.0), scalarization_weights(sizes, tau)
    ts = sum(pt[d] * dom_loss(d) for d in sizes)
    sc = sum(p1[d] * wts[d] * dom_loss(d) for d in sizes)
    assert abs(ts.item() - sc.item()) < 1e-6
    g_ts = torch.autograd.grad(ts, w_model)[0]
    g_sc = torch.autograd.grad(sc, w_model)[0]
    assert torch.allclose(g_ts, g_sc, atol=1e-6)


def test_variance_factor_at_least_one_and_increasing():
    sizes = {"a": 10000, "b": 2000, "c": 400, "d": 100}
    fs = [variance_factor(sizes, t) for t in (1, 2, 5, 100)]
    assert fs[0] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(fs, fs[1:]))


def test_unimax_worked_example():
    # ascending: a(10): b=600/3=200, U=min(200, 2*10)=20, left 580
    #            b(100): b=580/2=290, U=min(290, 200)=200, left 380
    #            c(1000): b=380, U=min(380, 2000)=380
    p = unimax_probs({"a": 10, "b": 100, "c": 1000}, 600, 2)
    assert p == pytest.approx({"a": 20 / 600, "b": 200 / 600, "c": 380 / 600})


def test_cooldown_plan_phases_and_epochs(tmp_path):
    cfg = BalanceConfig(strategy="cooldown")
    plan = build_plan(cfg, {"en": 1000, "de": 10}, total_samples=2000)
    assert [ph["tau"] for ph in plan["phases"]] == [5.0, 1.0]
    exp_de = (0.5 * 2000 * plan["phases"][0]["probs"]["de"] + 0.5 * 2000 * plan["phases"][1]["probs"]["de"]) / 10
    assert plan["expected_epochs"]["de"] == pytest.approx(exp_de)
    assert len(plan["F_tau"]) == 2
    plot_plan(plan, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_scalarization_plan_samples_proportionally_with_weights():
    plan = build_plan(BalanceConfig(strategy="scalarization", tau=5), {"en": 1000, "de": 10}, 100)
    ph = plan["phases"][0]
    assert ph["probs"]["en"] == pytest.approx(1000 / 1010)
    assert ph["loss_weights"]["de"] > 1 > ph["loss_weights"]["en"]
    assert plan["F_tau"] == pytest.approx(variance_factor({"en": 1000, "de": 10}, 5))


def _err(section):
    with pytest.raises(ParamsError) as e:
        validate_section(BalanceConfig, section, "balance")
    return str(e.value)


def test_bad_inputs_name_the_key():
    assert "balance.tau" in _err({"tau": 0})
    assert "balance.schedule" in _err({"schedule": [{"start": 0.0, "tau": 5}, {"start": 0.0, "tau": 1}]})
    assert "balance.schedule" in _err({"schedule": [{"start": 0.2, "tau": 5}]})
    assert "balance.schedule" in _err({"schedule": [{"start": 0.0, "tau": -1}]})
    assert "valid names" in _err({"strategy": "upsample"})
    with pytest.raises(ValueError, match="balance.unimax_budget"):
        build_plan(BalanceConfig(strategy="unimax", unimax_budget=1), {"a": 5, "b": 5}, 100)
    with pytest.raises(ValueError, match="no rows"):
        build_plan(BalanceConfig(), {"a": 5, "b": 0}, 100)


def _freq(sampler, steps, domain_of):
    counts = {}
    for s in steps:
        for i in sampler.batch(s)[0]:
            counts[domain_of[i]] = counts.get(domain_of[i], 0) + 1
    return counts


def test_sampler_follows_plan_before_and_after_cooldown_switch():
    sizes = {"en": 900, "de": 100}
    plan = build_plan(BalanceConfig(strategy="cooldown"), sizes, 200 * 64)
    idx = {"en": list(range(900)), "de": list(range(900, 1000))}
    domain_of = {i: d for d, ix in idx.items() for i in ix}
    s = PlanSampler(plan, idx, total_steps=200, batch_size=64, seed=0)
    assert s.phase_at(99) == 0 and s.phase_at(100) == 1
    for k, steps in ((0, range(0, 100)), (1, range(100, 200))):
        c = _freq(s, steps, domain_of)
        n = sum(c.values())
        p = plan["phases"][k]["probs"]["de"]
        sd = math.sqrt(n * p * (1 - p))
        assert abs(c["de"] - n * p) < 4 * sd, (k, c, n * p)


def test_sampler_deterministic_per_step_and_weights():
    plan = build_plan(BalanceConfig(strategy="scalarization", tau=5), {"en": 90, "de": 10}, 640)
    idx = {"en": list(range(90)), "de": list(range(90, 100))}
    a = PlanSampler(plan, idx, 10, 16, seed=3)
    b = PlanSampler(plan, idx, 10, 16, seed=3)
    assert a.batch(4) == b.batch(4) and a.batch(4) != a.batch(5)
    rows, w = a.batch(2)
    for r, wi in zip(rows, w):
        assert wi == pytest.approx(plan["phases"][0]["loss_weights"]["de" if r >= 90 else "en"])
    assert np.isfinite(w).all()


def test_params_balance_section_loads_from_params_yaml():
    from tests.tiny import ROOT
    import yaml

    p = Params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert p.balance.strategy == "cooldown"
