"""Preference pairs: the synthetic annotator for the default data, the tie split, and user datasets.

Synthetic annotators (:mod:`moalign.rubric.annotators`, stated so the agreement numbers mean
something): ``honest_working`` (default: correct first, then a criterion the judge has no
feature for) or ``rules`` (correct, then well-formed, then fewer words: the judge's own
features). Between two responses to the same prompt the larger key is preferred; responses
with equal keys give no pair. The *level* of a pair is the key position that decides it. Each
label is flipped with probability ``label_noise`` (seeded ``random.Random``; the ``noisy``
column records it). Pairs are split train/val/test *by prompt*, so no prompt is in two splits.

Tie split (:func:`correctness_tie`): pairs whose two responses are both verified correct or
both not, so the PVR gate cannot decide them and the rubric must.

Choice: with ``balance_levels`` a prompt's pairs are drawn round-robin over levels (in a
seeded random order), because SFT samples mostly differ in correctness and those pairs are
decided by the ground-truth gate before any rubric is read; without balancing the held-out
agreement would barely measure the rubric.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import datasets

from moalign.rubric.annotators import ANNOTATORS
from moalign.rubric.annotators import LEVELS as ANNOTATOR_LEVELS
from moalign.rubric.pvr import ground_truth

LEVELS = ANNOTATOR_LEVELS["rules"]
COLUMNS = ("prompt", "chosen", "rejected", "answer", "domain")


class PreferenceError(ValueError):
    """A preference dataset is missing, lacks a column, or yields an empty split."""


def correctness_tie(pair: dict) -> bool:
    """Both responses verified correct, or neither: the ground-truth gate cannot decide the pair."""
    ans = pair.get("answer")
    return (ground_truth(pair["chosen"], answer=ans) == 1) == (ground_truth(pair["rejected"], answer=ans) == 1)


def tie_split(pairs: list[dict]) -> list[dict]:
    """The pairs of :func:`correctness_tie` (the rubric, not the gate, decides them)."""
    return [p for p in pairs if correctness_tie(p)]


def _words(text: str) -> int:
    return len(text.split())


def _length_side(chosen: str, rejected: str) -> str:
    """'longer' / 'shorter' / 'same': the chosen response's length (words) against the rejected one."""
    a, b = _words(chosen), _words(rejected)
    return "longer" if a > b else "shorter" if a < b else "same"


def synthetic_pairs(prompts: Sequence[str], answers: Sequence[str], domains: Sequence[str],
                    samples: Sequence[Sequence[str]], label_noise: float, seed: int,
                    max_pairs_per_prompt: int = 3, balance_levels: bool = True,
                    annotator: str = "rules", balance_length: bool = False) -> list[dict]:
    """Label pairs among each prompt's ``samples`` with ``annotator``; rows with ``level``, ``noisy``, ``tie``.

    ``balance_length``: pairs decided after the first (correctness) level are drawn per prompt
    round-robin over whether the preferred response is the longer or the shorter one, and then,
    over all prompts, the larger of the two groups is subsampled to the size of the smaller,
    so length alone predicts none of those labels (equal-length pairs are kept).
    """
    if not (len(prompts) == len(answers) == len(domains) == len(samples)):
        raise PreferenceError("prompts, answers, domains and samples must have one entry per prompt")
    key_fn, levels = ANNOTATORS.get(annotator), ANNOTATOR_LEVELS[annotator]
    rng = random.Random(seed)
    picked: list[tuple[str, str, str, str, str, str]] = []  # (prompt, answer, domain, level, chosen, rejected)
    for p, ans, dom, resp in zip(prompts, answers, domains, samples):
        by_level: dict[tuple[str, str], list[tuple[str, str]]] = {}
        keys = [key_fn(r, str(ans)) for r in resp]
        for i in range(len(resp)):
            for j in range(i + 1, len(resp)):
                if keys[i] != keys[j] and resp[i] != resp[j]:
                    win, lose = (i, j) if keys[i] > keys[j] else (j, i)
                    t = next(t for t in range(len(levels)) if keys[i][t] != keys[j][t])
                    side = _length_side(resp[win], resp[lose]) if balance_length and t > 0 else ""
                    by_level.setdefault((levels[t], side), []).append((resp[win], resp[lose]))
        buckets = sorted(by_level)  # deterministic order before the seeded shuffles
        for b in buckets:
            rng.shuffle(by_level[b])
        if balance_levels:
            order = list(buckets)
            rng.shuffle(order)
            chosen_pairs: list[tuple[str, tuple[str, str]]] = []
            while len(chosen_pairs) < max_pairs_per_prompt and any(by_level[b] for b in order):
                for b in order:
                    if by_level[b] and len(chosen_pairs) < max_pairs_per_prompt:
                        chosen_pairs.append((b[0], by_level[b].pop()))
        else:
            flat = [(b[0], pr) for b in buckets for pr in by_level[b]]
            rng.shuffle(flat)
            chosen_pairs = flat[:max_pairs_per_prompt]
        picked += [(p, str(ans), dom, lv, c, r) for lv, (c, r) in chosen_pairs]
    if balance_length:
        side = [_length_side(c, r) if lv != levels[0] else "" for _, _, _, lv, c, r in picked]
        longer = [i for i, s in enumerate(side) if s == "longer"]
        shorter = [i for i, s in enumerate(side) if s == "shorter"]
        n = min(len(longer), len(shorter))
        drop = set(longer) - set(rng.sample(longer, n)) | set(shorter) - set(rng.sample(shorter, n))
        picked = [x for i, x in enumerate(picked) if i not in drop]
    rows = []
    for p, ans, dom, lv, chosen, rejected in picked:
        noisy = rng.random() < label_noise
        if noisy:
            chosen, rejected = rejected, chosen
        row = {"prompt": p, "chosen": chosen, "rejected": rejected, "answer": ans, "domain": dom,
               "level": lv, "noisy": noisy}
        rows.append({**row, "tie": correctness_tie(row)})
    return rows


def split_by_prompt(rows: list[dict], fractions: Sequence[float], seed: int) -> datasets.DatasetDict:
    """Split rows into train/val/test by prompt (seeded shuffle of the distinct prompts)."""
    prompts = sorted({r["prompt"] for r in rows})
    random.Random(seed).shuffle(prompts)
    n = len(prompts)
    a, b = int(round(n * fractions[0])), int(round(n * (fractions[0] + fractions[1])))
    where = {p: ("train" if i < a else "val" if i < b else "test") for i, p in enumerate(prompts)}
    parts = {s: [r for r in rows if where[r["prompt"]] == s] for s in ("train", "val", "test")}
    empty = [s for s, v in parts.items() if not v]
    if empty:
        raise PreferenceError(f"preference split(s) {empty} are empty ({len(rows)} pairs over {n} prompts). "
                              "Fix: raise rubric.n_prompts or rubric.samples_per_prompt")
    return datasets.DatasetDict({s: datasets.Dataset.from_list(v) for s, v in parts.items()})


def load_preferences(name_or_path: str, fractions: Sequence[float] = (0.5, 0.25, 0.25), seed: int = 0,
                     columns: dict[str, str] | None = None) -> datasets.DatasetDict:
    """User pairs by local file (json/jsonl/csv/parquet) or hub name, split by prompt.

    ``columns`` maps our names (prompt, chosen, rejected; optional answer, domain) to the
    dataset's; a missing required column raises :class:`PreferenceError` listing the available ones.
    """
    p = Path(name_or_path)
    fmt = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}.get(p.suffix)
    if fmt and not p.exists():
        raise PreferenceError(f"rubric.preferences: file {name_or_path!r} does not exist")
    try:
        ds = (datasets.load_dataset(fmt, data_files=str(p), split="train") if fmt
              else datasets.load_dataset(name_or_path, split="train"))
    except Exception as e:  # noqa: BLE001 - datasets raises many types; say which source failed
        raise PreferenceError(f"rubric.preferences: could not load {name_or_path!r} ({type(e).__name__}: {e})") from None
    cols = {c: (columns or {}).get(c, c) for c in COLUMNS}
    missing = [f"{c}" + (f" (as {cols[c]!r})" if cols[c] != c else "") for c in COLUMNS[:3]
               if cols[c] not in ds.column_names]
    if missing:
        raise PreferenceError(f"rubric.preferences: column(s) {missing} not found in {name_or_path!r}; "
                              f"available columns: {ds.column_names}. Fix: set rubric.preference_columns")
    rows = []
    for r in ds:
        ans = r.get(cols["answer"])
        rows.append({"prompt": str(r[cols["prompt"]]), "chosen": str(r[cols["chosen"]]),
                     "rejected": str(r[cols["rejected"]]), "answer": None if ans is None else str(ans),
                     "domain": str(r.get(cols["domain"]) or "default"), "level": "user", "noisy": False})
        rows[-1]["tie"] = correctness_tie(rows[-1])
    return split_by_prompt(rows, fractions, seed)
