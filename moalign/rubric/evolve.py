"""Evolutionary refinement of the meta-rubric against preference labels (GA-style beam search).

A population of rubrics; children by crossover (criteria mixed by name between two parents)
and mutation: ADD (a criterion from the pool: the domain layers' candidate dimensions and one
auto criterion per feature with a random tier / direction / margin), DELETE (a non-fatal
criterion), MODIFY (a criterion's tier, direction, margin or ``relative`` flag, or a tier
weight). With an LLM backend (a judge with ``ask``), :func:`llm_edit` asks the model for
the edit instead (reflective edits on failures, as in GEPA), falling back to a parametric
edit when the proposal is unusable. Elitism keeps the best ``elite``; parents are drawn from
the better half.

Fitness = order-swap-consistent agreement with the train labels: the verdict of
:func:`judge_pair` (the PVR gate of ``gate_checks``, i.e. ``rubric.gate_checks``, then the judge
in both orders) counts 1 when it picks the labelled chosen response, ``tie_credit`` for a tie
(0.5 by default: a tie is half right, as a coin flip would be), 0 when it picks the rejected
one. Each generation's best (on train) is scored on val; the winner is the champion with the
best val agreement (ties: better train, then earlier generation, so the initial rubric wins
unless something beats it). Test agreement is computed once, at the end, for the initial and
the winning rubric, and nothing else reads the test split: its labels change no choice and no
train/val number. Agreement over no pairs is ``None`` (not 0: there is nothing to agree with).
Deterministic from the seed.

Departure from OpenRS: OpenRS evolves prose principles with an LLM; the offline default
evolves typed criteria whose parameters the ``rules`` judge reads.
"""

from __future__ import annotations

import difflib
import json
import random
from typing import Any, Callable, Iterable

from moalign.rubric.config import EvolveConfig
from moalign.rubric.features import FEATURES
from moalign.rubric.judges import judge_pair
from moalign.rubric.pvr import DEFAULT_GATE
from moalign.rubric.schema import Criterion, MetaRubric, dump_meta_rubric

TIERS = ["core", "important", "highlight"]
MARGINS = [0.0, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0]
SKIP_AUTO = {"answer_matches_reference"}  # the fatal correctness criterion is never auto-added
VALUE = {"A": 1.0, "B": 0.0}


def verdicts(judge: Any, rubric: MetaRubric, pairs: list[dict],
             gate_checks: Iterable[str] = DEFAULT_GATE) -> list[str]:
    """Verdict per pair with the chosen response as A ('A' = agrees with the label)."""
    gate = tuple(gate_checks)
    return [judge_pair(judge, p["prompt"], p["chosen"], p["rejected"], rubric, p.get("answer"), gate)["verdict"]
            for p in pairs]


def agreement(judge: Any, rubric: MetaRubric, pairs: list[dict], tie_credit: float = 0.5,
              gate_checks: Iterable[str] = DEFAULT_GATE) -> float | None:
    """Mean credit of the verdicts against the labels: 1 agree, ``tie_credit`` tie, 0 disagree; None without pairs."""
    if not pairs:
        return None
    return sum(VALUE.get(v, tie_credit) for v in verdicts(judge, rubric, pairs, gate_checks)) / len(pairs)


def candidate_pool(rubric: MetaRubric, rng: random.Random) -> list[Criterion]:
    """Criteria an ADD may insert: domain-layer candidates, then one random auto criterion per feature."""
    pool = list(rubric.candidates())
    for f in FEATURES.names():
        if f in SKIP_AUTO:
            continue
        d = rng.choice([1, -1])
        pool.append(Criterion(name=f"auto_{f}_{'more' if d > 0 else 'less'}", check=f, tier=rng.choice(TIERS),
                              direction=d, margin=rng.choice(MARGINS), relative=rng.random() < 0.25,
                              description=f"auto: {'more' if d > 0 else 'less'} {f} is better"))
    return pool


def _modify(c: Criterion, rng: random.Random) -> tuple[Criterion, str]:
    what = rng.choice(["tier", "direction", "margin", "relative"] if c.check else ["tier"])
    c = c.model_copy()
    if what == "tier":
        c.tier = rng.choice([t for t in TIERS if t != c.tier])
    elif what == "direction":
        c.direction = -c.direction
    elif what == "margin":
        c.margin = rng.choice([m for m in MARGINS if m != c.margin])
    else:
        c.relative = not c.relative
        c.margin = rng.choice([0.0, 0.1, 0.25, 0.5]) if c.relative else rng.choice(MARGINS)
    return c, f"MODIFY {c.name}.{what} -> {getattr(c, what)}"


def mutate(rubric: MetaRubric, rng: random.Random, cfg: EvolveConfig | None = None) -> tuple[MetaRubric, str]:
    """One ADD / DELETE / MODIFY edit of a copy of ``rubric``; returns (child, description)."""
    cfg = cfg or EvolveConfig()
    r = rubric.model_copy(deep=True)
    crits = list(r.criteria)
    mutable = [i for i, c in enumerate(crits) if c.tier != "fatal"]
    op = rng.choices(["ADD", "DELETE", "MODIFY"], [cfg.add_rate, cfg.delete_rate, cfg.modify_rate])[0]
    names = {c.name for c in crits}
    pool = [c for c in candidate_pool(r, rng) if c.name not in names]
    if op == "DELETE" and len(mutable) > 1:
        i = rng.choice(mutable)
        desc = f"DELETE {crits.pop(i).name}"
    elif op == "MODIFY" and mutable and rng.random() < 0.85:
        i = rng.choice(mutable)
        crits[i], desc = _modify(crits[i], rng)
    elif op == "MODIFY" or not pool:
        tier = rng.choice(TIERS)
        w = dict(r.tier_weights)
        w[tier] = round(float(r.weights()[tier]) * rng.choice([0.5, 2.0]), 4)
        r.tier_weights = w
        desc = f"MODIFY tier_weights.{tier} -> {w[tier]}"
    else:
        c = rng.choice(pool)
        crits.append(c)
        desc = f"ADD {c.name} ({c.check}, {c.tier}, direction {c.direction}, margin {c.margin})"
    r.criteria = crits
    return r, desc


def crossover(a: MetaRubric, b: MetaRubric, rng: random.Random) -> MetaRubric:
    """Child of ``a``: shared criteria taken from either parent, b's extra criteria kept with p=0.5."""
    by_name = {c.name: c for c in b.criteria}
    crits = []
    for c in a.criteria:
        other = by_name.pop(c.name, None)
        crits.append(other if other is not None and rng.random() < 0.5 else c)
    crits += [c for c in by_name.values() if rng.random() < 0.5]
    child = a.model_copy(deep=True)
    child.criteria = crits
    if rng.random() < 0.5:
        child.tier_weights = dict(b.tier_weights)
    return child


def llm_edit(judge: Any, rubric: MetaRubric, failures: list[dict]) -> tuple[MetaRubric, str] | None:
    """Ask an LLM backend for ONE criteria edit (JSON) given failing pairs; None when unusable."""
    from moalign.rubric.llm import extract_json

    shown = [{k: p.get(k) for k in ("prompt", "chosen", "rejected", "answer")} for p in failures[:5]]
    prompt = ("This judging rubric (YAML) disagreed with human preference labels on the pairs below "
              "(chosen is preferred).\n" + dump_meta_rubric(rubric) + "\nFailures: " + json.dumps(shown)[:6000] +
              '\nPropose ONE edit as JSON: {"op": "ADD"|"DELETE"|"MODIFY", "criterion": {"name": ..., '
              '"description": ..., "tier": "core"|"important"|"highlight", "check": null or a feature name, '
              '"direction": 1 or -1, "margin": number}}')
    try:
        data = judge.ask(prompt, parse=extract_json)
        crit = Criterion.model_validate(data["criterion"])
        op = str(data["op"]).upper()
        if crit.tier == "fatal" or op not in ("ADD", "DELETE", "MODIFY"):
            return None
        r = rubric.model_copy(deep=True)
        keep = [c for c in r.criteria if c.name != crit.name]
        r.criteria = keep if op == "DELETE" else keep + [crit]
        return r, f"LLM {op} {crit.name}"
    except Exception:  # noqa: BLE001 - an unusable proposal is skipped (a parametric edit is used instead)
        return None


def _key(r: MetaRubric) -> str:
    return json.dumps([r.tier_weights, [c.model_dump() for c in r.criteria]], sort_keys=True, default=str)


def evolve(rubric: MetaRubric, judge: Any, splits: dict[str, list[dict]], cfg: EvolveConfig, seed: int = 0,
           on_generation: Callable[[int, dict[str, float]], None] | None = None,
           gate_checks: Iterable[str] = DEFAULT_GATE) -> dict[str, Any]:
    """Run the GA. Returns ``{"rubric", "history", "agreement", "diff", "edits"}``.

    ``agreement`` has ``initial/{train,val,test}`` and ``refined/{train,val,test}`` (test None
    when the test split is empty); ``history`` one row per generation (``fitness/best``,
    ``fitness/mean``, ``fitness/val_of_best``); ``edits`` the lineage of the winner; ``diff`` a
    unified diff of the YAML dumps. ``gate_checks``: the PVR checks that decide a pair before
    the judge (:func:`moalign.rubric.pvr.pvr_gate`).
    """
    empty = [s for s in ("train", "val") if not splits.get(s)]
    if empty:
        raise ValueError(f"evolve: the {' and '.join(empty)} split(s) have no pairs. "
                         "Fix: raise rubric.n_prompts or rubric.samples_per_prompt")
    rng = random.Random(cfg.seed if cfg.seed is not None else seed)
    gate = tuple(gate_checks)
    cache: dict[tuple[str, str], float | None] = {}

    def fit(r: MetaRubric, split: str) -> Any:
        k = (_key(r), split)
        if k not in cache:
            cache[k] = agreement(judge, r, splits.get(split, []), cfg.tie_credit, gate)
        return cache[k]

    llm = judge if hasattr(judge, "ask") else None
    pop: list[tuple[float, MetaRubric, list[str]]] = [(fit(rubric, "train"), rubric, [])]
    while len(pop) < cfg.population:
        child, desc = mutate(rubric, rng, cfg)
        pop.append((fit(child, "train"), child, [desc]))
    history: list[dict[str, float]] = []
    champions: list[tuple[float, float, int, MetaRubric, list[str]]] = []
    for gen in range(cfg.generations + 1):
        pop.sort(key=lambda t: -t[0])  # stable: earlier (older) individuals first among equals
        best = pop[0]
        champions.append((fit(best[1], "val"), best[0], gen, best[1], best[2]))
        stats = {"fitness/best": best[0], "fitness/mean": sum(t[0] for t in pop) / len(pop),
                 "fitness/val_of_best": champions[-1][0]}
        history.append({"generation": gen, **stats})
        if on_generation:
            on_generation(gen, stats)
        if gen == cfg.generations:
            break
        nxt = pop[: cfg.elite]
        parents = pop[: max(2, len(pop) // 2)]
        while len(nxt) < cfg.population:
            a, b = rng.sample(parents, 2)
            child, lineage = a[1], list(a[2])
            if rng.random() < cfg.crossover_rate:
                child, lineage = crossover(a[1], b[1], rng), lineage + [f"CROSSOVER with {len(b[2])}-edit parent"]
            if rng.random() < cfg.mutation_rate:
                edited = None
                if llm is not None:
                    bad = [p for p, v in zip(splits["train"], verdicts(judge, child, splits["train"][:40], gate))
                           if v != "A"]
                    edited = llm_edit(llm, child, bad)
                child, desc = edited if edited is not None else mutate(child, rng, cfg)
                lineage = lineage + [desc]
            nxt.append((fit(child, "train"), child, lineage))
        pop = nxt
    champions.sort(key=lambda t: (-t[0], -t[1], t[2]))
    _, _, _, winner, edits = champions[0]
    winner = winner.model_copy(deep=True)
    if edits:
        winner.version = f"{rubric.version}+evolved"
    before, after = dump_meta_rubric(rubric), dump_meta_rubric(winner)
    agree = {f"{tag}/{s}": fit(r, s) for tag, r in (("initial", rubric), ("refined", winner))
             for s in ("train", "val", "test")}
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), "initial.yaml",
                                        "refined.yaml"))
    return {"rubric": winner, "history": history, "agreement": agree, "diff": diff, "edits": edits}
