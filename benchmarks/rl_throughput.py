"""RL throughput: moalign's trainer vs TRL's GRPOTrainer on the same tiny model, data, group size and lengths.

Each side runs in its own subprocess (so peak RSS is its own) for the same number of
updates; prints steps/s, peak memory and the ratios. Uses ``models/sft`` when it exists
(run ``dvc repro sft`` first), else a randomly initialised tiny model from ``data/prepared``.

    python benchmarks/rl_throughput.py --steps 10 --prompts 8 --group 8 --max-new-tokens 64
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


def _model_path() -> Path:
    sft = ROOT / "models/sft"
    if (sft / "config.json").exists():
        return sft
    raise SystemExit("run `dvc repro sft` first (models/sft is the policy both trainers start from)")


def _rows(n: int):
    import datasets

    return list(datasets.load_from_disk(str(ROOT / "data/prepared/train")))[:n]


def run_ours(a) -> dict:
    import torch

    from moalign.modeling import load_policy, load_tokenizer
    from moalign.rl.config import TrainConfig
    from moalign.rl.trainer import train

    torch.set_num_threads(a.threads)
    tok = load_tokenizer(_model_path())
    model = load_policy(_model_path())
    cfg = TrainConfig(max_steps=a.steps, prompts_per_step=a.prompts, group_size=a.group, max_new_tokens=a.max_new_tokens,
                      objectives=["accuracy", "conciseness", "clarity"], eval_every=10**6, val_rows=1,
                      strategies=["fixed"], lr=1e-5, clip_eps=0.2, checkpoint_every=10**6, snapshot_every=10**6)
    rows = _rows(2000)
    t = time.perf_counter()
    train(cfg, "fixed", model, tok, rows, rows[:1], 0)
    return {"seconds": time.perf_counter() - t}


def run_trl(a) -> dict:
    import datasets
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from moalign.modeling import load_policy, load_tokenizer
    from moalign.rl.rewards import make_reward
    from moalign.text import format_prompt

    torch.set_num_threads(a.threads)
    tok = load_tokenizer(_model_path())
    model = load_policy(_model_path())
    rows = _rows(2000)
    ds = datasets.Dataset.from_list([{"prompt": format_prompt(r["question"]), "answer": r["answer"]} for r in rows])
    fns = []
    for name in ("accuracy", "conciseness", "clarity"):
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--side", choices=["ours", "trl"])
    a = ap.parse_args()
    if a.side:
        res = (run_ours if a.side == "ours" else run_trl)(a)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(res))
        return
    out = {}
    for side in ("ours", "trl"):
        p = subprocess.run([sys.executable, __file__, "--side", side, *sys.argv[1:]], capture_output=True, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=ROOT)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{side} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        out[side] = json.loads(line[7:])
        out[side]["steps_per_s"] = a.steps / out[side]["seconds"]
    print(f"config: steps={a.steps} prompts={a.prompts} group={a.group} max_new_tokens={a.max_new_tokens} threads={a.threads}")
    for side, r in out.items():
        print(f"{side:5s} {r['steps_per_s']:.3f} steps/s  peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"ratio ours/trl: steps/s x{out['ours']['steps_per_s'] / out['trl']['steps_per_s']:.2f}, "
          f"peak memory x{out['ours']['peak_rss_mb'] / out['trl']['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
