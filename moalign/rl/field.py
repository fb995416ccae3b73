"""The field's multi-reward strategies beside the paper's (registered in ``moalign.rl.weighting.WEIGHTINGS``).

Each is a weighting strategy whose name selects how the per-objective rewards become one advantage
(:meth:`Weighting.aggregation`, overriding ``train.aggregation``), so the contest compares them under
one trainer, one protocol and the same seeds. Weights c_k are the strategy's fixed weights
(``train.weighting.preset`` / ``weights``), except ``paretopo``'s first stage.

- ``gdpo``: TRL's ``normalize_then_sum`` whatever ``train.aggregation`` says - each reward normalised
  within its group, weighted sum, then normalised over the batch. This is what TRL, verl, NeMo-RL and
  ms-swift ship as GDPO; with this project's default aggregation every ``fixed-*`` strategy already is
  GDPO, so the contest's fixed rows are its GDPO rows.
- ``mogrpo`` (MO-GRPO, Ichihara et al. 2025, arXiv 2509.22047): A = sum_k c_k (r_k - mu_k) / sd_k with
  the group's mean and std of each reward: every reward is weighted by the inverse of its spread, so
  each contributes evenly whatever its scale; no batch step (our ``normalize_then_sum_unscaled``).
- ``dvao`` (after DVAO, Jiang et al. 2026, arXiv 2605.25604): A = sum_k lambda_k (r_k - mu_k) / sd_k
  with lambda_k = c_k sd_k / sum_j c_j sd_j per group (``estimators.variance_adaptive``): a group's
  objectives are weighted by their share of its spread, up-weighting the objectives that carry signal
  in that group and giving none to one without spread; the advantage stays bounded (sqrt(G - 1)).
  Departure: the abstract (all that could be read here) fixes "weights from each objective's
  within-group reward variance, up-weighting stronger signals, bounded advantages"; the exact
  weight function of the paper may differ (one secondary summary reads it as inverse variance, which
  would give the most weight to the objective with the least signal, the opposite of the abstract).
- ``pareto`` (ParetoPO's stage 2, Li et al., ICML 2026, arXiv 2606.16111): the rollouts of a group are
  sorted into non-dominated fronts over the objectives with c_k > 0 (moocore.pareto_rank); score =
  -front index, group-normalised by ``train.estimator`` (``estimators.pareto_rank_scores``). A
  non-dominated rollout gets a positive advantage whatever the scale of its rewards.
- ``paretopo``: both stages - hypervolume-guided weights (moalign/rl/hv_weighting.py, the
  project's calibrated rule) for the first ``train.weighting.pareto_switch`` fraction of the steps,
  then Pareto-ranking advantages. Departure: ParetoPO's stage-1 scalarisation follows global front
  progress with its own schedule; we reuse this project's hypervolume rule and a fixed switch.
"""

from __future__ import annotations

from moalign.rl.hv_weighting import HypervolumeGuided
from moalign.rl.weighting import WEIGHTINGS, Fixed


class _Aggregating(Fixed):
    """Fixed weights, combined by ``AGGREGATION`` instead of ``train.aggregation``."""

    AGGREGATION = ""

    def aggregation(self, step: int, max_steps: int) -> str | None:
        return self.AGGREGATION


@WEIGHTINGS.register("gdpo")
class GDPO(_Aggregating):
    """GDPO = TRL's normalize_then_sum (module docstring)."""

    AGGREGATION = "normalize_then_sum"


@WEIGHTINGS.register("mogrpo")
class MOGRPO(_Aggregating):
    """MO-GRPO: each reward weighted by the inverse of its group spread (module docstring)."""

    AGGREGATION = "normalize_then_sum_unscaled"


@WEIGHTINGS.register("dvao")
class DVAO(_Aggregating):
    """Variance-adaptive combination after DVAO (module docstring)."""

    AGGREGATION = "variance_adaptive"


@WEIGHTINGS.register("pareto")
class ParetoRank(_Aggregating):
    """ParetoPO's stage 2 alone: Pareto-ranking advantages (module docstring)."""

    AGGREGATION = "pareto_rank"


@WEIGHTINGS.register("paretopo")
class ParetoPO(HypervolumeGuided):
    """ParetoPO's two stages: hypervolume-guided weights, then Pareto ranks after ``pareto_switch``."""

    def aggregation(self, step: int, max_steps: int) -> str | None:
        return "pareto_rank" if step >= self.cfg.pareto_switch * max_steps else None
