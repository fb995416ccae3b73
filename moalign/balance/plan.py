"""Balance core: sampling plans for imbalanced multi-domain data ("Upsample or Upweight?", 2024).

K domains of sizes n_i. Strategies (registry ``BALANCERS``):

- ``temperature`` (TS): sample domain i with p_i(tau) = n_i^(1/tau) / sum_j n_j^(1/tau); weights 1.
- ``scalarization`` (SC): sample proportionally, p_i(1), and weight domain i's loss by
  w_i = p_i(tau) / p_i(1). Theorem 1: same full-batch gradient as TS with the same tau.
- ``unimax``: domains ascending by size; b = B_left / domains_left, U_i = min(b, max_epochs * n_i),
  B_left -= U_i; p_i = U_i / sum_j U_j.
- ``cooldown``: a step schedule of TS phases; default tau = 5 for the first half, then tau = 1.

F(tau) = sum_i p_i(tau)^2 / p_i(1) (Theorem 2) is the factor by which SC's stochastic-gradient
variance exceeds TS's at equal tau; F >= 1 and it grows with tau.

Where this departs from the paper, and why:

- UniMax's budget B counts *examples*, not characters/tokens: examples are what the sampler
  draws and our generated rows have near-equal lengths. The budget only shapes the mixture; how
  many examples SFT really draws is ``total_samples`` (``sft.max_steps * sft.batch_size``), and
  ``expected_epochs`` is computed from that.
- Cooldown phases start at *fractions* of the SFT steps (the paper uses absolute iterations), so
  "first half / second half" survives a change of ``sft.max_steps``.
- ``F_tau`` in the plan: for temperature and scalarization it is F(tau) of ``balance.tau``; for
  UniMax it is the same formula with the UniMax mixture in place of p(tau); for cooldown it is a
  list with one F per phase (the variance scalarization would pay in that phase). Every plan also
  carries ``F_tau_mean``, the phase-duration-weighted mean, a single number for metrics.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from pydantic import ConfigDict, Field, field_validator

from moalign.registry import Registry
from moalign.schema import StrictModel

Strategy = Callable[["BalanceConfig", dict[str, int]], list[dict[str, Any]]]
BALANCERS: Registry[Strategy] = Registry("balance strategy")


def _positive(v: float, key: str, example: str) -> float:
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{key} must be a finite number > 0. Fix: set {key} to e.g. {example}")
    return v


class PhaseConfig(StrictModel):
    """One cooldown phase: from ``start`` (fraction of SFT steps) on, sample with p(tau)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    start: float
    """Fraction of the SFT steps at which the phase begins, in [0, 1)."""
    tau: float
    """Sampling temperature of the phase (> 0; 1 = proportional, large = uniform)."""

    @field_validator("start")
    @classmethod
    def _start(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError("balance.schedule: a phase start is a fraction of the SFT steps in [0, 1). "
                             "Fix: e.g. {start: 0.5, tau: 1.0} for the second half")
        return v

    @field_validator("tau")
    @classmethod
    def _tau(cls, v: float) -> float:
        return _positive(v, "balance.schedule[].tau", "1.0")


def _default_schedule() -> list[PhaseConfig]:
    return [PhaseConfig(start=0.0, tau=5.0), PhaseConfig(start=0.5, tau=1.0)]


class BalanceConfig(StrictModel):
    """balance: how SFT samples (and weights) the domains of the training data."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    strategy: str = "cooldown"
    """One of the ``BALANCERS``: temperature | scalarization | unimax | cooldown."""
    tau: float = 5.0
    """Temperature of ``temperature`` and ``scalarization`` (> 0; 1 = proportional, large = uniform)."""
    unimax_budget: int = 20000
    """UniMax: examples to spread over the domains (>= number of domains; e.g. max_steps * batch_size)."""
    unimax_max_epochs: float = 4.0
    """UniMax: cap on passes over any one domain (> 0)."""
    schedule: list[PhaseConfig] = Field(default_factory=_default_schedule)
    """Cooldown phases: first start 0, starts strictly increasing, each < 1."""

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        if v not in BALANCERS:
            raise ValueError(f"unknown balance strategy {v!r}; valid names: {', '.join(BALANCERS.names())}. "
                             "Fix: set balance.strategy to one of them")
        return v

    @field_validator("tau")
    @classmethod
    def _tau(cls, v: float) -> float:
        return _positive(v, "balance.tau", "5.0")

    @field_validator("unimax_max_epochs")
    @classmethod
    def _max_epochs(cls, v: float) -> float:
        return _positive(v, "balance.unimax_max_epochs", "4.0")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: list[PhaseConfig]) -> list[PhaseConfig]:
        starts = [p.start for p in v]
        if not starts or starts[0] != 0.0:
            raise ValueError(f"balance.schedule must begin with a phase at start 0.0 (starts: {starts}). "
                             "Fix: put {start: 0.0, tau: 5.0} first")
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"balance.schedule starts {starts} are not strictly increasing. "
                             "Fix: sort the phases by start and drop duplicates")
        return v


def _check_sizes(sizes: dict[str, int]) -> None:
    if not sizes:
        raise ValueError("the training data has no domains. Fix: rerun prepare with a non-empty source")
    for d, n in sizes.items():
        if n <= 0:
            raise ValueError(f"domain {d!r} has no rows in the training data (size {n}). "
                             "Fix: remove the domain from prepare or regenerate the data")


def temperature_probs(sizes: dict[str, int], tau: float) -> dict[str, float]:
    """p_i(tau) = n_i^(1/tau) / sum_j n_j^(1/tau), as softmax(log n_i / tau) in log space."""
    _check_sizes(sizes)
    _positive(tau, "tau", "5.0")
    logits = {d: math.log(n) / tau for d, n in sizes.items()}
    m = max(logits.values())
    log_z = m + math.log(sum(math.exp(v - m) for v in logits.values()))
    return {d: math.exp(v - log_z) for d, v in logits.items()}


def scalarization_weights(sizes: dict[str, int], tau: float) -> dict[str, float]:
    """w_i = p_i(tau) / p_i(1): loss weights that make proportional sampling match p(tau) (Theorem 1)."""
    pt, p1 = temperature_probs(sizes, tau), temperature_probs(sizes, 1.0)
    return {d: pt[d] / p1[d] for d in sizes}


def _f(q: dict[str, float], p1: dict[str, float]) -> float:
    return sum(q[d] ** 2 / p1[d] for d in q)


def variance_factor(sizes: dict[str, int], tau: float) -> float:
    """F(tau) = sum_i p_i(tau)^2 / p_i(1) (Theorem 2); >= 1 by Cauchy-Schwarz, = 1 at tau = 1."""
    return _f(temperature_probs(sizes, tau), temperature_probs(sizes, 1.0))


def unimax_allocation(sizes: dict[str, int], budget: float, max_epochs: float) -> dict[str, float]:
    """UniMax U_i: ascending by n_i, b = B_left / domains_left, U_i = min(b, max_epochs * n_i)."""
    _check_sizes(sizes)
    if budget < len(sizes):
        raise ValueError(f"balance.unimax_budget = {budget} is below the number of domains ({len(sizes)}). "
                         f"Fix: set balance.unimax_budget >= {len(sizes)} (e.g. sft.max_steps * sft.batch_size)")
    _positive(max_epochs, "balance.unimax_max_epochs", "4.0")
    left, alloc = float(budget), {}
    order = sorted(sizes, key=lambda d: (sizes[d], d))  # ties broken by name: deterministic
    for k, d in enumerate(order):
        alloc[d] = min(left / (len(order) - k), max_epochs * sizes[d])
        left -= alloc[d]
    return {d: alloc[d] for d in sizes}


def unimax_probs(sizes: dict[str, int], budget: float, max_epochs: float) -> dict[str, float]:
    """UniMax p_i = U_i / sum_j U_j (see :func:`unimax_allocation`)."""
    alloc = unimax_allocation(sizes, budget, max_epochs)
    total = sum(alloc.values())
    return {d: u / total for d, u in alloc.items()}


def _phase(start: float, tau: float | None, probs: dict[str, float],
           weights: dict[str, float] | None = None) -> dict[str, Any]:
    return {"start": start, "tau": tau, "probs": probs, "loss_weights": weights or {d: 1.0 for d in probs}}


@BALANCERS.register("temperature")
def _temperature(cfg: BalanceConfig, sizes: dict[str, int]) -> list[dict[str, Any]]:
    return [_phase(0.0, cfg.tau, temperature_probs(sizes, cfg.tau))]


@BALANCERS.register("scalarization")
def _scalarization(cfg: BalanceConfig, sizes: dict[str, int]) -> list[dict[str, Any]]:
    return [_phase(0.0, cfg.tau, temperature_probs(sizes, 1.0), scalarization_weights(sizes, cfg.tau))]


@BALANCERS.register("unimax")
def _unimax(cfg: BalanceConfig, sizes: dict[str, int]) -> list[dict[str, Any]]:
    return [_phase(0.0, None, unimax_probs(sizes, cfg.unimax_budget, cfg.unimax_max_epochs))]


@BALANCERS.register("cooldown")
def _cooldown(cfg: BalanceConfig, sizes: dict[str, int]) -> list[dict[str, Any]]:
    return [_phase(p.start, p.tau, temperature_probs(sizes, p.tau)) for p in cfg.schedule]


def build_plan(cfg: BalanceConfig, sizes: dict[str, int], total_samples: int) -> dict[str, Any]:
    """The JSON plan the SFT sampler follows.

    Keys: ``strategy``, ``domains`` (sorted), ``sizes``, ``total_samples``, ``phases`` (each
    ``start``, ``tau``, ``probs``, ``loss_weights``), ``durations`` (fraction of SFT per phase),
    ``expected_epochs`` (d -> sum_k duration_k * total_samples * p_k(d) / n_d), ``F_tau`` (scalar,
    or one per phase for cooldown; see the module docstring) and ``F_tau_mean``.
    """
    _check_sizes(sizes)
    if total_samples < 1:
        raise ValueError(f"balance: total_samples = {total_samples} must be >= 1. "
                         "Fix: set sft.max_steps and sft.batch_size >= 1")
    sizes = {d: int(sizes[d]) for d in sorted(sizes)}
    phases = BALANCERS.get(cfg.strategy)(cfg, sizes)
    starts = [p["start"] for p in phases] + [1.0]
    durations = [b - a for a, b in zip(starts, starts[1:])]
    p1 = temperature_probs(sizes, 1.0)
    # effective mixture q_i = probs_i * loss_weight_i, so F(q) = F(tau) for TS and SC alike
    f = [_f({d: p["probs"][d] * p["loss_weights"][d] for d in sizes}, p1) for p in phases]
    epochs = {d: sum(t * total_samples * p["probs"][d] for t, p in zip(durations, phases)) / n
              for d, n in sizes.items()}
    plan: dict[str, Any] = {
        "strategy": cfg.strategy, "domains": list(sizes), "sizes": sizes, "total_samples": int(total_samples),
        "phases": phases, "durations": durations, "expected_epochs": epochs,
        "F_tau": f if cfg.strategy == "cooldown" else f[0],
        "F_tau_mean": sum(t * x for t, x in zip(durations, f)),
    }
    if cfg.strategy == "unimax":
        plan["unimax"] = {"budget": cfg.unimax_budget, "max_epochs": cfg.unimax_max_epochs,
                          "allocation": unimax_allocation(sizes, cfg.unimax_budget, cfg.unimax_max_epochs)}
    return plan
