"""Measure the learnable fixture's margins over seeds and CPU kernels (the numbers beside the assertions).

    python -m tests.margins                       # kernels default/avx2/avx512 x fits 0-1 x train seeds 0-19
    python -m tests.margins --kernels avx2 --fits 0 --seeds 5

Each (kernel, fit) runs in its own process (``ATEN_CPU_CAPABILITY`` is read once, when torch loads;
``MOALIGN_TEST_SEED`` seeds the fixture's fit) and measures, per train seed, what
tests/rl/test_learnable.py, tests/rl/test_trainer_oracle.py and the two-process test
(tests/stages/test_multiprocess.py, here on one process with its 2 x 4 prompts as 8) assert. Prints mean / worst per quantity and writes the rows to
``--out`` (JSON lines). Not a test: it takes ~15 min on 2 cores; run it after changing the fixture.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

WORST = {"min": ["share_spread", "length_spread_first", "below_cap_first", "grad_norm", "digits_std",
                 "conciseness_std_first", "gain", "reward_rise", "mp_grad_norm", "mp_digits_std",
                 "mp_conciseness_std_first", "mp_influence", "mp_weights_moved", "oracle_norm", "oracle_rel"],
         "max": ["before", "clip_part_over_full", "clip_full_letters"]}


def oracle(fx, seed: int) -> dict[str, float]:
    """tests/rl/test_trainer_oracle.py's quantities on the first step's rollouts of ``seed``."""
    import torch

    from moalign.rl.trainer import select_params, train
    from tests.rl.learnable import cfg, flat, learnable, oracle_grads, recorded_rollouts, recording
    from tests.rl.test_trainer_oracle import OBJ, SETTINGS, W, contrasts, oracle_objective_grads, rel

    rows, tok, model = fx
    with recording() as rec:
        train(cfg(objectives=OBJ, weighting={"weights": W}, max_steps=1, eval_every=100, generation_backend="t_record"),
              "fixed", learnable()[2], tok, rows["train"], rows["val"], seed=seed)
    (g,) = recorded_rollouts(rec, rows["train"])
    gs = {s: flat(oracle_grads(model, cfg(objectives=OBJ, weighting={"weights": W}, estimator=s[0], aggregation=s[1],
                                          std=s[2]), g, torch.tensor(W))) for s in SETTINGS}
    rels = [rel(gs[other], want) for s, want in gs.items() for other in contrasts(*s)]  # the pairs the tests assert
    est = [gs[(e, "normalize_then_sum", "sample")] for e in ("grpo", "rloo", "reinforce", "reinforce_pp")]
    rels += [rel(est[i], est[j]) for i in range(4) for j in range(i + 1, 4)]
    c = cfg(objectives=["t_digits", "t_letters"], estimator="rloo", max_steps=1, eval_every=100,
            generation_backend="t_record")
    with recording() as rec:
        train(c, "gradient", learnable()[2], tok, rows["train"], rows["val"], seed=seed)
    (g2,) = recorded_rollouts(rec, rows["train"])
    _, full, part = oracle_objective_grads(model, c, g2, {n for n, _ in select_params(model, c.grad_layers)})
    return {"oracle_norm": min(float(v.norm()) for v in gs.values()), "oracle_rel": min(rels),
            "clip_part_over_full": part[0] / full[0], "clip_full_letters": full[1]}


def measure(seeds: int) -> list[dict]:
    import numpy as np

    from moalign.rl.trainer import train
    from tests.rl.learnable import cfg, learnable
    from tests.rl.test_learnable import fixture_signal, raise_digits
    from tests.stages.test_multiprocess import TRAIN

    fx = learnable()
    rows, tok, _ = fx
    out = []
    for seed in range(seeds):
        r = {"seed": seed, **fixture_signal(fx, seed), **oracle(fx, seed)}
        for est in ("grpo", "rloo"):
            d = raise_digits(fx, est, seed)
            r[f"gain_{est}"], r[f"reward_rise_{est}"], r["before"] = d["after"] - d["before"], d["reward_rise"], d["before"]
        r["gain"], r["reward_rise"] = min(r["gain_grpo"], r["gain_rloo"]), min(r["reward_rise_grpo"], r["reward_rise_rloo"])
        mp = {k: v for k, v in TRAIN.items() if k not in ("strategies",)}
        for strategy in ("gradient", "hypervolume"):
            res = train(cfg(**{**mp, "prompts_per_step": 2 * mp["prompts_per_step"]}), strategy, learnable()[2], tok,
                        rows["train"], rows["val"], seed=seed)
            h = res.history
            w = np.abs(np.array(res.weights[-1]) - np.array(res.weights[0])).max()
            for k, v in (("mp_grad_norm", min(x["charts/grad_norm"] for x in h)),
                         ("mp_digits_std", min(x["rewards/t_digits/std"] for x in h)),
                         ("mp_conciseness_std_first", h[0]["rewards/conciseness/std"])):
                r[k] = min(r.get(k, v), v)
            if strategy == "gradient":
                r["mp_influence"] = min(abs(x["influence/t_digits"]) for x in h)
                r["mp_weights_moved"] = float(w)
        out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", nargs="+", default=["default", "avx2", "avx512"])
    ap.add_argument("--fits", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("/tmp/moalign-margins.jsonl"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        for r in measure(a.seeds):
            print(json.dumps(r), flush=True)
        return 0
    rows = []
    for k in a.kernels:
        for f in a.fits:
            env = {**os.environ, "ATEN_CPU_CAPABILITY": k, "MOALIGN_TEST_SEED": str(f), "HF_HUB_OFFLINE": "1"}
            p = subprocess.run([sys.executable, "-m", "tests.margins", "--worker", "--seeds", str(a.seeds)],
                               env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            if p.returncode:
                print(p.stderr[-2000:], file=sys.stderr)
                return p.returncode
            rows += [{**json.loads(x), "kernel": k, "fit": f} for x in p.stdout.splitlines() if x.startswith("{")]
    a.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} runs (kernels {a.kernels} x fits {a.fits} x seeds 0-{a.seeds - 1}); written to {a.out}")
    for how, keys in WORST.items():
        for key in keys:
            xs = [r[key] for r in rows]
            worst = min(xs) if how == "min" else max(xs)
            print(f"{key:<26} mean {sum(xs) / len(xs):.4f}  worst ({how}) {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
