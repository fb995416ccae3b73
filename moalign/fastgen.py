"""``fast`` rollout backend: a lean KV-cached sampling loop of our own (``generation_backend: fast``).

Why not ``model.generate``: for the small policies RL runs on, a decode step is dominated by
per-token overhead, not arithmetic (measured on the tiny default policy: 21 ms per token step in
``generate`` against ~2 ms of matmuls). This loop keeps only what sampling needs:

1. **prefill** with the model's own forward (left padding, position ids from the attention mask,
   exactly as the ``hf`` backend), then copy its cache into **preallocated** K/V buffers
   ``(n, kv_heads, prompt + max_new_tokens, head_dim)``;
2. **decode** one token per step through the decoder layers' own modules (norms, projections,
   rotary embedding, MLP: so LoRA adapters and bf16 keep working) with attention over the live
   prefix of the buffers, no logits processors, no stopping-criteria objects, no per-step mask
   rebuilding (moalign/fastgen_fused.py);
3. **sampling** by inverse CDF (``searchsorted`` on the cumulative probabilities, ~10x cheaper on
   CPU than ``torch.multinomial``'s exponential race), temperature and nucleus (top-p) as
   ``generate``'s ``TemperatureLogitsWarper`` / ``TopPLogitsWarper``: the nucleus is the smallest
   set of most likely tokens whose mass reaches ``top_p``, the token that crosses it included;
   uniforms come from a private ``torch.Generator`` seeded by ``seed``, one per
   original row per step, so a row's sample does not depend on which other rows are still alive;
4. **finished rows stop costing compute**: rows that emitted EOS are dropped from the live batch
   (and their K/V rows compacted away) once they are a quarter of it;
5. stop when every row is done or at ``max_new_tokens``.

Returned ``Generations`` have the ``hf`` backend's layout (prompt left-padded, completion
right-padded, ``completion_mask`` up to and including EOS), so the trainer and evaluation are
backend-agnostic. Greedy decoding returns the same tokens as ``hf`` (tests/test_fastgen.py,
tests/test_fastgen_arch.py); sampled token frequencies follow the distribution HF's own warpers
define on padded prompts, rows are independent of their batch companions
(tests/test_fastgen_sampling.py).

Which models take the fused decode step: allow-listed Llama-family decoders (Llama, Qwen2/2.5,
Qwen3, Mistral without an active sliding window) that pass a numeric self-check at first use; see
moalign/fastgen_fused.py, which logs the choice once per model. Any other causal LM runs the
*generic* step: the model's own forward per token with a ``DynamicCache`` and the same sampling and
row compaction (``batch_select_indices``). Both paths are this backend.

On CUDA, ``static=True`` (the default there) keeps shapes fixed - no compaction, attention over
the whole buffer under a mask - and compiles the decode step with
``torch.compile(mode="reduce-overhead")`` (CUDA graphs); ``benchmarks/gpu_check.py`` measures it.

Like the ``hf`` backend it stops at ``tok.eos_token_id`` and samples with exactly ``temperature`` /
``top_p`` (no top-k); unlike ``generate`` it never applies the rest of a checkpoint's
``generation_config`` (e.g. Qwen-Instruct's ``repetition_penalty``): rollouts are samples of the
policy itself, which is what the policy-gradient loss assumes.

Departure: the sampled tokens' log-probs are not returned. The trainer takes one optimizer step
per rollout batch, so the "old" log-probs are the detached current ones it computes anyway; a
second copy from the sampler would save no forward pass.
"""

from __future__ import annotations

import logging

import torch

from moalign.fastgen_fused import _LOW_VERDICTS, FusedStep, cache_kwargs, choose, low_check, new_cache
from moalign.generation import BACKENDS, Generations, assemble, forward_params, position_ids

log = logging.getLogger("moalign.fastgen")


def _causal_lm(model):
    """The ``*ForCausalLM`` inside PEFT / accelerate wrappers."""
    while True:
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif hasattr(model, "module") and not hasattr(model, "lm_head"):
            model = model.module
        else:
            return model


class _Sampler:
    """Greedy / temperature / top-p sampling by inverse CDF with one uniform per original row."""

    def __init__(self, n: int, do_sample: bool, temperature: float, top_p: float, seed: int | None, device):
        self.n, self.do_sample, self.temperature, self.top_p = n, do_sample, temperature, top_p
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))

    def __call__(self, logits: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        if not self.do_sample:
            return logits.argmax(-1)
        u = torch.rand(self.n, generator=self.gen, device=logits.device)[live]  # (n_live,)
        probs = torch.softmax(logits.float() / self.temperature, -1)
        if self.top_p < 1.0:
            probs, order = probs.sort(-1, descending=True)
            cum = probs.cumsum(-1)
            probs = probs.masked_fill(cum - probs > self.top_p, 0.0)  # HF nucleus: the crossing token stays
        cdf = probs.cumsum(-1)
        idx = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)
        idx = idx.clamp_(max=probs.shape[-1] - 1)
        return order.gather(-1, idx[:, None]).squeeze(-1) if self.top_p < 1.0 else idx


class _GenericStep:
    """Any causal LM: its own forward per token with a ``DynamicCache``."""

    def __init__(self, model, cache):
        self.m, self.cache, self.kw = model, cache, cache_kwargs(model, cache)

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)

    def __call__(self, tokens, pos, col, mask):
        out = self.m(input_ids=tokens[:, None], attention_mask=(mask[:, : col + 1] == 0).long(),
                     position_ids=pos[:, None], use_cache=True, **self.kw)
        return out.logits[:, -1]


@torch.no_grad()
def decode(model, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, sampler: _Sampler, eos: int,
           pad: int, static: bool = False, compile_step: bool = False, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Completion ids (n, T) of one left-padded batch, ``pad`` after EOS; T = steps actually run. ``dtype``: the
    decode step's matmuls in that precision (moalign/fastgen_fused.py; the ``fast-bf16`` backend)."""
    n, P = ids.shape
    total = P + max_new_tokens
    if static:  # buffer lengths in steps of 64 so compiled shapes repeat across batches of other prompt lengths
        total = -(-total // 64) * 64
    lm = _causal_lm(model)
    cache = new_cache(lm.config)
    keep = {"logits_to_keep": 1} if "logits_to_keep" in forward_params(lm) else {}  # only the next token's
    # a group's G rollouts share one prompt: prefill each distinct (prompt, padding) row once, then copy its
    # K/V and next-token logits to every row of it (G = 8: an eighth of the prefill)
    uniq, inverse = torch.unique(torch.cat([ids, mask], 1), dim=0, return_inverse=True)
    shared = uniq.shape[0] < n
    first = torch.full((uniq.shape[0],), n, dtype=torch.long, device=ids.device).scatter_reduce_(
        0, inverse, torch.arange(n, device=ids.device), "amin") if shared else None  # a row of each
    pids, pmask = (ids[first], mask[first]) if shared else (ids, mask)
    out = lm(input_ids=pids, attention_mask=pmask, position_ids=position_ids(pmask), use_cache=True,
             **cache_kwargs(lm, cache), **keep)
    logits = out.logits[:, -1]
    if shared:
        cache.batch_select_indices(inverse)
        logits = logits[inverse]
    fused = choose(lm, total)[0]
    low = _low_dtype(lm, dtype, fused)
    step = FusedStep(lm, cache, n, total, P, low) if fused else _GenericStep(lm, cache)
    static = static and fused
    run = torch.compile(step.__call__, mode="reduce-overhead", dynamic=False) if compile_step and static else step
    amask = torch.zeros(n, total, dtype=logits.dtype, device=ids.device)  # additive bias, 0 = attend
    amask[:, :P].masked_fill_(mask == 0, float("-inf"))
    pos = position_ids(mask)[:, -1]  # (n,)
    comp = torch.full((n, max_new_tokens), pad, dtype=ids.dtype, device=ids.device)
    live = torch.arange(n, device=ids.device)  # original row of each live row
    done = torch.zeros(n, dtype=torch.bool, device=ids.device)  # per live row: emitted EOS
    steps = 0
    for t in range(max_new_tokens):
        tok = sampler(logits, live).masked_fill(done, pad)
        comp[live, t] = tok
        done = done | (tok == eos)
        steps = t + 1
        if t == max_new_tokens - 1 or bool(done.all()):
            break
        if not static and int(done.sum()) * 4 >= len(live):  # drop finished rows once they are a quarter
            rows = (~done).nonzero().squeeze(-1)
            step.keep(rows)
            live, done, pos, amask, tok = live[rows], done[rows], pos[rows], amask[rows], tok[rows]
        pos = pos + 1
        col = torch.tensor(P + t, device=ids.device) if static else P + t
        logits = run(tok, pos, col, amask)
    return comp[:, :steps]


def _low_dtype(lm, dtype: torch.dtype | None, fused: bool) -> torch.dtype | None:
    """``dtype`` when the low-precision step may run on ``lm`` (fused step, other than the model's dtype, its
    self-check passed), else None; says once per model why not."""
    if dtype is None or dtype == next(lm.parameters()).dtype:
        return None
    if not fused:
        seen = _LOW_VERDICTS.setdefault(lm, {})
        if "generic" not in seen:
            seen["generic"] = True
            log.warning("fast-%s decode needs the fused step; %s decodes in its own dtype (generic step)",
                        str(dtype).split(".")[-1], getattr(lm.config, "model_type", "this model"))
        return None
    return dtype if low_check(lm, dtype)[0] else None


@BACKENDS.register("fast")
@torch.no_grad()
def fast_generate(
    model, tok, prompts: list[str], max_new_tokens: int, do_sample: bool,
    temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None, batch_size: int = 256,
    static: bool | None = None, compile_step: bool | None = None, decode_dtype: torch.dtype | None = None,
) -> Generations:
    """Same contract as the ``hf`` backend (moalign/generation.py). ``static``/``compile_step``
    default to True on CUDA (fixed shapes + CUDA graphs) and False elsewhere. ``decode_dtype``: the decode
    step's matmuls in that precision (the ``fast-bf16`` backend)."""
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    static = cuda if static is None else static
    compile_step = cuda if compile_step is None else compile_step
    was_training = model.training
    model.eval()
    sampler_seed = seed
    chunks = []
    for c, i in enumerate(range(0, len(prompts), batch_size)):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        n = enc["input_ids"].shape[0]
        sampler = _Sampler(n, do_sample, temperature, top_p, None if sampler_seed is None else sampler_seed + c, device)
        comp = decode(model, enc["input_ids"], enc["attention_mask"].long(), max_new_tokens, sampler,
                      tok.eos_token_id, tok.pad_token_id, static, compile_step, decode_dtype)
        chunks.append((enc["input_ids"], enc["attention_mask"].long(), comp))
    if was_training:
        model.train()
    return assemble(tok, chunks)


@BACKENDS.register("fast-bf16")
def fast_bf16_generate(model, tok, prompts: list[str], max_new_tokens: int, do_sample: bool,
                       temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None, **kw) -> Generations:
    """The ``fast`` backend with bf16 decode matmuls over fp32 residuals, norms, attention and K/V
    (moalign/fastgen_fused.py): half the weight bytes a decode step reads. An option, fp32 (``fast``) is the
    reference: benchmarks/bf16_decode.py compares the two on a model's validation prompts. On a CPU without
    bf16 instructions (avx512_bf16 / AMX) bf16 matmuls are emulated and slower."""
    return fast_generate(model, tok, prompts, max_new_tokens, do_sample, temperature, top_p, seed,
                         decode_dtype=torch.bfloat16, **kw)
