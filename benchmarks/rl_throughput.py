"""RL throughput: moalign's trainer (``hf`` and ``fast`` rollout backends, ``fixed`` and ``gradient``
strategies) vs TRL's ``GRPOTrainer`` on the same policy, prompts, batch and reward functions.

Each side runs in its own subprocess, one after the other (so peak RSS is its own and no two torch
processes share the cores), for the same number of updates; TRL keeps its default generation
(``model.generate``). Prints steps/s, peak RSS, our per-phase seconds per step (``perf/*``), the
line ``ratio vs TRL: x<number>`` (``fast``/``fixed`` against TRL) and the ``gradient``/``fixed``
step-time ratio. ``--gen-batches`` adds a generation-only sweep of ``fast`` vs ``hf`` over batch
sizes. Uses ``models/sft`` (run ``dvc repro sft`` first).

    python benchmarks/rl_throughput.py                   # 10 steps, 8 prompts x 8, 128 new tokens
    python benchmarks/rl_throughput.py --gen-batches 1 2 8 64   # + generation-only sweep (greedy)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OBJECTIVES = ["accuracy", "conciseness", "clarity"]
SIDES = {"trl": "TRL GRPOTrainer", "hf": "moalign hf/fixed", "fast": "moalign fast/fixed",
         "fast-gradient": "moalign fast/gradient", "fast-gradient-4": "moalign fast/gradient every 4"}


def _model_path() -> Path:
    sft = ROOT / "models/sft"
    if (sft / "config.json").exists():
        return sft
    raise SystemExit("run `dvc repro sft` first (models/sft is the policy both trainers start from)")


def _rows(n: int):
    import datasets

    return list(datasets.load_from_disk(str(ROOT / "data/prepared/train")))[:n]


def run_ours(a, backend: str, strategy: str, grad_every: int = 1) -> dict:
    import numpy as np

    from moalign.modeling import load_policy, load_tokenizer
    from moalign.rl.config import TrainConfig
    from moalign.rl.trainer import train

    tok, model = load_tokenizer(_model_path()), load_policy(_model_path())
    cfg = TrainConfig(max_steps=a.steps, prompts_per_step=a.prompts, group_size=a.group, max_new_tokens=a.max_new_tokens,
                      objectives=OBJECTIVES, eval_every=10**6, val_rows=1, val_samples=0, strategies=[strategy], lr=1e-5,
                      clip_eps=0.2, checkpoint_every=10**6, snapshot_every=10**6, generation_backend=backend,
                      logprob_buckets=a.buckets, grad_every=grad_every)
    rows = _rows(2000)
    t = time.perf_counter()  # wall clock of train(), like TRL's trainer.train() (one 1-prompt greedy check inside)
    hist = train(cfg, strategy, model, tok, rows, rows[:1], 0).history
    seconds = time.perf_counter() - t
    phases = sorted({k for h in hist for k in h if k.startswith("perf/") and k != "perf/validation_s"})
    return {"seconds": seconds, "phases": {k[5:-2]: float(np.mean([h.get(k, 0.0) for h in hist]))
                                                          for k in phases},
            "completion_length": float(np.mean([h["charts/completion_length"] for h in hist]))}


def run_trl(a) -> dict:
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from moalign.modeling import load_policy, load_tokenizer
    from moalign.rl.rewards import make_reward
    from moalign.text import format_prompt

    tok, model = load_tokenizer(_model_path()), load_policy(_model_path())
    rows = _rows(2000)
    ds = datasets.Dataset.from_list([{"prompt": format_prompt(r["question"]), "answer": r["answer"]} for r in rows])
    fns = []
    for name in OBJECTIVES:
        f = make_reward(name)

        def wrapped(completions, _f=f, **kw):
            return _f(completions, answer=kw["answer"], completion_lengths=[len(tok(c)["input_ids"]) for c in completions])

        wrapped.__name__ = name
        fns.append(wrapped)
    cfg = GRPOConfig(output_dir=str(ROOT / "checkpoints/bench_trl"), per_device_train_batch_size=a.prompts * a.group,
                     num_generations=a.group, max_completion_length=a.max_new_tokens, max_steps=a.steps,
                     learning_rate=1e-5, logging_steps=10**6, report_to="none", use_cpu=True, bf16=False,
                     save_strategy="no", beta=0.0, reward_weights=[1 / 3] * 3, temperature=1.0,
                     disable_tqdm=True, seed=0, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=fns, args=cfg, train_dataset=ds, processing_class=tok)
    t = time.perf_counter()
    trainer.train()
    return {"seconds": time.perf_counter() - t}


def run_gen(a) -> dict:
    """Generation only: seconds per call of each backend at each batch size. Greedy, so both backends
    decode the same tokens (the same work); sampled rollouts of different lengths would time luck."""
    from moalign.generation import BACKENDS
    from moalign.modeling import load_policy, load_tokenizer
    from moalign.text import format_prompt

    tok, model = load_tokenizer(_model_path()), load_policy(_model_path())
    prompts = [format_prompt(r["question"]) for r in _rows(max(a.gen_batches) + a.gen_reps)]
    out = {}
    for n in a.gen_batches:
        for backend in ("hf", "fast"):
            BACKENDS.get(backend)(model, tok, prompts[:n], a.max_new_tokens, False)  # warm-up
            t = time.perf_counter()
            for rep in range(a.gen_reps):
                BACKENDS.get(backend)(model, tok, prompts[rep : rep + n], a.max_new_tokens, False)
            out[f"{backend}@{n}"] = (time.perf_counter() - t) / a.gen_reps
    return {"gen": out}


def _side(a, side: str) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    if side == "trl":
        return run_trl(a)
    if side == "gen":
        return run_gen(a)
    parts = side.split("-")  # backend[-strategy[-grad_every]]
    return run_ours(a, parts[0], parts[1] if len(parts) > 1 else "fixed", int(parts[2]) if len(parts) > 2 else 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--buckets", type=int, default=4, help="train.logprob_buckets of our side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    ap.add_argument("--gen-batches", type=int, nargs="*", default=[], help="generation-only sweep over these batch sizes")
    ap.add_argument("--gen-reps", type=int, default=5)
    ap.add_argument("--side", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        res = _side(a, a.side)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(res))
        return
    out = {}
    for side in a.sides + (["gen"] if a.gen_batches else []):
        args = [f"--steps={a.steps}", f"--prompts={a.prompts}", f"--group={a.group}", f"--buckets={a.buckets}",
                f"--max-new-tokens={a.max_new_tokens}", f"--threads={a.threads}", f"--gen-reps={a.gen_reps}",
                "--gen-batches", *map(str, a.gen_batches)]
        p = subprocess.run([sys.executable, __file__, *args, "--side", side], capture_output=True, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=ROOT)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{side} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        out[side] = json.loads(line[7:])
        if "seconds" in out[side]:
            out[side]["steps_per_s"] = a.steps / out[side]["seconds"]
    print(f"config: steps={a.steps} prompts={a.prompts} group={a.group} max_new_tokens={a.max_new_tokens} "
          f"threads={a.threads} buckets={a.buckets}")
    for side in a.sides:
        r = out[side]
        ph = "  ".join(f"{k} {v:.3f}" for k, v in r.get("phases", {}).items())
        print(f"{SIDES[side]:24s} {r['steps_per_s']:.3f} steps/s  peak RSS {r['peak_rss_mb']:.0f} MB"
              + (f"  mean completion {r['completion_length']:.1f}  s/step: {ph}" if ph else ""))
    if "trl" in out and "fast" in out:
        print(f"ratio vs TRL: x{out['fast']['steps_per_s'] / out['trl']['steps_per_s']:.2f} "
              f"(peak memory x{out['fast']['peak_rss_mb'] / out['trl']['peak_rss_mb']:.2f})")
    if "trl" in out and "hf" in out:
        print(f"hf backend vs TRL: x{out['hf']['steps_per_s'] / out['trl']['steps_per_s']:.2f}")
    for side in ("fast-gradient", "fast-gradient-4"):
        if "fast" in out and side in out:
            print(f"{SIDES[side][8:]} / fixed step time: x{out['fast']['steps_per_s'] / out[side]['steps_per_s']:.2f}")
    if "gen" in out:
        g = out["gen"]["gen"]
        for n in a.gen_batches:
            print(f"generation batch {n:4d}: hf {g[f'hf@{n}']:.3f} s  fast {g[f'fast@{n}']:.3f} s  "
                  f"x{g[f'hf@{n}'] / g[f'fast@{n}']:.2f}")


if __name__ == "__main__":
    main()
