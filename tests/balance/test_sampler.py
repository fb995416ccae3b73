"""PlanSampler: follows the plan's phases, per-step determinism (resume), loss weights; fixed_mixture."""

import math

import datasets
import pytest

from moalign.balance import BalanceConfig, PlanSampler, build_plan, fixed_mixture

SIZES = {"en": 900, "de": 100}
IDX = {"en": list(range(900)), "de": list(range(900, 1000))}
DOMAIN_OF = {i: d for d, ix in IDX.items() for i in ix}


def _count_de(sampler: PlanSampler, steps: range) -> tuple[int, int]:
    rows = [i for s in steps for i in sampler.batch(s)[0]]
    return sum(DOMAIN_OF[i] == "de" for i in rows), len(rows)


def test_frequencies_follow_plan_before_and_after_cooldown_switch():
    steps, bs = 200, 64
    plan = build_plan(BalanceConfig(strategy="cooldown"), SIZES, steps * bs)
    s = PlanSampler(plan, IDX, total_steps=steps, batch_size=bs, seed=0)
    assert [s.phase_at(t) for t in (0, 99, 100, 199, 250)] == [0, 0, 1, 1, 1]
    for k, rng in ((0, range(0, 100)), (1, range(100, 200))):
        hits, n = _count_de(s, rng)
        p = plan["phases"][k]["probs"]["de"]
        sd = math.sqrt(n * p * (1 - p))
        assert abs(hits - n * p) < 4 * sd, (k, hits, n * p, sd)
    p0, p1 = (ph["probs"]["de"] for ph in plan["phases"])
    assert p0 > 2 * p1  # the switch is visible: tau 5 -> 1 cuts the small domain's share


def test_rows_are_uniform_within_domain_and_never_leave_it():
    plan = build_plan(BalanceConfig(strategy="temperature", tau=1.0), {"a": 4, "b": 4}, 4000)
    idx = {"a": [10, 11, 12, 13], "b": [20, 21, 22, 23]}
    s = PlanSampler(plan, idx, total_steps=50, batch_size=80, seed=1)
    rows = [i for t in range(50) for i in s.batch(t)[0]]
    assert set(rows) == set(idx["a"]) | set(idx["b"])
    n, p = len(rows), 1 / 8
    for r in set(rows):
        assert abs(rows.count(r) - n * p) < 4 * math.sqrt(n * p * (1 - p))


def test_deterministic_per_step_so_resume_reproduces_batches():
    plan = build_plan(BalanceConfig(strategy="cooldown"), SIZES, 20 * 16)
    a = PlanSampler(plan, IDX, 20, 16, seed=3)
    run = [a.batch(t) for t in range(20)]
    resumed = PlanSampler(plan, IDX, 20, 16, seed=3)  # a fresh process after a kill at step 13
    assert [resumed.batch(t) for t in range(13, 20)] == run[13:]
    assert a.batch(5) == run[5] and a.batch(4) != a.batch(5)
    assert PlanSampler(plan, IDX, 20, 16, seed=4).batch(4) != a.batch(4)


def test_loss_weights_follow_domain_in_scalarization():
    plan = build_plan(BalanceConfig(strategy="scalarization", tau=5.0), SIZES, 640)
    s = PlanSampler(plan, IDX, 10, 64, seed=0)
    rows, w = s.batch(2)
    assert len(rows) == len(w) == 64
    for r, wi in zip(rows, w):
        assert wi == pytest.approx(plan["phases"][0]["loss_weights"][DOMAIN_OF[r]])
    assert len(set(w)) == 2  # both domains drawn, two different weights


def test_plan_domain_without_rows_is_an_error():
    plan = build_plan(BalanceConfig(), SIZES, 100)
    with pytest.raises(ValueError, match=r"\['de'\].*Fix"):
        PlanSampler(plan, {"en": IDX["en"], "de": []}, 10, 4, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        PlanSampler(plan, IDX, 10, 0, seed=0)


def test_fixed_mixture_uses_interleave_with_all_domains():
    ds = {"en": datasets.Dataset.from_dict({"x": [f"en{i}" for i in range(20)]}),
          "de": datasets.Dataset.from_dict({"x": ["de0", "de1"]})}
    mixed = fixed_mixture(ds, {"en": 0.5, "de": 0.5}, seed=0)
    xs = mixed["x"]
    assert {f"en{i}" for i in range(20)} <= set(xs) and {"de0", "de1"} <= set(xs)  # all_exhausted
    assert fixed_mixture(ds, {"en": 0.5, "de": 0.5}, seed=0)["x"] == xs
    with pytest.raises(ValueError, match="probs"):
        fixed_mixture(ds, {"en": 1.0}, seed=0)
