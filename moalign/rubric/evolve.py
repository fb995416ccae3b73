"""Evolutionary refinement of the meta-rubric against preference labels (GA-style search).

Population of rubrics; children by crossover (criteria mixed by name between two parents) and
mutation: ADD (a criterion from the candidate pool: the domain layer's dimensions and one per
feature, random tier/direction), DELETE (a non-fatal criterion), MODIFY (tier, direction or
margin). With an LLM judge backend, :func:`llm_edit` asks the model for an edit instead
(reflective edits, as GEPA); otherwise edits are parametric. Elitism keeps the best
``elite``. Fitness = order-swap-consistent agreement with the train labels: a verdict for
the chosen response counts 1, a tie ``tie_credit`` (0.5 by default), a loss 0. The winner is
selected on val among every generation's best; test is reported once, at the end.
"""

from __future__ import annotations

import difflib
import json
import random
from typing import Any, Callable

from moalign.rubric.config import EvolveConfig
from moalign.rubric.features import FEATURES
from moalign.rubric.judges import judge_pair
from moalign.rubric.schema import Criterion, MetaRubric, dump_meta_rubric

TIERS = ["core", "important", "highlight"]


def agreement(judge, rubric: MetaRubric, pairs: list[dict], tie_credit: float) -> float:
    """Mean credit of the judge's verdicts against the labels (chosen is the preferred one)."""
    if not pairs:
        return 0.0
    total = 0.0
    for p in pairs:
        v = judge_pair(judge, p["prompt"], p["chosen"], p["rejected"], rubric, p.get("answer"))["verdict"]
        total += 1.0 if v == "A" else tie_credit if v == "tie" else 0.0
    return total / len(pairs)


def per_pair(judge, rubric: MetaRubric, pairs: list[dict]) -> list[str]:
    return [judge_pair(judge, p["prompt"], p["chosen"], p["rejected"], rubric, p.get("answer"))["verdict"] for p in pairs]


def candidate_pool(rubric: MetaRubric, rng: random.Random) -> list[Criterion]:
    pool = [c for layer in rubric.domain_layers.values() for c in layer]
    for f in FEATURES.names():
        if f == "correct":
            continue
        pool.append(Criterion(name=f"{f}_{rng.randrange(10**6)}", description=f"auto: compare {f}", check=f,
                              tier=rng.choice(TIERS), direction=rng.choice([1, -1]),
                              margin=rng.choice([0.0, 0.0, 1.0, 5.0])))
    return pool


def mutate(rubric: MetaRubric, rng: random.Random) -> tuple[MetaRubric, str]:
    r = rubric.model_copy(deep=True)
    crits = list(r.criteria)
    op = rng.choice(["ADD", "DELETE", "MODIFY", "MODIFY"])
    mutable = [i for i, c in enumerate(crits) if c.tier != "fatal"]
    if op == "DELETE" and len(mutable) > 1:
        i = rng.choice(mutable)
        desc = f"DELETE {crits[i].name}"
        del crits[i]
    elif op == "MODIFY" and mutable:
        i = rng.choice(mutable)
        c = crits[i].model_copy()
        what = rng.choice(["tier", "direction", "margin"])
        if what == "tier":
            c.tier = rng.choice(TIERS)
        elif what == "direction":
            c.direction = -c.direction
        else:
            c.margin = rng.choice([0.0, 1.0, 2.0, 5.0, 10.0])
        crits[i] = c
        desc = f"MODIFY {c.name}.{what} -> {getattr(c, what)}"
    else:
        names = {c.name for c in crits}
        pool = [c for c in candidate_pool(r, rng) if c.name not in names]
        c = rng.choice(pool)
        crits.append(c)
        desc = f"ADD {c.name} ({c.check}, {c.tier}, dir {c.direction})"
    r.criteria = crits
    return r, desc


def crossover(a: MetaRubric, b: MetaRubric, rng: random.Random) -> MetaRubric:
    by_name = {c.name: c for c in b.criteria}
    crits = []
    for c in a.criteria:
        other = by_name.pop(c.name, None)
        crits.append(other if other is not None and rng.random() < 0.5 else c)
    crits += [c for c in by_name.values() if rng.random() < 0.5]
    child = a.model_copy(deep=True)
    child.criteria = crits
    return child


def llm_edit(backend, rubric: MetaRubric, failures: list[dict]) -> MetaRubric | None:
    """Ask an LLM backend (with ``complete``) for one criteria edit as JSON; None when unusable."""
    prompt = ("Here is a judging rubric (YAML) and pairs where it disagreed with human labels.\n"
              f"{dump_meta_rubric(rubric)}\nFailures: {json.dumps(failures[:5])[:4000]}\n"
              'Propose ONE edit as JSON: {"op": "ADD"|"DELETE"|"MODIFY", "criterion": {name, description, tier, '
              'check, direction, margin}}')
    try:
        data = json.loads(backend.complete(prompt).strip().strip("`").removeprefix("json"))
        r = rubric.model_copy(deep=True)
        crit = Criterion.model_validate(data["criterion"])
        keep = [c for c in r.criteria if c.name != crit.name]
        r.criteria = keep if data["op"] == "DELETE" else keep + [crit]
        return r
    except Exception:  # noqa: BLE001 - an unusable proposal is skipped
        return None


def evolve(rubric: MetaRubric, judge, splits: dict[str, list[dict]], cfg: EvolveConfig, seed: int,
           on_generation: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Run the GA; returns the winning rubric, history, per-split agreements and a readable diff."""
    rng = random.Random(seed)
    fit = lambda r, s: agreement(judge, r, splits[s], cfg.tie_credit)  # noqa: E731
    scored = [(fit(rubric, "train"), rubric, "initial")]
    while len(scored) < cfg.population:
        child, desc = mutate(rubric, rng)
        scored.append((fit(child, "train"), child, desc))
    history, champions = [], []
    llm = judge if hasattr(judge, "complete") else None
    for gen in range(cfg.generations + 1):
        scored.sort(key=lambda t: -t[0])
        best = scored[0]
        champions.append((fit(best[1], "val"), best[0], gen, best[1]))
        stats = {"fitness/best": best[0], "fitness/mean": sum(s for s, _, _ in scored) / len(scored),
                 "fitness/val_of_best": champions[-1][0]}
        history.append({"generation": gen, **stats})
        if on_generation:
            on_generation(gen, stats)
        if gen == cfg.generations:
            break
        nxt = scored[: cfg.elite]
        while len(nxt) < cfg.population:
            a, b = rng.sample(scored[: max(2, cfg.population // 2)], 2)
            child = crossover(a[1], b[1], rng) if rng.random() < cfg.crossover_rate else a[1]
            desc = "crossover"
            if llm is not None and rng.random() < cfg.mutation_rate:
                edited = llm_edit(llm, child, [p for p in splits["train"][:20]])
                child, desc = (edited, "llm edit") if edited is not None else mutate(child, rng)
            elif rng.random() < cfg.mutation_rate:
                child, desc = mutate(child, rng)
            nxt.append((fit(child, "train"), child, desc))
        scored = nxt
    champions.sort(key=lambda t: (-t[0], -t[1], t[2]))
    winner = champions[0][3]
    winner.version = f"{rubric.version}+evolved"
    before, after = dump_meta_rubric(rubric), dump_meta_rubric(winner)
    agree = {f"{tag}/{s}": agreement(judge, r, splits[s], cfg.tie_credit)
             for tag, r in (("initial", rubric), ("refined", winner)) for s in ("train", "val", "test")}
    return {"rubric": winner, "history": history, "agreement": agree,
            "diff": "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), "initial.yaml",
                                                 "refined.yaml"))}
