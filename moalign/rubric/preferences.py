"""Preference pairs: the synthetic annotator for the default data, and user datasets.

Synthetic annotator (stated, so the agreement numbers mean something): between two
responses to the same prompt, prefer the correct final answer; then the well-formed one
(a boxed answer and >= 2 steps); then the shorter one (fewer words); identical keys give
no pair. Each label is flipped with probability ``label_noise`` (seeded). Pairs are split
train/val/test *by prompt*, so no prompt is in two splits. Chosen responses are randomly
placed as A or B for the judge (the ``label`` column says which).
"""

from __future__ import annotations

import random
from pathlib import Path

import datasets

from moalign.rubric.features import ground_truth
from moalign.text import count_steps, extract_answer


def annotator_key(response: str, answer: str) -> tuple[int, int, int]:
    correct = int(ground_truth(response, answer=answer) == 1)
    well_formed = int(extract_answer(response) is not None and count_steps(response) >= 2)
    return correct, well_formed, -len(response.split())


def synthetic_pairs(prompts: list[str], answers: list[str], domains: list[str], samples: list[list[str]],
                    label_noise: float, seed: int, max_pairs_per_prompt: int = 3) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for p, ans, dom, resp in zip(prompts, answers, domains, samples):
        cands = []
        for i in range(len(resp)):
            for j in range(i + 1, len(resp)):
                ki, kj = annotator_key(resp[i], ans), annotator_key(resp[j], ans)
                if ki != kj:
                    cands.append((resp[i], resp[j]) if ki > kj else (resp[j], resp[i]))
        rng.shuffle(cands)
        for chosen, rejected in cands[:max_pairs_per_prompt]:
            noisy = rng.random() < label_noise
            if noisy:
                chosen, rejected = rejected, chosen
            rows.append({"prompt": p, "chosen": chosen, "rejected": rejected, "answer": ans, "domain": dom,
                         "noisy": noisy})
    return rows


def split_by_prompt(rows: list[dict], fractions: list[float], seed: int) -> datasets.DatasetDict:
    prompts = sorted({r["prompt"] for r in rows})
    random.Random(seed).shuffle(prompts)
    n = len(prompts)
    a, b = int(n * fractions[0]), int(n * (fractions[0] + fractions[1]))
    where = {p: ("train" if i < a else "val" if i < b else "test") for i, p in enumerate(prompts)}
    parts = {s: [r for r in rows if where[r["prompt"]] == s] for s in ("train", "val", "test")}
    empty = [s for s, v in parts.items() if not v]
    if empty:
        raise ValueError(f"preference split(s) {empty} are empty ({len(rows)} pairs over {n} prompts). "
                         "Fix: raise rubric.n_prompts or rubric.samples_per_prompt")
    return datasets.DatasetDict({s: datasets.Dataset.from_list(v) for s, v in parts.items()})


def load_preferences(name_or_path: str, fractions: list[float], seed: int) -> datasets.DatasetDict:
    """User pairs: columns prompt, chosen, rejected (answer, domain optional), by hub name or local file."""
    p = Path(name_or_path)
    fmt = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}.get(p.suffix)
    if fmt and not p.exists():
        raise FileNotFoundError(f"rubric.preferences: file {name_or_path!r} does not exist")
    ds = datasets.load_dataset(fmt, data_files=str(p), split="train") if fmt else datasets.load_dataset(name_or_path, split="train")
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in ds.column_names]
    if missing:
        raise KeyError(f"rubric.preferences: columns {missing} not found; available columns: {ds.column_names}")
    rows = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"],
             "answer": str(r.get("answer")) if r.get("answer") is not None else None,
             "domain": r.get("domain") or "default", "noisy": False} for r in ds]
    return split_by_prompt(rows, fractions, seed)
