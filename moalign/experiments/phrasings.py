"""Does a policy's gain hold outside the project's own templates? English word problems in held-out phrasings.

The generator (moalign/data/arith.py) writes every English problem with one template per operation ("Tom has
{a} apples and buys {b} more..."), so a gain measured on its test split could be a gain on those sentences only.
This scores policies on the same arithmetic (same operations and operand ranges, :func:`arith._draw`) written
in :data:`HELDOUT` phrasings that no stage ever trains on (other names, objects, verbs and sentence orders), and,
side by side, on the project's own English test rows; each policy's gain over the first one (the SFT policy) is
paired by prompt (study_summary.prompt_gain: mean per-prompt difference, prompt-clustered SE).

    cd runs/smollm2   # a profile workspace: its models/ and its params (chat template, max_new_tokens)
    python -m moalign.experiments.phrasings --policies models/sft models/train/fixed-balanced \
        models/train/gradient --rows 64 --samples 4 --out ../../results/smollm2/phrasings.json

The held-out set is a check this project runs on itself, not the reviewer's set: it tests template
overfitting, and a gain here is necessary, not sufficient, for a gain on problems written by someone else.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from moalign.data.arith import _draw, solve

# operation -> held-out English phrasings ({a} {b} {c} operands); none shares a sentence with arith.TEMPLATES["en"]
HELDOUT: dict[str, list[str]] = {
    "add": ["Maria collected {a} shells on Monday and {b} shells on Tuesday. How many shells did she collect "
            "in total?",
            "A library had {a} books. It received a donation of {b} books. How many books does the library have "
            "now?",
            "What is the total number of birds if {a} birds sit on one tree and {b} birds sit on another?"],
    "sub": ["A baker made {a} muffins and sold {b} of them. How many muffins does the baker still have?",
            "There were {a} cars in a parking lot. Then {b} cars drove away. How many cars remain?",
            "Sam had {a} dollars and spent {b} dollars on a gift. How much money does Sam have left?"],
    "mul": ["A school orders {a} packs of markers, and each pack holds {b} markers. How many markers does the "
            "school get?",
            "Each of {a} students brings {b} pencils. How many pencils do the students bring altogether?",
            "A garden has {a} rows with {b} tomato plants in every row. How many tomato plants are in the garden?"],
    "two": ["A farmer picks {a} eggs in the morning and {b} eggs in the afternoon, then uses {c} eggs. How many "
            "eggs are left?",
            "Lucy has {a} stickers. Her friend gives her {b} more, and she puts {c} in an album. How many stickers "
            "does she have now?",
            "A bus carries {a} people. At a stop {b} people get on and {c} people get off. How many people are on "
            "the bus?"],
}


def heldout_rows(n: int, max_digits: int, op_weights: dict[str, float], seed: int = 12345) -> list[dict]:
    """``n`` distinct English problems in held-out phrasings, operations drawn by ``op_weights``."""
    rng = random.Random(seed)
    ops = [o for o in HELDOUT if op_weights.get(o, 0) > 0]
    if not ops:
        raise ValueError(f"op_weights {op_weights} give no operation with held-out phrasings ({list(HELDOUT)})")
    seen, rows = set(), []
    while len(rows) < n:
        op = rng.choices(ops, [op_weights[o] for o in ops])[0]
        a, b, c = _draw(op, rng, max_digits)
        template = rng.choice(HELDOUT[op])
        if (template, a, b, c) in seen:
            continue
        seen.add((template, a, b, c))
        rows.append({"question": template.format(a=a, b=b, c=c), "answer": str(solve(op, a, b, c)[1]),
                     "domain": "en", "op": op})
    return rows


def score_all(policies: list[str], sets: dict[str, list[dict]], params, samples: int, seed: int,
              threads: int = 0) -> dict:
    """Each policy scored on each row set (sampled decodes, seeded alike); gains over ``policies[0]``."""
    import torch

    from moalign.evaluate import score_policy
    from moalign.modeling import load_policy, load_tokenizer
    from moalign.rl.rewards import scoring_rewards
    from moalign.rl.run import train_config
    from moalign.study_summary import prompt_gain

    cfg = train_config(params)
    torch.set_num_threads(threads or params.base.threads or torch.get_num_threads())
    fns = scoring_rewards(cfg)
    tok = load_tokenizer(policies[0])
    out = {"objectives": cfg.objectives, "samples": samples, "seed": seed, "policies": {}}
    for path in policies:
        model = load_policy(path).eval()
        rec = {}
        for name, rows in sets.items():
            sc = score_policy(model, tok, rows, cfg.objectives, fns, cfg.max_new_tokens, samples=samples,
                              temperature=cfg.temperature, seed=seed)
            rec[name] = {"point": sc["point"], "se": sc["se"], "length": sc["length"],
                         "per_prompt": np.round(sc["per_prompt"], 6).tolist(), "row_index": list(range(len(rows))),
                         "examples": sc["examples"][:2]}
        out["policies"][path] = rec
        print(path, {n: np.round(r["point"], 3).tolist() for n, r in rec.items()}, flush=True)
    base = out["policies"][policies[0]]
    k = cfg.objectives.index("accuracy")
    out["gain_over_first"] = {p: {n: prompt_gain(r[n], base[n], k) for n in sets}
                              for p, r in out["policies"].items() if p != policies[0]}
    return out


def main(argv: list[str] | None = None) -> int:
    from moalign.config import load_params
    from moalign.data import rows_per_domain
    from moalign.io import write_text
    from moalign.provenance import provenance
    from moalign.rl.run import load_split

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", nargs="+", required=True, help="folders; the first is the baseline (the SFT policy)")
    ap.add_argument("--rows", type=int, default=64, help="held-out problems (and as many own English test rows)")
    ap.add_argument("--samples", type=int, default=4, help="sampled decodes per prompt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: base.threads)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    params = load_params()
    g = params.prepare.generator
    own = [r for r in rows_per_domain(load_split("test"), a.rows) if r["domain"] == "en"]
    sets = {"heldout_phrasings": heldout_rows(a.rows, g.max_digits, dict(g.op_weights)), "own_templates_en": own}
    res = score_all(a.policies, sets, params, a.samples, 10_000 + a.seed, a.threads)
    res["provenance"] = provenance({"policies": a.policies, "rows": a.rows, "samples": a.samples, "seed": a.seed},
                                   ".", rows=a.rows, decodes=a.samples, split="heldout_phrasings")
    write_text(a.out, json.dumps(res, indent=1) + "\n")
    for p, gains in res["gain_over_first"].items():
        print(p, {n: f"{x['gain']:+.3f} (z {x['z'] if x['z'] is None else round(x['z'], 1)})" for n, x in gains.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
