"""Human in the loop for domain principles (OpenRS's reproducible refinement of domain layers).

:func:`propose_domain_edits` measures, on a labelled set of pairs, what each candidate domain
principle would fix and break if added to the rubric (a pair is *fixed* when the verdict
turns into agreement with the label, *broken* when agreement is lost) and writes the
proposals to JSON. :func:`review` (``moalign rubric review``) shows each undecided proposal
with those pairs and records accept / reject; accepted principles are appended to
``rubrics/accepted.yaml`` (a git-tracked list and a DVC dependency of the rubric stage), so
the next ``dvc repro`` loads them as active criteria and the human step is reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from moalign.io import write_json, write_text
from moalign.rubric.evolve import verdicts
from moalign.rubric.pvr import DEFAULT_GATE
from moalign.rubric.schema import AcceptedPrinciple, Criterion, MetaRubric, load_accepted

HEADER = ("# Domain principles accepted by `moalign rubric review` (git-tracked; the rubric stage loads\n"
          "# them as active criteria). Each entry: {query_type, criterion, fixes, breaks}.\n")


def _example(p: dict, verdict_before: str, verdict_after: str) -> dict[str, Any]:
    return {"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"], "answer": p.get("answer"),
            "before": verdict_before, "after": verdict_after}


def propose_domain_edits(judge: Any, rubric: MetaRubric, candidates: list[Criterion], pairs: list[dict],
                         query_type: str, path: str | Path | None = None, max_examples: int = 3,
                         gate_checks: Iterable[str] = DEFAULT_GATE) -> list[dict]:
    """One proposal per candidate not yet active: the edit, pairs fixed / broken, and examples.

    Proposals are sorted by net effect (fixes - breaks), best first; written to ``path`` when given.
    Verdicts pass the PVR gate of ``gate_checks`` first, as in evolution.
    """
    gate = tuple(gate_checks)
    base = verdicts(judge, rubric, pairs, gate)
    active = {c.name for c in rubric.criteria}
    props = []
    for c in candidates:
        if c.name in active:
            continue
        trial = rubric.model_copy(deep=True)
        trial.criteria = trial.criteria + [c]
        new = verdicts(judge, trial, pairs, gate)
        fixes = [i for i, (a, b) in enumerate(zip(base, new)) if a != "A" and b == "A"]
        breaks = [i for i, (a, b) in enumerate(zip(base, new)) if a == "A" and b != "A"]
        props.append({"query_type": query_type, "edit": f"ADD {c.name}", "criterion": c.model_dump(mode="json"),
                      "pairs": len(pairs), "fixes": len(fixes), "breaks": len(breaks),
                      "net": len(fixes) - len(breaks),
                      "examples_fixed": [_example(pairs[i], base[i], new[i]) for i in fixes[:max_examples]],
                      "examples_broken": [_example(pairs[i], base[i], new[i]) for i in breaks[:max_examples]],
                      "decision": None})
    props.sort(key=lambda p: -p["net"])
    if path is not None:
        write_json(path, props)
    return props


def show(p: dict) -> str:
    """Readable summary of one proposal with the pairs it fixes and breaks."""
    c = p["criterion"]
    lines = [f"[{p['query_type']}] {p.get('edit', 'ADD ' + c['name'])}: tier={c['tier']} check={c.get('check')} "
             f"direction={c.get('direction')} margin={c.get('margin')}",
             f"  {c.get('description', '')}",
             f"  on {p.get('pairs', '?')} labelled pairs: fixes {p['fixes']}, breaks {p['breaks']} (net {p['net']:+d})"]
    for tag in ("fixed", "broken"):
        for ex in p[f"examples_{tag}"]:
            lines.append(f"  {tag} ({ex.get('before')} -> {ex.get('after')}): {ex['prompt'][:70]!r}\n"
                         f"    chosen:   {ex['chosen'].strip()[-80:]!r}\n    rejected: {ex['rejected'].strip()[-80:]!r}")
    return "\n".join(lines)


def _ask(p: dict) -> bool:
    return input("accept this principle? [y/N] ").strip().lower().startswith("y")


def review(proposals_path: str | Path, accepted_path: str | Path,
           decide: Callable[[dict], bool] | None = None, out: Callable[[str], None] = print) -> dict[str, int]:
    """Walk the undecided proposals; record decisions; append accepted ones to ``accepted_path``.

    ``decide(proposal) -> bool`` scripts the decisions; None asks interactively with ``input()``.
    Returns ``{"accepted": n, "rejected": m}`` for this session.
    """
    props = json.loads(Path(proposals_path).read_text())
    acc_file = Path(accepted_path)
    accepted = load_accepted(acc_file) if acc_file.exists() else []
    have = {(e.query_type, e.criterion.name) for e in accepted}
    counts = {"accepted": 0, "rejected": 0}
    for p in props:
        if p.get("decision"):
            continue
        out(show(p))
        ok = bool((decide or _ask)(p))
        p["decision"] = "accept" if ok else "reject"
        counts["accepted" if ok else "rejected"] += 1
        if ok and (p["query_type"], p["criterion"]["name"]) not in have:
            accepted.append(AcceptedPrinciple(query_type=p["query_type"], criterion=Criterion(**p["criterion"]),
                                              fixes=p["fixes"], breaks=p["breaks"]))
            have.add((p["query_type"], p["criterion"]["name"]))
    body = yaml.safe_dump([e.model_dump(mode="json") for e in accepted], sort_keys=False, allow_unicode=True)
    write_text(acc_file, HEADER + body)
    write_json(proposals_path, props)
    out(f"accepted {counts['accepted']}, rejected {counts['rejected']}; run `dvc repro rubric` to use them")
    return counts
