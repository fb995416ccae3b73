"""``fast`` sampling against an independent oracle: HF's own ``TemperatureLogitsWarper`` and
``TopPLogitsWarper`` on the model's unpadded logits, padded prompts of three lengths in one batch,
enough draws to see a ~0.4% nucleus boundary token; and per-original-row randomness.

Statistics: every comparison is a test at level ``ALPHA`` = 1e-4 (Pearson chi-square with
cells of expectation < 5 merged, p-value from the regularised upper incomplete gamma; exact two-sided
binomial for the boundary token). A correct sampler fails one backend's 7 comparisons with
probability <= 7e-4 for an arbitrary seed; the seeds are fixed, so the outcome is deterministic.
Power against a dropped boundary token: its expected count is asserted >= 30, and 0 observed draws
then have a two-sided p-value < 2e^-30.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopPLogitsWarper

import moalign.fastgen_fused as ff
from moalign.fastgen import _Sampler, decode
from moalign.generation import BACKENDS
from tests.test_fastgen import build, tok  # noqa: F401  (tok: module fixture)

ALPHA = 1e-4
PROMPTS = ["Q: 7", "Q: 12 + 3", "Q: 7 * 8 = ?"]  # three token lengths: two of them left-padded
T_NUCLEUS = 0.4  # a peaked distribution: a long tail of small tokens, one of them the boundary


def chi2_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson chi-square p-value of ``counts`` against ``probs`` (support only; cells with expectation < 5 merged)."""
    keep = probs > 0
    c, e = counts[keep].double(), probs[keep].double() * counts.sum()
    small = e < 5
    obs = torch.cat([c[~small], c[small].sum()[None]]) if small.any() else c
    exp = torch.cat([e[~small], e[small].sum()[None]]) if small.any() else e
    stat, df = float(((obs - exp) ** 2 / exp).sum()), len(obs) - 1
    f64 = torch.float64
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=f64), torch.tensor(stat / 2, dtype=f64)))


def binom_pvalue(k: int, n: int, q: float) -> float:
    """Exact two-sided binomial p-value (sum of the outcomes no more likely than ``k``)."""
    i = torch.arange(n + 1, dtype=torch.float64)
    logpmf = torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64)) - torch.lgamma(i + 1) - torch.lgamma(n - i + 1) \
        + i * math.log(q) + (n - i) * math.log1p(-q)
    return float(logpmf[logpmf <= logpmf[k] + 1e-9].exp().sum().clamp(max=1.0))


def oracle(model, tok, text: str, temperature: float, top_p: float, then: list[int] = ()) -> torch.Tensor:
    """Next-token distribution after ``text`` (unpadded, then the tokens ``then``) under HF's warpers,
    as ``generate`` applies them."""
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"] + list(then)])
    with torch.no_grad():
        scores = model(input_ids=ids).logits[:, -1].float()
    scores = TemperatureLogitsWarper(temperature)(ids, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p, min_tokens_to_keep=1)(ids, scores)
    return torch.softmax(scores, -1)[0]


def nucleus_with_small_boundary(model, tok, text: str, temperature: float) -> tuple[float, int]:
    """A ``top_p`` whose nucleus ends on a token of 0.2-0.4% probability (half its mass from each edge)."""
    p = oracle(model, tok, text, temperature, 1.0).double()
    sp, order = p.sort(descending=True)
    cum = sp.cumsum(0)
    k = int(((sp > 0.002) & (sp < 0.004) & (cum < 0.99)).nonzero()[0])
    return float(cum[k] - sp[k] / 2), int(order[k])


@pytest.mark.parametrize("backend,case", [("fast", "nucleus"), ("fast", "plain"), ("hf", "nucleus")])
def test_sampled_frequencies_follow_hf_warpers_on_padded_prompts(tok, backend, case):
    """First token (prefill) and second token given the first (one decode step) of each prompt, all
    prompts in one left-padded batch; ``hf`` checks the harness itself (generate vs its own warpers)."""
    model = build(tok, "llama")
    if case == "nucleus":  # the most padded prompt gets many draws: its boundary token is ~0.4%
        temperature, counts = T_NUCLEUS, [10000, 2000, 2000]
        top_p, boundary = nucleus_with_small_boundary(model, tok, PROMPTS[0], temperature)
    else:
        temperature, top_p, counts, boundary = 1.0, 1.0, [3000] * 3, None
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    assert lengths[0] < lengths[1] < lengths[2]
    assert ff.choose(model, lengths[2] + 2)[0]  # ``fast`` decodes this model with the fused step
    which = torch.cat([torch.full((c,), j) for j, c in enumerate(counts)])
    which = which[torch.randperm(len(which), generator=torch.Generator().manual_seed(0))]  # (N,) prompt of each row
    g = BACKENDS.get(backend)(model, tok, [PROMPTS[j] for j in which.tolist()], 2, True, temperature, top_p,
                              seed=5, batch_size=len(which))
    P = g.completion_start
    for j, text in enumerate(PROMPTS):
        first, second = g.ids[which == j, P], g.ids[which == j, P + 1]
        p1 = oracle(model, tok, text, temperature, top_p)
        assert (p1[first] > 0).all(), (text, "a token outside the nucleus")
        if j == 0 and boundary is not None:
            q = float(p1[boundary])
            assert 0.002 < q < 0.005 and counts[0] * q >= 30  # small, yet with a visible expected count
            assert binom_pvalue(int((first == boundary).sum()), counts[0], q) > ALPHA, "boundary token frequency"
        assert chi2_pvalue(torch.bincount(first, minlength=len(p1)), p1) > ALPHA, (text, "first token")
        mode = int(first.mode().values)
        assert mode != tok.eos_token_id
        p2 = oracle(model, tok, text, temperature, top_p, then=[mode])
        sel = second[first == mode]
        assert len(sel) >= 200 and (p2[sel] > 0).all(), (text, "second token outside the nucleus")
        assert chi2_pvalue(torch.bincount(sel, minlength=len(p2)), p2) > ALPHA, (text, "second token")


def test_statistical_checks_can_fail():
    probs = torch.tensor([0.5, 0.3, 0.2])
    assert chi2_pvalue(torch.tensor([500, 300, 200]), probs) > 0.5
    assert chi2_pvalue(torch.tensor([300, 300, 400]), probs) < ALPHA
    assert binom_pvalue(38, 10000, 0.0038) > 0.5 and binom_pvalue(0, 10000, 0.003) < 2 * math.exp(-30)
    assert abs(binom_pvalue(3, 10, 0.5) - 0.34375) < 1e-9  # scipy.stats.binomtest(3, 10).pvalue


def _eos_prone(tok):
    """A model whose sampled rows end at scattered steps (so finished rows are dropped mid-decode)."""
    model = build(tok, "llama")
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] += 0.8 * model.model.norm.weight.sign()
    return model


@pytest.mark.parametrize("path", ["fused", "generic"])
def test_a_rows_samples_do_not_depend_on_which_rows_are_still_alive(tok, monkeypatch, path):
    """Same seed, same rows: with EOS live (rows finish early, the batch is compacted) and with EOS
    disabled (all rows live to the end), every row's tokens agree up to its EOS."""
    if path == "generic":
        monkeypatch.setattr(ff, "FUSED_MODEL_TYPES", ())
    model = _eos_prone(tok)
    enc = tok([f"Question: {i} + {7 * i} = ?" for i in range(24)], return_tensors="pt", padding=True,
              add_special_tokens=False)
    ids, mask, n, T = enc["input_ids"], enc["attention_mask"].long(), 24, 24

    def run(eos: int) -> torch.Tensor:
        return decode(model, ids, mask, T, _Sampler(n, True, 1.0, 0.95, 7, "cpu"), eos, tok.pad_token_id)

    early, full = run(tok.eos_token_id), run(-1)  # -1: no token ends a row
    is_eos = early == tok.eos_token_id
    ends = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full((n,), early.shape[1]))
    assert int((ends <= T // 2).sum()) >= n // 3 and len(set(ends.tolist())) > 3  # compaction did happen
    for i in range(n):
        assert torch.equal(early[i, : ends[i]], full[i, : ends[i]]), i


@pytest.mark.parametrize("path", ["fused", "generic"])
def test_a_rows_samples_do_not_depend_on_its_batch_companions(tok, monkeypatch, path):
    """Row 5 (the longest prompt, so never padded) with two different sets of companions that finish at
    other steps: same seed and row index, same tokens."""
    if path == "generic":
        monkeypatch.setattr(ff, "FUSED_MODEL_TYPES", ())
    model = _eos_prone(tok)
    target = "Question: 12 + 24 = ?"
    out = []
    for k in (1, 2):
        rows = [f"Q: {k * i} + {i}" for i in range(12)]
        rows[5] = target
        g = BACKENDS.get("fast")(model, tok, rows, 24, True, 1.0, 0.95, seed=3)
        out.append((g.ids[5, g.completion_start:], g.lengths))
    assert torch.equal(out[0][0], out[1][0])
    assert out[0][1][5] >= 8 and out[0][1] != out[1][1]  # companions end elsewhere; row 5 outlives some
