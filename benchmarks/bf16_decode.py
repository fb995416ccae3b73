"""bf16 decode (the ``fast-bf16`` rollout backend) against fp32 (``fast``, the reference) on a project's SFT policy.

Issue 28 allows a lower-precision decode when it is checked against fp32. On ``--rows`` validation prompts per
domain of the project at ``--root`` (its ``models/sft``, ``data/prepared``, ``params.yaml``), this measures:

1. **greedy answers**: each prompt decoded greedily by both backends; the share with the same final answer
   (``moalign.grading.extract_answer``), the share with identical completions, and each side's accuracy;
2. **the sampling distribution**: both decode steps run in lockstep along fp32's greedy trajectory (the same
   tokens fed to both), and at every step the total-variation distance between their next-token distributions
   at ``train.temperature`` (``TV = 0.5 sum |p - q|``): what sampled token frequencies can differ by, with no
   sampling noise; mean, 99th percentile and max over steps;
3. **speed**: sampled decodes of the rollout batch (``--prompts`` x ``--group``, ``train.max_new_tokens``) by
   each backend, one after the other in this process: completion tokens per second.

    python benchmarks/bf16_decode.py --root runs/smollm2 --rows 16 --json benchmarks/results/bf16_decode/smollm2.json

The RL check (an RL run with ``train.generation_backend: fast-bf16`` against the fp32 seeds) is the study's job:
``moalign study run -S train.generation_backend=fast-bf16 ...`` into its own ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lockstep_tv(lm, tok, prompts: list[str], steps: int, temperature: float, dtype) -> list[float]:
    """TV distance between the model-dtype and ``dtype`` fused steps' next-token distributions, per (row, step),
    both fed the model-dtype step's greedy tokens."""
    import torch

    from moalign.fastgen_fused import FusedStep, cache_kwargs, new_cache
    from moalign.generation import position_ids

    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc["input_ids"], enc["attention_mask"].long()
    n, P = ids.shape
    cache = new_cache(lm.config)
    with torch.no_grad():
        out = lm(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True,
                 **cache_kwargs(lm, cache))
        ref, low = FusedStep(lm, cache, n, P + steps, P), FusedStep(lm, cache, n, P + steps, P, dtype)
        bias = torch.zeros(n, P + steps).masked_fill_(torch.nn.functional.pad(mask, (0, steps), value=1) == 0,
                                                      float("-inf"))
        pos = position_ids(mask)[:, -1]
        logits = out.logits[:, -1]
        tvs = []
        for t in range(steps):
            tokn = logits.argmax(-1)
            pos = pos + 1
            a, b = ref(tokn, pos, P + t, bias), low(tokn, pos, P + t, bias)
            pa, pb = torch.softmax(a.float() / temperature, -1), torch.softmax(b.float() / temperature, -1)
            tvs += (0.5 * (pa - pb).abs().sum(-1)).tolist()
            logits = a
    return tvs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=".", help="project with models/sft, data/prepared and params.yaml")
    ap.add_argument("--rows", type=int, default=16, help="validation prompts per domain")
    ap.add_argument("--tv-steps", type=int, default=32, help="decode steps of the lockstep TV measurement")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from moalign.data import rows_per_domain
    from moalign.fastgen import _causal_lm
    from moalign.fastgen_fused import low_check
    from moalign.generation import BACKENDS
    from moalign.grading import extract_answer, grade
    from moalign.provenance import provenance
    from moalign.rl.run import load_split, start_policy, train_config
    from moalign.study import load_study_params
    from moalign.text import format_prompt

    root = Path(a.root).resolve()
    params = load_study_params(root / "params.yaml")
    cfg = train_config(params)
    torch.set_num_threads(a.threads)
    policy, tok = start_policy(params, root, a.threads)
    lm = _causal_lm(policy)
    ok, why = low_check(lm, torch.bfloat16)
    rows = rows_per_domain(load_split("val", root), a.rows)
    prompts = [format_prompt(r["question"], tok) for r in rows]
    fast, low = BACKENDS.get("fast"), BACKENDS.get("fast-bf16")
    g32 = fast(policy, tok, prompts, cfg.max_new_tokens, False)
    g16 = low(policy, tok, prompts, cfg.max_new_tokens, False)
    ans32, ans16 = [extract_answer(t) for t in g32.texts], [extract_answer(t) for t in g16.texts]
    greedy = {"prompts": len(rows), "same_answer": float(np.mean([x == y for x, y in zip(ans32, ans16)])),
              "same_completion": float(np.mean([x == y for x, y in zip(g32.texts, g16.texts)])),
              "accuracy_fp32": float(np.mean([grade(t, r["answer"]) for t, r in zip(g32.texts, rows)])),
              "accuracy_bf16": float(np.mean([grade(t, r["answer"]) for t, r in zip(g16.texts, rows)]))}
    tv = lockstep_tv(lm, tok, prompts, a.tv_steps, cfg.temperature, torch.bfloat16)
    tv_out = {"steps": a.tv_steps, "temperature": cfg.temperature, "mean": float(np.mean(tv)),
              "p99": float(np.quantile(tv, 0.99)), "max": float(np.max(tv))}
    batch = [format_prompt(r["question"], tok) for r in load_split("train", root)[: a.prompts] for _ in range(a.group)]
    speed = {}
    for name, gen in (("fp32", fast), ("bf16", low), ("fp32 again", fast), ("bf16 again", low)):
        t = time.perf_counter()
        g = gen(policy, tok, batch, cfg.max_new_tokens, True, cfg.temperature, cfg.top_p, seed=1)
        dt = time.perf_counter() - t
        speed[name] = {"seconds": dt, "tokens": int(sum(g.lengths)), "tokens_per_s": sum(g.lengths) / dt}
    res = {"check": {"ok": ok, "why": why}, "greedy": greedy, "tv": tv_out, "speed": speed,
           "speed_ratio": (speed["bf16"]["tokens_per_s"] + speed["bf16 again"]["tokens_per_s"])
           / (speed["fp32"]["tokens_per_s"] + speed["fp32 again"]["tokens_per_s"]),
           "config": {"root": str(a.root), "rows_per_domain": a.rows, "batch": f"{a.prompts} x {a.group}",
                      "max_new_tokens": cfg.max_new_tokens, "threads": a.threads},
           "command": "python benchmarks/bf16_decode.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "provenance": provenance({"bench": "bf16_decode"}, ROOT)}
    print(json.dumps({k: res[k] for k in ("check", "greedy", "tv", "speed_ratio")}, indent=1))
    for k, v in speed.items():
        print(f"{k}: {v['tokens']} tokens in {v['seconds']:.1f} s = {v['tokens_per_s']:.0f} tokens/s")
    if a.json:
        from moalign.io import write_text

        out = ROOT / a.json
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
