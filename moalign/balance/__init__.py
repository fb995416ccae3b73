"""balance: temperature sampling, scalarization, UniMax and Cooldown plans, and the plan sampler."""

from moalign.balance.plan import (
    BALANCERS,
    BalanceConfig,
    PhaseConfig,
    build_plan,
    scalarization_weights,
    temperature_probs,
    unimax_allocation,
    unimax_probs,
    variance_factor,
)
from moalign.balance.report import plot_plan
from moalign.balance.sampler import PlanSampler, fixed_mixture

__all__ = [
    "BALANCERS",
    "BalanceConfig",
    "PhaseConfig",
    "PlanSampler",
    "build_plan",
    "fixed_mixture",
    "plot_plan",
    "scalarization_weights",
    "temperature_probs",
    "unimax_allocation",
    "unimax_probs",
    "variance_factor",
]
