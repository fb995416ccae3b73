"""benchmarks/rl_throughput.py's printed report of one record: the benchmark prints it, and benchmarks/README's
throughput blocks (moalign/report/current.py) quote its config and ratio lines from the committed ``--json`` files."""

from __future__ import annotations


def lines(r: dict) -> list[str]:
    """The printed report of one benchmarks/rl_throughput.py ``record`` (what it prints and what ``--json`` writes)."""
    c = r["config"]
    lora = f"LoRA r={c['lora_r']} on {' '.join(c['lora_targets'])}" if c["lora_r"] > 0 else "all weights"
    out = [f"config: model={c['model'] or 'models/sft'} ({lora}) steps={c['steps']} prompts={c['prompts']} "
           f"group={c['group']} max_new_tokens={c['max_new_tokens']} threads={c['threads']} buckets={c['buckets']}"]
    for side in r["order"]:  # the JSON file's keys are sorted
        x = r["sides"][side]
        ph = "  ".join(f"{k} {v:.3f}" for k, v in x.get("phases", {}).items())
        out.append(f"{r['labels'][side]:24s} {x['steps_per_s']:.3f} steps/s  peak RSS {x['peak_rss_mb']:.0f} MB"
                   f"  mean completion {x.get('completion_length', float('nan')):.1f}"
                   + (f"  s/step: {ph}" if ph else ""))
    q = r["ratios"]
    for ours, tag in (("fast", ""), ("bf16", "fast-bf16 ")):
        if f"{ours} vs TRL" in q:
            out.append(f"{tag}ratio vs TRL: x{q[f'{ours} vs TRL']:.2f} "
                       f"(peak memory x{q[f'{ours} vs TRL peak memory']:.2f})")
        if f"{ours} vs TRL per generated token" in q:
            out.append(f"{tag}ratio vs TRL per generated token: x{q[f'{ours} vs TRL per generated token']:.2f}")
        if f"{ours} decode vs bandwidth bound" in q:
            f, m = r["sides"][ours], r["matmul"]
            bound = r["decode_bound_tokens_per_s" + ("" if ours == "fast" else f" {ours}")]
            out.append(f"{tag}decode: {f['decode_tokens_per_s']:.0f} tokens/s at batch {c['prompts'] * c['group']} = "
                       f"{100 * q[f'{ours} decode vs bandwidth bound']:.0f}% of the bound {bound:.0f} "
                       f"tokens/s (copy bandwidth {m['copy_bytes_per_s'] / 1e9:.1f} GB/s, {f['weight_bytes'] / 1e9:.2f} "
                       "GB of weights read per decode step)")
    if "hf vs TRL" in q:
        out.append(f"hf backend vs TRL: x{q['hf vs TRL']:.2f}")
    for side in ("fast-gradient", "fast-gradient-4"):
        if f"{side} step time vs fast" in q:
            out.append(f"{r['labels'][side][8:]} / fixed step time: x{q[f'{side} step time vs fast']:.2f}")
    peak = (r.get("matmul") or {}).get("matmul_flop_per_s")
    for side in r["order"]:
        x = r["sides"][side]
        if "update_flop_per_s" in x and peak:
            out.append(f"update FLOP/s ({r['labels'][side]}): {x['update_flop_per_s'] / 1e9:.2f} GFLOP/s = "
                       f"{100 * x['update_flop_per_s'] / peak:.0f}% of the measured fp32 matmul rate "
                       f"{peak / 1e9:.2f} GFLOP/s ({c['matmul_size']}^3, {c['threads']} threads); "
                       f"{x['update_flops'] / 1e9:.1f} GFLOP per update over {x['update_tokens']:.0f} real tokens")
    for n in c["gen_batches"] if r.get("gen") else []:
        g = r["gen"]
        out.append(f"generation batch {n:4d}: hf {g[f'hf@{n}']:.3f} s  fast {g[f'fast@{n}']:.3f} s  "
                   f"x{g[f'hf@{n}'] / g[f'fast@{n}']:.2f}")
    return out
