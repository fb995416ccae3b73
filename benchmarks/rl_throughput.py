"""RL throughput: moalign's trainer (``hf`` and ``fast`` rollout backends, ``fixed`` and ``gradient``
strategies) vs TRL's ``GRPOTrainer`` on the same policy, adapter, prompts, batch and reward functions.

Each side runs in its own subprocess, one after the other (so peak RSS is its own and no two torch
processes share the cores), for the same number of updates; TRL keeps its default generation
(``model.generate``). Prints steps/s, peak RSS, our per-phase seconds per step (``perf/*``), the
line ``ratio vs TRL: x<number>`` (``fast``/``fixed`` against TRL) and the ``gradient``/``fixed``
step-time ratio. ``--gen-batches`` adds a generation-only sweep of ``fast`` vs ``hf`` over batch
sizes. ``--model`` picks the policy (default ``models/sft``; ``packaged:<name>`` converts a packaged
model on first use); ``--lora-r`` > 0 trains a LoRA adapter (peft) instead of all weights, the same
adapter (same config, same seed, same initial values) on both sides.

**Update FLOP/s** (our side): forward + backward FLOPs of the policy update over the seconds of our
trainer's ``forward`` + ``backward`` phases, next to a large fp32 matmul's rate measured in the same
run with the same threads. FLOPs are counted on real tokens only: ``T`` prompt + completion tokens
(no padding) through the decoder's matmuls (``P_body``: every ``nn.Linear`` weight in the layers,
adapters included), ``T_c`` completion tokens through ``lm_head`` (``P_head``; the only logits the
loss reads):

    forward  = 2 (P_body T + P_head T_c)
    backward = 2 (P_body T + P_head T_c)                 # input gradients through every layer
             + 2 (P_train_body T + P_train_head T_c)     # weight gradients of trainable matmuls only

so ``6 P T`` for full fine-tuning and ~``4 P T`` for LoRA. Attention scores, norms and padding are
not counted (with <= 256-token sequences attention adds a few % on SmolLM2-135M), so the figure is
the useful rate, a lower bound on what the hardware did.

Prompts: both sides render ``render_prompt(question)`` = ``moalign.text.format_prompt`` (the raw
``Question: ...\\nSolution:`` form the trainer's rollouts use); when the chat template arrives in
``moalign/text.py``, switching this one function (and the trainer's own call) switches both sides.

    python benchmarks/rl_throughput.py                   # 10 steps, 8 prompts x 8, 128 new tokens
    python benchmarks/rl_throughput.py --gen-batches 1 2 8 64   # + generation-only sweep (greedy)
    python benchmarks/rl_throughput.py --model models/smollm2-135m-instruct --lora-r 16 \\
        --sides trl fast --steps 4 --prompts 8 --group 4 --max-new-tokens 128   # the real model, LoRA

``--json PATH`` (relative to the project root) also writes everything printed, the command line and the
environment (versions, cores, memory) to one file; ``python -m moalign.report`` renders benchmarks/README's
throughput tables from the files under ``benchmarks/results/rl_throughput/``.
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

from moalign.report.throughput import lines  # the printed report, which benchmarks/README quotes

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ["accuracy", "conciseness", "clarity"]
SIDES = {"trl": "TRL GRPOTrainer", "hf": "moalign hf/fixed", "fast": "moalign fast/fixed", "bf16": "moalign fast-bf16/fixed",
         "fast-gradient": "moalign fast/gradient", "fast-gradient-4": "moalign fast/gradient every 4"}
TOKENS: list[tuple[int, int]] = []  # (real tokens, completion tokens) of each rollout batch of our side


def render_prompt(question: str) -> str:
    """The prompt both trainers see (the one switch for the chat template, see the module docstring)."""
    from moalign.text import format_prompt

    return format_prompt(question)


def _model_path(a) -> Path:
    from moalign.packaged import resolve

    p = Path(resolve(a.model)) if a.model else ROOT / "models/sft"
    p = p if p.is_absolute() else ROOT / p
    if (p / "config.json").exists():
        return p
    raise SystemExit(f"{p} has no config.json: run `dvc repro sft` (models/sft) or pass --model <HF folder | "
                     "packaged:<name>>")


def _policy(a):
    """(tokenizer, model) of ``--model``, LoRA-wrapped (seeded) when ``--lora-r`` > 0."""
    import torch

    from moalign.modeling import load_policy, load_tokenizer

    tok, model = load_tokenizer(_model_path(a)), load_policy(_model_path(a))
    if a.lora_r > 0:
        import peft

        torch.manual_seed(0)  # same adapter initial values on every side
        targets = "all-linear" if a.lora_targets == ["all-linear"] else a.lora_targets
        model = peft.get_peft_model(model, peft.LoraConfig(r=a.lora_r, lora_alpha=2 * a.lora_r, lora_dropout=0.0,
                                                           target_modules=targets, task_type="CAUSAL_LM"))
    return tok, model


def _rows(n: int):
    import datasets

    return list(datasets.load_from_disk(str(ROOT / "data/prepared/train")))[:n]


def update_flops(model, tokens: int, completion_tokens: int) -> float:
    """Forward + backward FLOPs of one update (module docstring), from the model's matmul sizes."""
    import torch

    from moalign.fastgen import _causal_lm

    lm = _causal_lm(model)
    body = train_body = 0
    for m in lm.model.layers.modules():
        if isinstance(m, torch.nn.Linear):
            body += m.weight.numel()
            train_body += m.weight.numel() if m.weight.requires_grad else 0
    head = lm.lm_head.weight.numel()
    train_head = head if lm.lm_head.weight.requires_grad else 0
    return 4.0 * (body * tokens + head * completion_tokens) \
        + 2.0 * (train_body * tokens + train_head * completion_tokens)


def _counting(backend: str) -> str:
    """Register ``<backend>-counted``: the same backend, recording the real tokens of sampled batches."""
    from moalign.generation import BACKENDS

    inner, name = BACKENDS.get(backend), f"{backend}-counted"

    def counted(model, tok, prompts, max_new_tokens, do_sample, *args, **kw):
        g = inner(model, tok, prompts, max_new_tokens, do_sample, *args, **kw)
        if do_sample:  # rollouts (validation decodes greedily)
            TOKENS.append((int(g.mask.sum()), int(g.completion_mask.sum())))
        return g

    if name not in BACKENDS:
        BACKENDS.register(name)(counted)
    return name


def run_ours(a, backend: str, strategy: str, grad_every: int = 1) -> dict:
    import numpy as np

    from moalign.rl.config import TrainConfig
    from moalign.rl.trainer import train

    tok, model = _policy(a)
    cfg = TrainConfig(max_steps=a.steps, prompts_per_step=a.prompts, group_size=a.group, max_new_tokens=a.max_new_tokens,
                      objectives=OBJECTIVES, eval_every=10**6, val_rows=1, val_samples=0, strategies=[strategy], lr=1e-5,
                      clip_eps=0.2, checkpoint_every=10**6, snapshot_every=10**6, generation_backend=_counting(backend),
                      logprob_buckets=a.buckets, grad_every=grad_every)
    rows = _rows(2000)
    t = time.perf_counter()  # wall clock of train(), like TRL's trainer.train() (one 1-prompt greedy check inside)
    hist = train(cfg, strategy, model, tok, rows, rows[:1], 0).history
    seconds = time.perf_counter() - t
    phases = sorted({k for h in hist for k in h  # seconds per phase (perf/*_s), not the perf/forwards/* counts
                     if k.startswith("perf/") and k.endswith("_s") and k != "perf/validation_s"})
    timed = hist[1:] if len(hist) > 1 else hist  # the first update pays one-off allocation costs
    flops = [update_flops(model, n, c) for n, c in TOKENS[-len(hist):]][-len(timed):]
    update_s = [h.get("perf/forward_s", 0.0) + h.get("perf/backward_s", 0.0) for h in timed]
    gen_s = [h.get("perf/generation_s", 0.0) for h in timed]
    return {"seconds": seconds, "phases": {k[5:-2]: float(np.mean([h.get(k, 0.0) for h in hist])) for k in phases},
            # decode rate of the rollouts (sampled completion tokens / generation seconds, first update excluded)
            # and the bytes one decode step must read: every weight once (KV cache and activations not counted)
            "decode_tokens_per_s": float(np.sum([c for _, c in TOKENS[-len(timed):]]) / max(np.sum(gen_s), 1e-9)),
            "weight_bytes": float(sum(p.numel() * (2 if backend == "fast-bf16" else p.element_size())  # bf16 copies
                                      for p in model.parameters())),
            "completion_length": float(np.mean([h["charts/completion_length"] for h in hist])),
            "micro_batches": float(np.mean([h.get("perf/micro_batches", 1.0) for h in hist])),
            "update_flops": float(np.mean(flops)), "update_flop_per_s": float(np.sum(flops) / np.sum(update_s)),
            "update_tokens": float(np.mean([n for n, _ in TOKENS[-len(timed):]]))}


def run_trl(a) -> dict:
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from moalign.rl.rewards import make_reward

    tok, model = _policy(a)
    rows = _rows(2000)
    ds = datasets.Dataset.from_list([{"prompt": render_prompt(r["question"]), "answer": r["answer"]} for r in rows])
    fns = []
    for name in OBJECTIVES:
        f = make_reward(name)

        def wrapped(completions, _f=f, **kw):
            return _f(completions, answer=kw["answer"], completion_lengths=[len(tok(c)["input_ids"]) for c in completions])

        wrapped.__name__ = name
        fns.append(wrapped)
    cfg = GRPOConfig(output_dir=str(ROOT / "checkpoints/bench_trl"), per_device_train_batch_size=a.prompts * a.group,
                     num_generations=a.group, max_completion_length=a.max_new_tokens, max_steps=a.steps,
                     learning_rate=1e-5, logging_steps=1, report_to="none", use_cpu=True, bf16=False,
                     save_strategy="no", beta=0.0, reward_weights=[1 / 3] * 3, temperature=1.0,
                     disable_tqdm=True, seed=0, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=fns, args=cfg, train_dataset=ds, processing_class=tok)
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return {"seconds": seconds, "completion_length": float(sum(lengths) / len(lengths)) if lengths else float("nan")}


def run_gen(a) -> dict:
    """Generation only: seconds per call of each backend at each batch size. Greedy, so both backends
    decode the same tokens (the same work); sampled rollouts of different lengths would time luck."""
    from moalign.generation import BACKENDS

    tok, model = _policy(a)
    prompts = [render_prompt(r["question"]) for r in _rows(max(a.gen_batches) + a.gen_reps)]
    out = {}
    for n in a.gen_batches:
        for backend in ("hf", "fast"):
            BACKENDS.get(backend)(model, tok, prompts[:n], a.max_new_tokens, False)  # warm-up
            t = time.perf_counter()
            for rep in range(a.gen_reps):
                BACKENDS.get(backend)(model, tok, prompts[rep : rep + n], a.max_new_tokens, False)
            out[f"{backend}@{n}"] = (time.perf_counter() - t) / a.gen_reps
    return {"gen": out}


def run_matmul(a) -> dict:
    """fp32 GFLOP/s of a large square matmul (2 n^3 FLOPs) and the memory bandwidth of a large copy (bytes read +
    written per second), each the best of ``reps`` after a warm-up."""
    import torch

    n, reps = a.matmul_size, 5
    x, y = torch.randn(n, n), torch.randn(n, n)
    x @ y
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        x @ y
        best = min(best, time.perf_counter() - t)
    src = torch.ones(getattr(a, "copy_mib", 1024) * 2**18)  # fp32; 1 GiB by default: far beyond the caches
    dst = torch.empty_like(src)
    dst.copy_(src)
    copy = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        dst.copy_(src)
        copy = min(copy, time.perf_counter() - t)
    # memory bandwidth as a copy moves it: read + write of the buffer per copy
    return {"matmul_flop_per_s": 2.0 * n**3 / best, "matmul_size": n, "copy_bytes_per_s": 2.0 * src.nbytes / copy}


def _side(a, side: str) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    runners = {"trl": run_trl, "gen": run_gen, "matmul": run_matmul}
    if side in runners:
        return runners[side](a)
    if side == "bf16":  # the fast-bf16 rollout backend (bf16 decode matmuls), fixed strategy
        return run_ours(a, "fast-bf16", "fixed")
    parts = side.split("-")  # backend[-strategy[-grad_every]]
    return run_ours(a, parts[0], parts[1] if len(parts) > 1 else "fixed", int(parts[2]) if len(parts) > 2 else 1)


def _args(a) -> list[str]:
    """The shared options, for each side's subprocess."""
    out = [f"--steps={a.steps}", f"--prompts={a.prompts}", f"--group={a.group}", f"--buckets={a.buckets}",
           f"--max-new-tokens={a.max_new_tokens}", f"--threads={a.threads}", f"--gen-reps={a.gen_reps}",
           f"--lora-r={a.lora_r}", f"--matmul-size={a.matmul_size}", "--lora-targets", *a.lora_targets,
           "--gen-batches", *map(str, a.gen_batches)]
    return out + ([f"--model={a.model}"] if a.model else [])


def _env() -> dict:
    """Where the numbers were measured (no torch import: package metadata only)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def ver(p: str) -> str | None:
        try:
            return version(p)
        except PackageNotFoundError:
            return None

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else None
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "memory_gib": round(mem, 1) if mem else None,
            **{p: ver(p) for p in ("torch", "transformers", "trl", "peft")}}


def record(a, out: dict, argv: list[str]) -> dict:
    """Everything :func:`lines` (moalign/report/throughput.py) prints, as one JSON-able record (``--json``)."""
    r = {"command": " ".join(["python benchmarks/rl_throughput.py", *argv]), "date": time.strftime("%Y-%m-%d"),
         "env": _env(), "config": {k: v for k, v in vars(a).items() if k not in ("side", "json")},
         "order": list(a.sides), "labels": {s: SIDES[s] for s in a.sides}, "sides": {s: out[s] for s in a.sides},
         "matmul": out.get("matmul"), "gen": out.get("gen", {}).get("gen"), "ratios": {}}
    sp = {s: out[s]["steps_per_s"] for s in a.sides}
    bw = (out.get("matmul") or {}).get("copy_bytes_per_s")
    for ours in ("fast", "bf16"):
        if "trl" in sp and ours in sp:
            r["ratios"][f"{ours} vs TRL"] = sp[ours] / sp["trl"]
            r["ratios"][f"{ours} vs TRL peak memory"] = out[ours]["peak_rss_mb"] / out["trl"]["peak_rss_mb"]
            lengths = (out[ours].get("completion_length"), out["trl"].get("completion_length"))
            if all(lengths):  # the same work per generated token
                r["ratios"][f"{ours} vs TRL per generated token"] = (sp[ours] * lengths[0]) / (sp["trl"] * lengths[1])
        if bw and ours in out and out[ours].get("weight_bytes"):  # decode bound: batch x bandwidth / weight bytes
            bound = a.prompts * a.group * bw / out[ours]["weight_bytes"]
            r["ratios"][f"{ours} decode vs bandwidth bound"] = out[ours]["decode_tokens_per_s"] / bound
            r["decode_bound_tokens_per_s" + ("" if ours == "fast" else f" {ours}")] = bound
    if "trl" in sp and "hf" in sp:
        r["ratios"]["hf vs TRL"] = sp["hf"] / sp["trl"]
    for side in ("fast-gradient", "fast-gradient-4"):
        if "fast" in sp and side in sp:
            r["ratios"][f"{side} step time vs fast"] = sp["fast"] / sp[side]
    return r


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="policy: an HF folder or packaged:<name> (default models/sft)")
    ap.add_argument("--lora-r", type=int, default=0, help="LoRA rank on both sides (0: train all weights)")
    ap.add_argument("--lora-targets", nargs="+", default=["q_proj", "k_proj", "v_proj", "o_proj"],
                    help="LoRA target modules, or all-linear")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--buckets", type=int, default=4, help="train.logprob_buckets of our side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    ap.add_argument("--gen-batches", type=int, nargs="*", default=[], help="generation-only sweep over these batch sizes")
    ap.add_argument("--gen-reps", type=int, default=5)
    ap.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n fp32 matmul that measures the peak")
    ap.add_argument("--json", help="also write everything printed (and the environment) to this JSON file")
    ap.add_argument("--side", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    a = ap.parse_args(argv)
    if a.side:
        res = _side(a, a.side)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(res))
        return
    _model_path(a)  # fail before any subprocess
    out = {}
    for side in ["matmul"] + a.sides + (["gen"] if a.gen_batches else []):
        p = subprocess.run([sys.executable, __file__, *_args(a), "--side", side], capture_output=True, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=ROOT)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{side} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        out[side] = json.loads(line[7:])
        if "seconds" in out[side]:
            out[side]["steps_per_s"] = a.steps / out[side]["seconds"]
    rec = record(a, out, argv)
    print("\n".join(lines(rec)))
    if a.json:
        from moalign.io import write_json

        write_json(ROOT / a.json, rec)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
