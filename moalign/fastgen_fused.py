"""The ``fast`` backend's fused decode step (moalign/fastgen.py) and the rule that decides when it runs.

The fused step re-implements one Llama decoder layer around the model's own modules (norms,
projections, rotary embedding, MLP) with K/V in preallocated buffers. It is exact only for decoders
whose layer *is* that computation, which module names cannot prove: Gemma2 has the same module
names but scales embeddings, adds post-norms and soft-caps logits; Granite multiplies residuals and
logits; StableLM rotates part of each head; Gemma3 needs a per-layer-type rotary embedding. So
:func:`choose` takes the fused step only when all of these hold, else the generic step (the
model's own forward per token), and logs one line per model saying which and why:

1. ``config.model_type`` is in :data:`FUSED_MODEL_TYPES` (an allow-list of families checked
   token-for-token against ``generate`` in tests/test_fastgen_arch.py);
2. the module layout is there (q/k/v/o, gate/up/down, two norms, ``rotary_emb``);
3. no active sliding window shorter than the batch's sequence (the buffers attend to everything);
4. a **numeric self-check** at first use: the fused step's next-token logits on a short left-padded
   batch equal the model's own forward (relative max error under :data:`SELF_CHECK_TOL`). The
   verdict is cached per model instance and module layout (a LoRA wrap re-checks).

Weight fusion (q|k|v and gate|up concatenated, one matmul each) applies only to *frozen* plain
``nn.Linear`` groups (``requires_grad=False``, e.g. the base of a LoRA policy), and the concatenated
copies are cached per model, keyed by each weight's storage pointer and version counter, so a
``load_state_dict`` or an in-place edit under ``no_grad`` rebuilds them. Trainable weights are never
copied: an optimizer step may not bump the version counter (``fused=True`` AdamW, writes through
``.data``), so a cache of them could go stale between RL steps. Before this cache, every call
concatenated all layers' weights (on a 30-layer 135M model ~70M floats copied per call, the largest
per-call setup cost in a profile of 4 short greedy prompts). Frozen weights edited through ``.data``
are not seen; call :func:`clear_cache` after such an edit.

**Low-precision decode** (``FusedStep(dtype=torch.bfloat16)``, the ``fast-bf16`` backend): every matmul of
the decode step (q|k|v, o, gate|up, down, lm_head) reads a bf16 copy of the module's *effective* weight
(a LoRA module's base weight plus its active adapters' delta, PEFT's ``get_delta_weight``: merged, so
the adapters cost nothing per token), while the residual stream, norms, rotary embedding, attention and
the K/V buffers stay in the model's dtype and each matmul's output is cast back to it. A decode step is
bound by reading the weights (issue 28: ~0.54 GB per step in fp32 on SmolLM2-135M), so half the bytes is
the point; the prompt's prefill stays in the model's own dtype. Frozen weights' copies are cached as the
fused ones (storage pointer + version); weights with a trainable part (the LoRA adapters) are rebuilt at
every decode call. It runs only on the fused step, after its own self-check (:func:`low_check`):
the bf16 step's next-token logits against the model's own forward, relative error under
:data:`LOW_CHECK_TOL`; else the step stays in the model's dtype and says why.
"""

from __future__ import annotations

import logging
import sys
import weakref

import torch

log = logging.getLogger("moalign.fastgen")

FUSED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
SELF_CHECK_TOL = {torch.float32: 1e-4, torch.float64: 1e-6}  # relative max |logit| error; others 3e-2
_VERDICTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (layout key, ok, why)
_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (weights key, qkv, gate_up)
_LOW: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {frozen weight key: low-precision copy}
_LOW_VERDICTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {dtype: (ok, why)}
TOP_EXACT = 32  # the low-precision head's top logits recomputed exactly (exact_top)
LOW_CHECK_TOL = 3e-2  # relative max |logit| error of the low-precision step (bf16 keeps ~3 significant digits)


def new_cache(config):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=config)
    except TypeError:  # transformers < 4.56
        return DynamicCache()


def cache_kwargs(model, cache) -> dict:
    """Cache keyword of this transformers version (``cache`` from 5.x, ``past_key_values`` before)."""
    from moalign.generation import forward_params  # generation imports this module (via fastgen)

    return {"cache": cache} if "cache" in forward_params(model) else {"past_key_values": cache}


def _cache_kv(cache, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return cache.layers[i].keys, cache.layers[i].values
    return cache.key_cache[i], cache.value_cache[i]


def _has_layout(model) -> bool:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or not hasattr(model, "lm_head") or not hasattr(inner, "rotary_emb"):
        return False
    a, m = layers[0].self_attn, layers[0].mlp
    return all(hasattr(a, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "scaling")) and \
        all(hasattr(m, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn")) and \
        hasattr(layers[0], "input_layernorm") and hasattr(layers[0], "post_attention_layernorm")


def choose(model, total_len: int) -> tuple[bool, str]:
    """(fused?, why) for the ``*ForCausalLM`` ``model`` decoding sequences of ``total_len`` tokens."""
    cfg = model.config
    mt, window = getattr(cfg, "model_type", None), getattr(cfg, "sliding_window", None)
    windowed = window is not None and getattr(cfg, "use_sliding_window", True) and window < total_len
    allowed = mt in FUSED_MODEL_TYPES
    key = (mt, str(next(model.parameters()).dtype), windowed,
           tuple(type(m).__name__ for m in model.modules()) if allowed else ())
    cached = _VERDICTS.get(model)
    if cached is None or cached[0] != key:
        if not allowed:
            ok, why = False, f"model_type {mt!r} is not in the fused allow-list {FUSED_MODEL_TYPES}"
        elif not _has_layout(model):
            ok, why = False, "no Llama-family module layout"
        elif windowed:
            ok, why = False, f"sliding window {window} is shorter than the sequence ({total_len} tokens)"
        else:
            tol = SELF_CHECK_TOL.get(next(model.parameters()).dtype, 3e-2)
            try:
                err = self_check_error(model)
                ok, why = err <= tol, f"self-check relative logit error {err:.1e} (tolerance {tol:.0e})"
            except Exception as e:  # noqa: BLE001 - a layout the fused step cannot even run
                ok, why = False, f"self-check failed: {type(e).__name__}: {str(e)[:120]}"
        cached = (key, ok, why)
        _VERDICTS[model] = cached
        log.info("fast decode of %s: %s step, %s", mt, "fused" if ok else "generic", why)
    return cached[1], cached[2]


@torch.no_grad()
def self_check_error(model, dtype: torch.dtype | None = None) -> float:
    """max |fused - forward| / max |forward| of next-token logits on a 2 x 6 batch (one row left-padded);
    ``dtype``: of the low-precision step."""
    from moalign.generation import position_ids

    dev = next(model.parameters()).device
    ids = (torch.arange(12, device=dev).view(2, 6) * 7 + 3) % model.config.vocab_size
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    P, pos = 5, position_ids(mask)
    cache = new_cache(model.config)
    out = model(input_ids=ids[:, :P], attention_mask=mask[:, :P], position_ids=pos[:, :P], use_cache=True,
                **cache_kwargs(model, cache))
    bias = torch.zeros(2, P + 1, dtype=out.logits.dtype, device=dev).masked_fill_(mask == 0, float("-inf"))
    got = FusedStep(model, cache, 2, P + 1, P, dtype)(ids[:, P], pos[:, P], P, bias).float()
    ref = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].float()
    return float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-6))


def clear_cache(model=None) -> None:
    """Forget fused weights and verdicts (of ``model``, or all): after editing frozen weights via ``.data``."""
    for d in (_WEIGHTS, _VERDICTS, _LOW, _LOW_VERDICTS):
        d.pop(model, None) if model is not None else d.clear()


def _fusable(mods) -> bool:
    return all(type(m) is torch.nn.Linear for m in mods) and \
        not any(p.requires_grad for m in mods for p in m.parameters())


def _weights_key(groups) -> tuple:
    return tuple((id(m), _fusable(g), tuple((p.data_ptr(), p._version) for p in m.parameters()))
                 for g in groups for m in g)


def fused_weights(model) -> tuple[list, list]:
    """Per layer: (concatenated (weight, bias), output sizes) of q|k|v and gate|up, or None where the
    group is not frozen plain ``nn.Linear`` (then each module runs its own forward: LoRA, trainable)."""
    groups = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        groups += [(a.q_proj, a.k_proj, a.v_proj), (m.gate_proj, m.up_proj)]
    key = _weights_key(groups)
    cached = _WEIGHTS.get(model)
    if cached is None or cached[0] != key:
        fused = [_fuse(g) if _fusable(g) else None for g in groups]
        cached = (key, fused[0::2], fused[1::2])
        _WEIGHTS[model] = cached
    return cached[1], cached[2]


def _fuse(linears) -> tuple[tuple[torch.Tensor, torch.Tensor | None], list[int]]:
    w = torch.cat([m.weight for m in linears]).detach()
    b = None
    if any(m.bias is not None for m in linears):
        b = torch.cat([m.bias if m.bias is not None else m.weight.new_zeros(m.out_features) for m in linears])
        b = b.detach()
    return (w, b), [m.out_features for m in linears]


def effective_linear(mod) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight, bias) that ``mod`` applies: a plain ``nn.Linear``'s own, a PEFT LoRA layer's base weight plus
    its active adapters' deltas (dropout is off at decode); None for anything else."""
    if type(mod) is torch.nn.Linear:
        return mod.weight, mod.bias
    base = getattr(mod, "base_layer", None)
    if type(base) is not torch.nn.Linear or not hasattr(mod, "get_delta_weight"):
        return None
    w = base.weight
    if not getattr(mod, "merged", False) and not getattr(mod, "disable_adapters", False):
        for name in mod.active_adapters:
            if name in getattr(mod, "lora_A", {}):
                w = w + mod.get_delta_weight(name)
    return w, base.bias


def low_weights(model, dtype) -> list | None:
    """Per layer ``[(qkv W, b), sizes], (o W, b), [(gate|up W, b), sizes], (down W, b)`` and then lm_head's
    (W, b), each the effective weight cast to ``dtype``; None where a module is neither plain nor LoRA."""
    cache = _LOW.setdefault(model, {})
    live = set()

    def cast(mods):
        eff = [effective_linear(m) for m in mods]
        if any(e is None for e in eff):
            raise ValueError(f"{type(mods[0]).__name__} is neither nn.Linear nor a LoRA layer")
        frozen = not any(p.requires_grad for m in mods for p in m.parameters())
        key = (dtype, *((p.data_ptr(), p._version) for m in mods for p in m.parameters()))
        live.add(key)
        if frozen and key in cache:
            return cache[key]
        w = torch.cat([e[0] for e in eff]).detach().to(dtype)
        b = None
        if any(e[1] is not None for e in eff):
            b = torch.cat([e[1] if e[1] is not None else e[0].new_zeros(e[0].shape[0]) for e in eff]).detach().to(dtype)
        out = ((w, b), [e[0].shape[0] for e in eff])
        if frozen:
            cache[key] = out
        return out

    try:
        layers = []
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            layers.append((cast((a.q_proj, a.k_proj, a.v_proj)), cast((a.o_proj,))[0],
                           cast((m.gate_proj, m.up_proj)), cast((m.down_proj,))[0]))
        head = cast((model.lm_head,))[0]
    except ValueError:
        return None
    for k in [k for k in cache if k not in live]:  # copies of weights that were replaced
        del cache[k]
    return layers + [head]


@torch.no_grad()
def low_check(model, dtype) -> tuple[bool, str]:
    """(use the ``dtype`` step?, why): once per model and dtype, the low-precision step's next-token logits on a
    2 x 6 batch against the model's own forward (relative max error under :data:`LOW_CHECK_TOL`)."""
    done = _LOW_VERDICTS.setdefault(model, {})
    if dtype not in done:
        try:
            if low_weights(model, dtype) is None:
                raise ValueError("a projection is neither nn.Linear nor a LoRA layer")
            err = self_check_error(model, dtype)
            done[dtype] = (err <= LOW_CHECK_TOL, f"{dtype} self-check relative logit error {err:.1e} "
                           f"(tolerance {LOW_CHECK_TOL:.0e})")
        except Exception as e:  # noqa: BLE001 - a layout the low-precision step cannot run
            done[dtype] = (False, f"{dtype} step failed: {type(e).__name__}: {str(e)[:120]}")
        log.info("fast decode of %s: %s", getattr(model.config, "model_type", "?"),
                 ("low-precision step, " if done[dtype][0] else "model-dtype step, ") + done[dtype][1])
    return done[dtype]


class FusedStep:
    """One decode step through a Llama-family model's modules, K/V in preallocated buffers; ``dtype`` (e.g.
    bf16): the matmuls read low-precision copies of the effective weights (module docstring)."""

    def __init__(self, model, cache, n: int, total: int, prompt_len: int, dtype: torch.dtype | None = None):
        self.m, self.layers = model, model.model.layers
        self.apply_rope = sys.modules[type(self.layers[0].self_attn).__module__].apply_rotary_pos_emb
        self.K, self.V = [], []
        for i in range(len(self.layers)):
            k, v = _cache_kv(cache, i)
            K = k.new_zeros(n, k.shape[1], total, k.shape[3])
            V = v.new_zeros(n, v.shape[1], total, v.shape[3])
            K[:, :, :prompt_len], V[:, :, :prompt_len] = k, v
            self.K.append(K)
            self.V.append(V)
        self.head_dim = self.K[0].shape[-1]
        self.kv_heads = self.K[0].shape[1]
        self.cols = torch.arange(total, device=self.K[0].device)
        self.qkv, self.gate_up = fused_weights(model)
        self.low = low_weights(model, dtype) if dtype is not None else None

    def keep(self, rows: torch.Tensor) -> None:
        """Compact the buffers to ``rows`` (indices into the current live batch)."""
        self.K = [k.index_select(0, rows) for k in self.K]
        self.V = [v.index_select(0, rows) for v in self.V]

    def __call__(self, tokens: torch.Tensor, pos: torch.Tensor, col: int | torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        """Logits (n, V) of the next token; ``tokens``/``pos`` (n,), K/V written at column ``col``.

        ``mask`` is the additive attention bias (n, total): 0 on real tokens, -inf on padding.
        ``col`` an int: attend to columns <= col (dynamic shapes). ``col`` a 0-d tensor (static
        mode): attend to the whole buffer, columns after ``col`` masked too, fixed shapes.
        """
        n, D = tokens.shape[0], self.head_dim
        static = isinstance(col, torch.Tensor)
        upto = self.cols.shape[0] if static else col + 1
        bias = mask.masked_fill(self.cols > col, float("-inf")) if static else mask[:, :upto]
        bias = bias[:, None, None, :]  # (n, 1, 1, upto): added to every head's scores
        x = self.m.model.embed_tokens(tokens[:, None])  # (n, 1, h)
        cos, sin = self.m.model.rotary_emb(x, pos[:, None])
        Hkv, lin = self.kv_heads, torch.nn.functional.linear
        if self.low is not None:  # low-precision matmuls, outputs back in the residual stream's dtype
            def low(h, wb):
                return lin(h.to(wb[0].dtype), *wb).to(h.dtype)
        for i, layer in enumerate(self.layers):
            a, qkv, gate_up = layer.self_attn, self.qkv[i], self.gate_up[i]
            if self.low is not None:
                qkv, o_w, gate_up, down_w = self.low[i]
            h = layer.input_layernorm(x)
            if self.low is not None:
                q, k, v = low(h, qkv[0]).split(qkv[1], -1)
            else:
                q, k, v = lin(h, *qkv[0]).split(qkv[1], -1) if qkv else (a.q_proj(h), a.k_proj(h), a.v_proj(h))
            q, k = q.view(n, 1, -1, D), k.view(n, 1, -1, D)
            v = v.view(n, 1, -1, D).transpose(1, 2)
            if hasattr(a, "q_norm"):  # Qwen3
                q, k = a.q_norm(q), a.k_norm(k)
            q, k = self.apply_rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
            if static:
                self.K[i].index_copy_(2, col.view(1), k)
                self.V[i].index_copy_(2, col.view(1), v)
            else:
                self.K[i][:, :, col : col + 1] = k
                self.V[i][:, :, col : col + 1] = v
            # one query per row: plain matmul-softmax-matmul beats the CPU flash kernel here (measured
            # 0.58 ms vs ~0.1 ms per call at 64 rows); grouped-query heads share their K/V group
            qg = q.reshape(n, Hkv, -1, D)  # (n, Hkv, groups, D)
            scores = torch.matmul(qg, self.K[i][:, :, :upto].transpose(-1, -2)) * a.scaling + bias
            o = torch.matmul(torch.softmax(scores.float(), -1).to(qg.dtype), self.V[i][:, :, :upto])
            o = o.reshape(n, 1, -1)
            x = x + (low(o, o_w) if self.low is not None else a.o_proj(o))
            h = layer.post_attention_layernorm(x)
            mlp = layer.mlp
            if self.low is not None:
                g, u = low(h, gate_up[0]).split(gate_up[1], -1)
                x = x + low(mlp.act_fn(g) * u, down_w)
                continue
            g, u = lin(h, *gate_up[0]).split(gate_up[1], -1) if gate_up else (mlp.gate_proj(h), mlp.up_proj(h))
            x = x + mlp.down_proj(mlp.act_fn(g) * u)
        h = self.m.model.norm(x)
        if self.low is None:
            return self.m.lm_head(h)[:, 0]
        return exact_top(h[:, 0], low(h, self.low[-1])[:, 0], self.m.lm_head)


def exact_top(h: torch.Tensor, logits: torch.Tensor, head, k: int = TOP_EXACT) -> torch.Tensor:
    """``logits`` (n, V) of the low-precision head with its ``k`` largest per row recomputed in the head's own
    dtype from ``h`` (n, d): the argmax (greedy) and the bulk of the sampling mass come from exact logits, for
    ``n * k`` dot products instead of the full head's ``n * V``."""
    idx = logits.topk(k, -1).indices  # (n, k)
    w = head.weight[idx]  # (n, k, d)
    exact = torch.einsum("nd,nkd->nk", h.to(w.dtype), w)
    if head.bias is not None:
        exact = exact + head.bias[idx]
    return logits.scatter(-1, idx, exact.to(logits.dtype))
