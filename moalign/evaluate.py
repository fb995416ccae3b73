"""Evaluate core: objective vectors of policies on held-out data, and the Pareto report.

Every objective is maximised in [0, 1]: accuracy and clarity (and rubric) are mean rewards;
conciseness is ``1 - length / max_new_tokens`` (the paper reports raw length, minimised; we
flip it so a single maximisation convention serves moocore, the dominance table and the
plots). The mean length in tokens is reported beside it.

Two measurements of a policy's point (:func:`score_policy`):

- ``greedy``: one greedy decode per prompt (the paper's validation). Deterministic, but it only
  sees the policy's *mode*: a policy that moves 30% of its mass from worked to terse answers
  keeps the same greedy output until the argmax flips, so greedy points move in jumps or not at
  all (on the old default world greedy conciseness moved 0.527-0.534 over a whole RL run).
- ``sampled`` (default): ``samples`` decodes per prompt at the rollout temperature, i.e. the
  policy's *expected* rewards under the distribution RL actually trains. Each prompt's mean over
  its samples is one observation; the point is the mean over prompts and its standard error is
  sd/sqrt(n_prompts) (prompt-clustered, so samples of one prompt are not counted as independent).
  The README's results section compares the two on the default run (separation of the presets
  in standard errors) and the Pareto report uses the sampled one.

Reference point (``reference: origin``, default): the worst value of every objective, 0. Every
policy scoring above 0 everywhere counts, and trading one objective for another changes the
hypervolume smoothly. The previous default (SFT point - 0.05) gave 0 to every policy that fell
below SFT in any one coordinate, i.e. exactly the policies that trade, so the measure went blind
where the comparison matters. ``reference: sft`` (with ``ref_margin``) keeps that option.

Degenerate fronts (:func:`informative_reference`): an objective with the same value for every
policy (clarity 0 everywhere when the answers are one-line solutions) carries no trade-off, and
with the origin reference it makes every hypervolume 0, so nothing can be compared. Rule: a
coordinate in which no policy exceeds the reference gets the reference (lowest policy value -
``ref_margin``); a constant objective then multiplies every hypervolume by the same factor and
the hypervolume ranks policies on the others. This applies to the computed references (``origin``,
``sft``); explicit coordinates are the user's decision and are kept. Either way it is said in one
warning and recorded in ``metrics/evaluate.json`` (``degenerate``).

Uncertainty: ``hypervolume_ci`` is a percentile bootstrap over test prompts (resample prompts
with replacement, recompute the point and its hypervolume).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from moalign.data import rows_per_domain
from moalign.generation import BACKENDS
from moalign.pareto import dominance_table, excluded_by_reference, hypervolume, non_dominated, steps_to_dominance
from moalign.config import EvaluateConfig  # noqa: F401 - torch-free home: moalign/config.py
from moalign.text import enumerated_lines, format_prompt


def pick_rows(rows: list[dict], per_domain: int) -> list[dict]:
    """Test rows to score (``per_domain`` per domain); an empty test split is an error."""
    out = rows_per_domain(rows, per_domain)
    if not out:
        raise ValueError("the test split is empty. Fix: regenerate data/prepared with test rows (prepare stage)")
    return out


def score_policy(model, tok, rows: list[dict], objectives: list[str], fns: dict[str, Callable],
                 max_new_tokens: int, backend: str = "fast", samples: int = 0, temperature: float = 1.0,
                 seed: int = 0) -> dict[str, object]:
    """Objective means overall and per domain, mean length and standard errors, for one policy.

    ``samples`` = 0: one greedy decode per prompt; ``samples`` = n >= 1: n sampled decodes per
    prompt at ``temperature`` (seeded by ``seed``), averaged per prompt first. ``per_prompt`` is
    the (n_prompts, K) matrix of per-prompt means (the bootstrap resamples its rows); ``se`` the
    prompt-clustered standard error of each coordinate. The train stage's validation points come
    from here too, so validation and evaluation share one definition of the objective vector.
    """
    n = max(samples, 1)
    policy_prompts = [format_prompt(r["question"], tok) for r in rows]  # chat-templated when tok has a template
    gens = BACKENDS.get(backend)(model, tok, [p for p in policy_prompts for _ in range(n)], max_new_tokens,
                                 samples > 0, temperature, 1.0, seed=seed if samples > 0 else None)
    rep = [r for r in rows for _ in range(n)]
    prompts = [format_prompt(r["question"]) for r in rows]  # reward context (the judge's query): the raw format
    cols = {"answer": [r["answer"] for r in rep], "prompts": [p for p in prompts for _ in range(n)],
            "domain": [r["domain"] for r in rep], "completion_lengths": gens.lengths, "group_size": n}
    lengths = np.asarray(gens.lengths, dtype=float).reshape(len(rows), n).mean(1)  # (P,)
    per: dict[str, np.ndarray] = {}  # objective -> (P,) per-prompt means
    raw: dict[str, np.ndarray] = {}  # objective -> (P * n,) per-sample rewards
    for o in objectives:
        if o.startswith("conciseness"):
            per[o] = 1.0 - lengths / max_new_tokens
        else:
            raw[o] = np.asarray(fns[o](gens.texts, **cols), dtype=float)
            per[o] = raw[o].reshape(len(rows), n).mean(1)
    doms = np.asarray([r["domain"] for r in rows])
    P = len(rows)
    se = [float(per[o].std(ddof=1) / np.sqrt(P)) if P > 1 else 0.0 for o in objectives]
    out: dict[str, object] = {
        "point": [float(per[o].mean()) for o in objectives], "se": se, "length": float(lengths.mean()),
        "length_se": float(lengths.std(ddof=1) / np.sqrt(P)) if P > 1 else 0.0,
        "per_prompt": np.stack([per[o] for o in objectives], 1),  # (P, K)
        "decoding": "sampled" if samples > 0 else "greedy", "samples": n,
    }
    out["domains"] = {
        d: {**{o: float(per[o][doms == d].mean()) for o in objectives}, "length": float(lengths[doms == d].mean())}
        for d in sorted(set(doms))
    }
    out["styles"] = style_shares(gens.texts, raw.get("accuracy"))
    out["examples"] = [{"prompt": r["question"], "completion": t} for r, t in list(zip(rep, gens.texts))[: 5 * n : n]]
    return out


def style_shares(texts: list[str], accuracy: np.ndarray | None = None) -> dict[str, float]:
    """Shares of response styles by numbered lines: none (terse), 1-2 (outline), >= 3 (worked),
    and with per-sample ``accuracy`` each style's accuracy (``<style>_accuracy``, NaN if unused).

    Descriptive only: what RL moved (the style mix) vs what SFT taught (accuracy within a style);
    the styles are the default world's three SFT styles, moalign/data/arith.py.
    """
    n = np.asarray([enumerated_lines(t) for t in texts])
    if not len(n):
        return {"terse": 0.0, "outline": 0.0, "worked": 0.0}
    masks = {"terse": n == 0, "outline": (n >= 1) & (n <= 2), "worked": n >= 3}
    out = {k: float(m.mean()) for k, m in masks.items()}
    if accuracy is not None:
        out |= {f"{k}_accuracy": float(accuracy[m].mean()) if m.any() else float("nan") for k, m in masks.items()}
    return out


def bootstrap_hv_ci(per_prompt: np.ndarray, ref: list[float], n_boot: int, seed: int = 0,
                    level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the hypervolume of the mean point, resampling prompts (rows)."""
    if n_boot <= 0 or len(per_prompt) < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_prompt), size=(n_boot, len(per_prompt)))
    means = per_prompt[idx].mean(1)  # (n_boot, K)
    hv = np.array([hypervolume(m[None], np.asarray(ref, dtype=float)) for m in means])
    lo, hi = np.quantile(hv, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def weight_shift(weights: list[list[float]]) -> float:
    """max_k |w_final[k] - w_initial[k]| of a weight trajectory (steps x K); 0 when empty."""
    if not weights:
        return 0.0
    w = np.asarray(weights, dtype=float)
    return float(np.abs(w[-1] - w[0]).max())


def resolve_reference(reference, ref_margin: float, sft_point: list[float], k: int) -> list[float]:
    """The hypervolume reference from ``evaluate.reference`` (see module docstring)."""
    if reference == "origin":
        return [0.0] * k
    if reference == "sft":
        return [v - ref_margin for v in sft_point]
    if len(reference) != k:
        raise ValueError(f"evaluate.reference has {len(reference)} coordinates but there are {k} objectives. "
                         "Fix: one value per objective in train.objectives, or 'origin'")
    return [float(v) for v in reference]


def informative_reference(points: np.ndarray, ref: list[float], margin: float,
                          objectives: list[str], adjust: bool = True) -> tuple[list[float], dict[str, object]]:
    """(reference, report): lower each coordinate no point exceeds to (min - margin); name constant objectives.

    ``points`` (N, K) are the policies' points (all maximised). The report is empty when nothing was
    degenerate; else ``constant`` (objectives equal for every policy) and ``reference_lowered``
    ({objective: new reference value}), or with ``adjust=False`` (a reference the user gave as
    coordinates: kept as given) ``never_above_reference`` (objectives no policy exceeds).
    """
    pts = np.asarray(points, dtype=float)
    out = [float(r) for r in ref]
    report: dict[str, object] = {}
    if len(pts) > 1:
        const = [o for k, o in enumerate(objectives) if np.ptp(pts[:, k]) <= 1e-12]
        if const:
            report["constant"] = const
    lowered = {}
    for k, o in enumerate(objectives):
        if not (pts[:, k] > out[k]).any():
            lowered[o] = float(pts[:, k].min() - margin)
            if adjust:
                out[k] = lowered[o]
    if lowered:
        report["reference_lowered" if adjust else "never_above_reference"] = lowered if adjust else list(lowered)
    return out, report


def resolve_baseline(baseline: str, hv: dict[str, float]) -> str | None:
    """``best_fixed`` -> the fixed-* policy with the largest hypervolume; else the name itself."""
    if baseline != "best_fixed":
        return baseline
    fixed = [n for n in hv if n == "fixed" or n.startswith("fixed-")]
    return max(fixed, key=lambda n: hv[n]) if fixed else None


def pareto_report(finals: dict[str, list[float]], curves: dict[str, list[tuple[int, list[float]]]],
                  ref: list[float], baseline: str, tol: float) -> dict[str, object]:
    """Non-dominated set, per-policy hypervolume, dominance table and steps-to-dominance."""
    names = list(finals)
    pts = np.asarray([finals[n] for n in names])
    ref_a = np.asarray(ref, dtype=float)
    nd = non_dominated(pts)
    excluded = excluded_by_reference(pts, ref_a)
    report: dict[str, object] = {
        "reference": list(map(float, ref_a)),
        "non_dominated": [n for n, m in zip(names, nd) if m],
        "excluded_by_reference": [n for n, m in zip(names, excluded) if m],
        "hypervolume": {n: float(hypervolume(pts[i : i + 1], ref_a)) for i, n in enumerate(names)},
        "hypervolume_front": float(hypervolume(pts, ref_a)),
        "dominance": dominance_table(names, pts),
    }
    report["baseline"] = baseline = resolve_baseline(baseline, report["hypervolume"])
    target = finals.get(baseline) if baseline else None
    report["steps_to_dominance"] = {
        n: (steps_to_dominance(c, np.asarray(target), tol=tol) if target is not None else None)
        for n, c in curves.items()
    }
    report["hypervolume_curve"] = {
        n: [(s, float(hypervolume(np.asarray([p]), ref_a))) for s, p in c] for n, c in curves.items()
    }
    return report
