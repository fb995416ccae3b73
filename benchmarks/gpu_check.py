"""GPU check: the RL update loop on CUDA in bf16 with a ~0.5B Qwen2 model, for each rollout backend.

Builds Qwen2.5-0.5B's architecture from config (random weights: nothing is downloaded), a
tokenizer trained here with ``tokenizers``, and runs a few GRPO updates per backend (``hf`` =
``model.generate``; ``fast`` = moalign/fastgen.py with static shapes and, unless ``--no-compile``,
``torch.compile(mode="reduce-overhead")`` = CUDA graphs): sample ``prompts x group`` rollouts,
score them with two cheap programmatic rewards, group-normalised advantages
(``moalign.rl.estimators``), clipped policy loss on length-bucketed log-probs, AdamW step.
It imports only torch, transformers, tokenizers and moalign's torch-only modules, so it runs on
a machine that has no pydantic, datasets, moocore or mlflow. Prints per backend: rollout
tokens/s, train tokens/s, MFU of the update (6 * params * tokens / time / peak bf16 FLOP/s),
peak memory, and whether ``fast``'s greedy tokens agree with ``generate``'s.

    python benchmarks/gpu_check.py                 # one CUDA GPU, < 8 minutes on an H100/H200
    python benchmarks/gpu_check.py --cpu-smoke     # the same code on a tiny model on CPU (tests)

The first step of each backend (allocation, compilation) is reported apart and excluded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # moalign without installing it: the GPU machine may lack its other dependencies

QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, tie_word_embeddings=True,
                 rope_theta=1000000.0, rms_norm_eps=1e-6)
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=512, max_position_embeddings=512, tie_word_embeddings=True)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="updates per backend after the warm-up step")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--backends", nargs="+", default=["hf", "fast"])
    ap.add_argument("--no-compile", action="store_true", help="fast backend without torch.compile (static shapes only)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s (default: from GPU name)")
    ap.add_argument("--time-budget", type=float, default=420.0, help="seconds; stop starting new steps after this")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model, fp32, on CPU: checks the code, not the GPU")
    return ap.parse_args(argv)


def prompts(n: int) -> list[str]:
    return [f"Question: {3 * i + 7} + {5 * i + 2} = ?\nSolution:" for i in range(n)]


def rewards(texts: list[str], lengths: list[int], max_new: int):
    """(N, 2): share of digits in the text, and 1 - length / max_new (both cheap, both vary)."""
    import torch

    digits = [sum(c.isdigit() for c in t) / max(len(t), 1) for t in texts]
    return torch.tensor([digits, [1 - n / max_new for n in lengths]], dtype=torch.float32).T


def build(a):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from moalign.modeling import train_tokenizer

    texts = [f"Question: {x} + {y} = ?\nSolution: 1. {x} + {y} = {x + y}\n\\boxed{{{x + y}}}" for x in range(60)
             for y in range(0, 60, 7)]
    tok = train_tokenizer(texts, 512)
    shape = TINY if a.cpu_smoke else QWEN2_05B
    cfg = AutoConfig.for_model("qwen2", pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                               bos_token_id=tok.bos_token_id, **shape)
    device = torch.device("cpu" if a.cpu_smoke else "cuda")
    dtype = torch.float32 if a.cpu_smoke else torch.bfloat16
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype).to(device)
    return tok, model, device


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def greedy_agreement(model, tok, device, compile_step: bool) -> float:
    """Share of greedy completion tokens where ``fast`` (as configured for this device) equals ``generate``."""
    from moalign.generation import BACKENDS

    ps = prompts(8)
    ref = BACKENDS.get("hf")(model, tok, ps, 32, False)
    got = BACKENDS.get("fast")(model, tok, ps, 32, False, compile_step=compile_step)
    T = min(ref.ids.shape[1], got.ids.shape[1])
    m = ref.completion_mask[:, :T].bool()
    return float((ref.ids[:, :T][m] == got.ids[:, :T][m]).float().mean())


def run_backend(a, name: str, tok, model, device, peak: float) -> dict:
    import torch

    from moalign.generation import BACKENDS, token_logprobs
    from moalign.rl.estimators import combine_advantages, policy_loss

    gen = BACKENDS.get(name)
    kw = {"compile_step": not a.no_compile} if name == "fast" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    n_params = sum(p.numel() for p in model.parameters())
    ps = [p for p in prompts(a.prompts) for _ in range(a.group)]
    rows, t0 = [], time.perf_counter()
    for step in range(a.steps + 1):
        if step > 1 and time.perf_counter() - t0 > a.time_budget:
            print(f"  {name}: time budget reached after {step - 1} measured steps")
            break
        sync(device)
        t = time.perf_counter()
        g = gen(model, tok, ps, a.max_new_tokens, True, 1.0, 1.0, seed=step, **kw)
        sync(device)
        t_gen = time.perf_counter() - t
        r = rewards(g.texts, g.lengths, a.max_new_tokens).to(device).view(a.prompts, a.group, 2)
        ids, mask, cmask = g.ids.to(device), g.mask.to(device), g.completion_mask[:, 1:].to(device)
        sync(device)
        t = time.perf_counter()
        model.train()
        logp = token_logprobs(model, ids, mask, 4, g.completion_start)[:, 1:]
        adv = combine_advantages(r, torch.tensor([0.5, 0.5], device=device), "grpo").reshape(-1)
        loss, _ = policy_loss(logp, logp.detach(), adv, cmask, 0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync(device)
        t_upd = time.perf_counter() - t
        rows.append({"gen_s": t_gen, "upd_s": t_upd, "new_tokens": sum(g.lengths), "train_tokens": int(mask.sum())})
    first, rest = rows[0], rows[1:] or rows
    gen_s, upd_s = sum(x["gen_s"] for x in rest), sum(x["upd_s"] for x in rest)
    train_tokens = sum(x["train_tokens"] for x in rest)
    return {"backend": name, "steps": len(rest), "first_step_s": first["gen_s"] + first["upd_s"],
            "rollout_tok_s": sum(x["new_tokens"] for x in rest) / gen_s, "train_tok_s": train_tokens / upd_s,
            "mfu": 6 * n_params * train_tokens / upd_s / (peak * 1e12) if peak else float("nan"),
            "step_s": (gen_s + upd_s) / len(rest), "params": n_params}


def main(argv=None) -> int:
    a = parse(argv)
    import torch

    if not a.cpu_smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible to torch (torch.cuda.is_available() is False). "
              "Fix: run it on a machine with an NVIDIA GPU and a CUDA build of torch, or pass --cpu-smoke "
              "to exercise the code on a tiny CPU model.", file=sys.stderr)
        return 2
    tok, model, device = build(a)
    name = "cpu" if a.cpu_smoke else torch.cuda.get_device_name(0)
    peak = a.peak_tflops if a.peak_tflops is not None else next(
        (v for k, v in PEAK_TFLOPS.items() if k in name), 0.0)
    print(f"device: {name}  torch {torch.__version__}  params {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M  "
          f"batch {a.prompts}x{a.group}  max_new_tokens {a.max_new_tokens}  peak {peak or 'unknown'} TFLOP/s")
    if "fast" in a.backends:
        print(f"fast vs generate, greedy token agreement: {greedy_agreement(model, tok, device, not a.no_compile and not a.cpu_smoke):.3f}")
    results = []
    for b in a.backends:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        res = run_backend(a, b, tok, model, device, peak)
        res["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        results.append(res)
    print("| backend | steps | first step s | step s | rollout tok/s | train tok/s | update MFU | peak mem GB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['steps']} | {r['first_step_s']:.1f} | {r['step_s']:.2f} | {r['rollout_tok_s']:.0f} | "
              f"{r['train_tok_s']:.0f} | {r['mfu']:.3f} | {r['peak_mem_gb']:.1f} |")
    by = {r["backend"]: r for r in results}
    if "hf" in by and "fast" in by:
        print(f"fast/hf rollout tokens/s: x{by['fast']['rollout_tok_s'] / by['hf']['rollout_tok_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
