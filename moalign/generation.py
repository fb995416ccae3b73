"""Generation backends (a registry, so vLLM or another engine can be added) and sequence log-probs.

``fast`` (moalign/fastgen.py, the default rollout engine) is our own KV-cached sampling loop;

``hf`` batches prompts with left padding through ``model.generate``. Position ids are
derived from the attention mask in :func:`position_ids`, the same rule ``generate``
uses, so the log-probs the trainer recomputes match those of the rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moalign.registry import Registry

BACKENDS: Registry = Registry("generation backend", lazy={"fast": "moalign.fastgen", "fast-bf16": "moalign.fastgen"})


@dataclass
class Generations:
    """Batch of completions: ``ids`` (N, P+T) prompt+completion, ``mask`` (N, P+T) attention,
    ``completion_mask`` (N, P+T) 1 on generated tokens up to and including EOS."""

    texts: list[str]
    ids: torch.Tensor
    mask: torch.Tensor
    completion_mask: torch.Tensor
    lengths: list[int]

    @property
    def completion_start(self) -> int:
        """First column that holds a completion token (= the prompts' padded width)."""
        return int(self.completion_mask.any(0).float().argmax())


def take_rows(parts: list[Generations], rows: list[tuple[int, int]], pad_id: int) -> Generations:
    """One batch of the rows ``(part, row)`` of several generation batches, in that order, each part
    re-padded to the widest prompt (left) and completion (right) so the layout [prompt | completion]
    holds (dynamic sampling's extra rounds, moalign/rl/filtering.py)."""
    F = torch.nn.functional
    P = max(g.completion_start for g in parts)
    T = max(g.ids.shape[1] - g.completion_start for g in parts)

    def pad(g: Generations, t: torch.Tensor, value: int) -> torch.Tensor:
        p = g.completion_start
        return F.pad(t, (P - p, T - (t.shape[1] - p)), value=value)

    wide = [(pad(g, g.ids, pad_id), pad(g, g.mask, 0), pad(g, g.completion_mask, 0)) for g in parts]
    pick = [torch.stack([wide[k][f][i] for k, i in rows]) for f in range(3)]
    return Generations([parts[k].texts[i] for k, i in rows], *pick, [parts[k].lengths[i] for k, i in rows])


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """(N, L) attention mask -> (N, L) positions counting only real tokens (left padding safe)."""
    pos = mask.long().cumsum(-1) - 1
    return pos.clamp(min=0)


@BACKENDS.register("hf")
@torch.no_grad()
def hf_generate(
    model, tok, prompts: list[str], max_new_tokens: int, do_sample: bool,
    temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None, batch_size: int = 256,
) -> Generations:
    """Generate with Hugging Face ``generate``; sampling is seeded by ``seed`` when given."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    chunks = []  # (prompt ids (n, p), prompt mask (n, p), completion ids (n, t))
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        gen = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=do_sample,
            temperature=temperature if do_sample else None, top_p=top_p if do_sample else None,
            top_k=0 if do_sample else None,
            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        )
        p = enc["input_ids"].shape[1]
        chunks.append((enc["input_ids"], enc["attention_mask"].long(), gen[:, p:]))
    if was_training:
        model.train()
    return assemble(tok, chunks)


def assemble(tok, chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> Generations:
    """(prompt ids (n, p), prompt mask (n, p), completion ids (n, t)) chunks -> one ``Generations``.

    Prompts are left-padded to the longest, completions right-padded; tokens after the first EOS
    become padding and leave the masks."""
    P = max(c[0].shape[1] for c in chunks)
    T = max(c[2].shape[1] for c in chunks)
    pad = tok.pad_token_id
    F = torch.nn.functional
    ids_rows, mask_rows, cmask_rows, texts, lengths = [], [], [], [], []
    for pids, pmask, comp in chunks:
        is_eos = comp == tok.eos_token_id
        after = (is_eos.long().cumsum(-1) - is_eos.long()) > 0  # strictly after the first EOS
        cmask = (~after).long()  # (n, t): generated tokens up to and including EOS
        comp = comp.masked_fill(after, pad)
        lp, rp = P - pids.shape[1], T - comp.shape[1]
        ids_rows.append(torch.cat([F.pad(pids, (lp, 0), value=pad), F.pad(comp, (0, rp), value=pad)], 1))
        mask_rows.append(torch.cat([F.pad(pmask, (lp, 0)), F.pad(cmask, (0, rp))], 1))
        cmask_rows.append(torch.cat([torch.zeros_like(F.pad(pmask, (lp, 0))), F.pad(cmask, (0, rp))], 1))
        lengths += cmask.sum(-1).tolist()
        texts += tok.batch_decode(comp.masked_fill(is_eos, pad), skip_special_tokens=True)
    return Generations(texts, torch.cat(ids_rows), torch.cat(mask_rows), torch.cat(cmask_rows), lengths)


def token_logprobs(model, ids: torch.Tensor, mask: torch.Tensor, buckets: int = 1, start: int = 1,
                   temperature: float = 1.0) -> torch.Tensor:
    """(N, L) ids -> (N, L) log p(ids[t] | ids[<t]) for columns t >= ``start``; columns before are 0
    (column 0 always: it has no context).

    ``temperature``: log-probs of the distribution the rollouts were sampled from,
    log softmax(logits / T), as TRL (``logits / self.temperature``) and verl do, so training stays
    on-policy at T != 1. Top-p is not applied here (nor in TRL/verl): the sampled tokens lie in the
    nucleus, and their log-probs are those of the full temperature-scaled distribution, not of the
    renormalised nucleus (the two differ by log(nucleus mass), a per-position constant).

    ``start`` = the first completion column lets the model compute logits only from there on
    (``logits_to_keep``, where the model supports it): the trainer never reads prompt log-probs,
    and for a 150k-token vocabulary the prompt's logits are most of the memory.
    ``buckets`` > 1 sorts rows by their number of real tokens and runs the model on that many
    groups, each cut to the columns where it has real tokens: the same numbers (and gradients)
    without computing over the padding that one ragged batch carries (rollouts that stop early).
    """
    start = max(1, start)
    if buckets <= 1 or ids.shape[0] < 2:
        return _token_logprobs(model, ids, mask, start, temperature)
    slices = bucket_slices(mask, buckets, start)
    parts = [bucket_logprobs(model, ids, mask, b, temperature) for b in slices]
    order = torch.cat([rows for rows, _, _, _ in slices])
    return torch.cat(parts).index_select(0, order.argsort())


def bucket_slices(mask: torch.Tensor, buckets: int, start: int = 1) -> list[tuple[torch.Tensor, int, int, int]]:
    """The log-prob buckets of a (N, L) batch: rows sorted by their number of real tokens and split into
    ``buckets`` groups, each ``(rows, c0, c1, start)``: its row indices, the columns ``c0:c1`` where it has real
    tokens (and the first completion column ``start``), and ``start`` relative to ``c0``."""
    start = max(1, start)
    order = mask.sum(-1).argsort(stable=True)
    out = []
    for rows in order.tensor_split(min(max(1, buckets), mask.shape[0])):
        cols = mask[rows].any(0).nonzero().squeeze(-1)
        c0, c1 = min(int(cols[0]), start - 1), max(int(cols[-1]) + 1, start)
        out.append((rows, c0, c1, start - c0))
    return out


def bucket_logprobs(model, ids: torch.Tensor, mask: torch.Tensor, bucket: tuple[torch.Tensor, int, int, int],
                    temperature: float = 1.0) -> torch.Tensor:
    """(n_b, L) log-probs of one bucket of :func:`bucket_slices` (zeros outside its columns), as
    :func:`token_logprobs` gives for those rows."""
    rows, c0, c1, start = bucket
    lp = _token_logprobs(model, ids[rows, c0:c1], mask[rows, c0:c1], start, temperature)
    return torch.nn.functional.pad(lp, (c0, ids.shape[1] - c1))


def _token_logprobs(model, ids: torch.Tensor, mask: torch.Tensor, start: int = 1, temperature: float = 1.0) -> torch.Tensor:
    L = ids.shape[1]
    kw = {"logits_to_keep": L - start + 1} if start > 1 and "logits_to_keep" in forward_params(model) else {}
    logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), **kw).logits
    logits = logits[:, -(L - start + 1) : -1]  # predictions of columns start .. L-1
    if temperature != 1.0:
        logits = logits / temperature
    target = ids[:, start:, None]
    logp = logits.gather(-1, target).squeeze(-1).float() - torch.logsumexp(logits.float(), -1)
    return torch.nn.functional.pad(logp, (start, 0))


def forward_params(model) -> set[str]:
    """Keyword names ``model.forward`` accepts (``logits_to_keep``, ``cache``, ...); empty if unknown."""
    import inspect

    inner = getattr(model, "module", model)  # DDP wraps the model in .module
    if hasattr(inner, "get_base_model"):  # PEFT forwards **kwargs to the base model's forward
        inner = inner.get_base_model()
    fwd = getattr(inner, "forward", None)
    try:
        return set(inspect.signature(fwd).parameters)
    except (TypeError, ValueError):
        return set()

