"""Preference pairs: the synthetic annotator for the default data, and user datasets.

Synthetic annotator (stated, so the agreement numbers mean something): between two
responses to the same prompt, prefer (1) the correct final answer; then (2) the well-formed
one (a boxed answer and >= 2 steps); then (3) the shorter one (fewer words). Responses with
equal keys give no pair. The *level* of a pair is the first rule that decides it. Each label
is flipped with probability ``label_noise`` (seeded ``random.Random``; the ``noisy`` column
records it). Pairs are split train/val/test *by prompt*, so no prompt is in two splits.

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

from moalign.grading import extract_answer
from moalign.rubric.pvr import ground_truth
from moalign.text import count_steps

LEVELS = ("correct", "format", "length")
COLUMNS = ("prompt", "chosen", "rejected", "answer", "domain")


class PreferenceError(ValueError):
    """A preference dataset is missing, lacks a column, or yields an empty split."""


def annotator_key(response: str, answer: str) -> tuple[int, int, int]:
    """(correct, well_formed, -words): larger is preferred, compared lexicographically."""
    correct = int(ground_truth(response, answer=answer) == 1)
    well_formed = int(extract_answer(response) is not None and count_steps(response) >= 2)
    return correct, well_formed, -len(response.split())


def _level(ka: tuple[int, ...], kb: tuple[int, ...]) -> str:
    return next(LEVELS[i] for i in range(3) if ka[i] != kb[i])


def synthetic_pairs(prompts: Sequence[str], answers: Sequence[str], domains: Sequence[str],
                    samples: Sequence[Sequence[str]], label_noise: float, seed: int,
                    max_pairs_per_prompt: int = 3, balance_levels: bool = True) -> list[dict]:
    """Label pairs among each prompt's ``samples`` with the annotator; rows with a ``noisy`` flag."""
    if not (len(prompts) == len(answers) == len(domains) == len(samples)):
        raise PreferenceError("prompts, answers, domains and samples must have one entry per prompt")
    rng = random.Random(seed)
    rows = []
    for p, ans, dom, resp in zip(prompts, answers, domains, samples):
        by_level: dict[str, list[tuple[str, str]]] = {lv: [] for lv in LEVELS}
        keys = [annotator_key(r, str(ans)) for r in resp]
        for i in range(len(resp)):
            for j in range(i + 1, len(resp)):
                if keys[i] != keys[j] and resp[i] != resp[j]:
                    win, lose = (i, j) if keys[i] > keys[j] else (j, i)
                    by_level[_level(keys[i], keys[j])].append((resp[win], resp[lose]))
        for v in by_level.values():
            rng.shuffle(v)
        if balance_levels:
            order = [lv for lv in LEVELS if by_level[lv]]
            rng.shuffle(order)
            chosen_pairs: list[tuple[str, tuple[str, str]]] = []
            while len(chosen_pairs) < max_pairs_per_prompt and any(by_level[lv] for lv in order):
                for lv in order:
                    if by_level[lv] and len(chosen_pairs) < max_pairs_per_prompt:
                        chosen_pairs.append((lv, by_level[lv].pop()))
        else:
            flat = [(lv, pr) for lv in LEVELS for pr in by_level[lv]]
            rng.shuffle(flat)
            chosen_pairs = flat[:max_pairs_per_prompt]
        for lv, (chosen, rejected) in chosen_pairs:
            noisy = rng.random() < label_noise
            if noisy:
                chosen, rejected = rejected, chosen
            rows.append({"prompt": p, "chosen": chosen, "rejected": rejected, "answer": str(ans), "domain": dom,
                         "level": lv, "noisy": noisy})
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


def build_preferences(prompts: Sequence[str], answers: Sequence[str], domains: Sequence[str],
                      samples: Sequence[Sequence[str]], label_noise: float = 0.1, seed: int = 0,
                      fractions: Sequence[float] = (0.5, 0.25, 0.25), max_pairs_per_prompt: int = 3,
                      balance_levels: bool = True) -> datasets.DatasetDict:
    """Synthetic annotator + split: the default preference data of the rubric stage."""
    rows = synthetic_pairs(prompts, answers, domains, samples, label_noise, seed, max_pairs_per_prompt,
                           balance_levels)
    return split_by_prompt(rows, fractions, seed)


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
    return split_by_prompt(rows, fractions, seed)
