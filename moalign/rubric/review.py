"""Human in the loop for domain principles (OpenRS's reproducible refinement of domain layers).

:func:`propose_domain_edits` measures, on the labelled val pairs, what each candidate domain
principle would fix and break if added to the refined rubric, and writes the proposals
(JSON). ``moalign rubric review`` (:func:`review`) shows each proposal with those pairs and
records accept/reject; accepted principles are appended to ``rubrics/accepted.yaml`` (a
git-tracked DVC dependency of the rubric stage), so the next ``dvc repro`` uses them and the
human step is reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import yaml

from moalign.io import write_json, write_text
from moalign.rubric.evolve import per_pair
from moalign.rubric.schema import Criterion, MetaRubric


def propose_domain_edits(judge, rubric: MetaRubric, candidates: list[Criterion], pairs: list[dict],
                         query_type: str, path: str | Path, max_examples: int = 3) -> list[dict]:
    base = per_pair(judge, rubric, pairs)
    props = []
    for c in candidates:
        if c.name in {x.name for x in rubric.criteria}:
            continue
        trial = rubric.model_copy(deep=True)
        trial.criteria = trial.criteria + [c]
        new = per_pair(judge, trial, pairs)
        fixes = [i for i, (a, b) in enumerate(zip(base, new)) if a != "A" and b == "A"]
        breaks = [i for i, (a, b) in enumerate(zip(base, new)) if a == "A" and b != "A"]
        props.append({"query_type": query_type, "criterion": c.model_dump(mode="json"),
                      "fixes": len(fixes), "breaks": len(breaks), "net": len(fixes) - len(breaks),
                      "examples_fixed": [pairs[i] for i in fixes[:max_examples]],
                      "examples_broken": [pairs[i] for i in breaks[:max_examples]], "decision": None})
    props.sort(key=lambda p: -p["net"])
    write_json(path, props)
    return props


def _show(p: dict) -> str:
    c = p["criterion"]
    lines = [f"[{p['query_type']}] {c['name']} ({c['tier']}, check={c['check']}, direction={c['direction']}, "
             f"margin={c['margin']}): fixes {p['fixes']}, breaks {p['breaks']} (net {p['net']:+d})",
             f"  {c['description']}"]
    for tag in ("fixed", "broken"):
        for ex in p[f"examples_{tag}"]:
            lines.append(f"  {tag}: prompt={ex['prompt'][:60]!r}\n    chosen={ex['chosen'][-60:]!r}\n"
                         f"    rejected={ex['rejected'][-60:]!r}")
    return "\n".join(lines)


def review(proposals_path: str | Path, accepted_path: str | Path,
           decide: Callable[[dict], bool] | None = None, out: Callable[[str], None] = print) -> dict[str, int]:
    """Walk the undecided proposals; accepted ones go to ``accepted_path``. Returns counts."""
    props = json.loads(Path(proposals_path).read_text())
    acc_file = Path(accepted_path)
    accepted = yaml.safe_load(acc_file.read_text()) if acc_file.exists() else None
    accepted = accepted or {"domain_layers": {}}
    counts = {"accepted": 0, "rejected": 0}
    for p in props:
        if p.get("decision"):
            continue
        out(_show(p))
        ok = decide(p) if decide else input("accept? [y/N] ").strip().lower().startswith("y")
        p["decision"] = "accept" if ok else "reject"
        counts["accepted" if ok else "rejected"] += 1
        if ok:
            layer = accepted["domain_layers"].setdefault(p["query_type"], [])
            Criterion.model_validate(p["criterion"])
            if p["criterion"]["name"] not in {c["name"] for c in layer}:
                layer.append(p["criterion"])
    write_text(acc_file, "# Domain principles accepted by `moalign rubric review` (git-tracked; the rubric "
                         "stage loads them).\n" + yaml.safe_dump(accepted, sort_keys=False))
    write_json(proposals_path, props)
    out(f"accepted {counts['accepted']}, rejected {counts['rejected']}; run `dvc repro` to use them")
    return counts
