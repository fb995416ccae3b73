"""prepare stage: rows -> data/prepared/{train,val,test}, tokenizer + model config -> data/prepared/model.

Outputs are built in a temporary folder and renamed into place, so a failure leaves
no partial ``data/prepared``.

Rows that later stages cannot use are dropped here, logged and counted in
``metrics/prepare.json``: ``dropped_non_numeric`` (a dataset row whose reference answer is
not a number: the accuracy reward compares numbers) and ``dropped_too_long`` (a row whose
prompt or SFT target, in tokens, exceeds ``prepare.model.max_length``). A split left empty
is an error.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from pathlib import Path

import datasets

from moalign.config import Params, flatten
from moalign.data import arith
from moalign.data.config import PrepareConfig
from moalign.data.loader import load_rows
from moalign.errors import StageError
from moalign.io import atomic_path, write_json
from moalign.modeling import load_tokenizer, tiny_config, train_tokenizer
from moalign.sft import encode_rows
from moalign.tracking import stage_run
from stages._edge import stage_main

OUT = Path("data/prepared")
METRICS = Path("metrics/prepare.json")
log = logging.getLogger("moalign.prepare")


NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
LATEX_RE = re.compile(r"[\\{}^]")


def drop_non_numeric(rows: list[dict[str, str]], drops: Counter, mode: str = "auto") -> list[dict[str, str]]:
    """Rows whose reference answer is not a number: dropped or kept per ``mode``, counted, logged.

    ``auto`` keeps LaTeX-looking answers (``\\frac{1}{2}``, ``2^{10}``: math-verify grades them) and
    drops plain words (``blue``), which the grader can only match character for character.
    """
    bad = [r for r in rows if not NUMBER_RE.fullmatch(str(r["answer"]).strip())]
    if mode == "keep" or not bad:
        drops["non_numeric_answers"] += len(bad)
        return rows
    drop = {id(r) for r in bad if mode == "drop" or not LATEX_RE.search(str(r["answer"]))}
    drops["dropped_non_numeric"] += len(drop)
    drops["non_numeric_answers"] += len(bad) - len(drop)
    if drop:
        example = next(r["answer"] for r in bad if id(r) in drop)
        log.warning("dropped %d of %d rows whose reference answer is not a number (e.g. %r); "
                    "set prepare.dataset.non_numeric: keep to keep them", len(drop), len(rows), str(example)[:80])
    return [r for r in rows if id(r) not in drop]


def drop_too_long(splits: dict[str, list[dict[str, str]]], tok, max_length: int,
                  drops: Counter) -> dict[str, list[dict[str, str]]]:
    """Rows whose prompt and whose SFT target (+ EOS) each fit in ``max_length`` tokens.

    The others are counted in ``drops`` and logged. A prompt longer than the model's window
    cannot be answered and a longer target cannot be learnt; a pair that only overflows
    together is left to the stages' own truncation.
    """
    out: dict[str, list[dict[str, str]]] = {}
    for name, rows in splits.items():
        enc = encode_rows(tok, rows)  # the prompts and targets SFT trains on (chat-templated or raw)
        out[name] = [r for r, (p, t) in zip(rows, enc) if len(p) <= max_length and len(t) <= max_length]
        n = len(rows) - len(out[name])
        drops["dropped_too_long"] += n
        if n:
            log.warning("dropped %d of %d %s rows whose prompt or target is longer than "
                        "prepare.model.max_length = %d tokens",
                        n, len(rows), name, max_length)
        if not out[name]:
            raise StageError(f"prepare: every {name} row has a prompt or target longer than prepare.model.max_length "
                             f"= {max_length} tokens. Fix: raise prepare.model.max_length or shorten the data")
    return out


def build_rows(cfg: PrepareConfig, seed: int, drops: Counter | None = None) -> dict[str, list[dict[str, str]]]:
    """Pure core: the three disjoint splits from the configured source (drops counted in ``drops``)."""
    drops = Counter() if drops is None else drops
    if cfg.source == "generator":
        g = cfg.generator
        return arith.generate(g.sizes, g.eval_rows, g.max_digits, g.op_weights, seed, g.styles, g.numerals)
    d = cfg.dataset
    rows = load_rows(d.name_or_path, d.columns.model_dump(), d.config, d.train_split, d.default_domain,
                     d.answer_format)
    rows = drop_non_numeric(rows, drops, d.non_numeric)
    uniq = list({r["question"]: r for r in rows}.values())  # disjoint splits: no question twice
    random.Random(seed).shuffle(uniq)
    if d.max_rows:
        uniq = uniq[: d.max_rows]
    n_val, n_test = max(1, int(len(uniq) * d.val_fraction)), max(1, int(len(uniq) * d.test_fraction))
    if len(uniq) < n_val + n_test + 1:
        raise ValueError(f"prepare.dataset: only {len(uniq)} distinct rows; need at least 3. Fix: use a larger dataset")
    return {"test": uniq[:n_test], "val": uniq[n_test : n_test + n_val], "train": uniq[n_test + n_val :]}


def split_metrics(splits: dict[str, list[dict[str, str]]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, rows in splits.items():
        out[f"rows_{name}"] = len(rows)
        for dom, n in sorted(Counter(r["domain"] for r in rows).items()):
            out[f"rows_{name}_{dom}"] = n
    sizes = [v for k, v in out.items() if k.startswith("rows_train_")]
    out["imbalance_ratio"] = max(sizes) / min(sizes) if sizes else 1.0
    return out


def run(params: Params) -> dict[str, object]:
    cfg, base = params.prepare, params.base
    with stage_run("prepare", base.tracking, flatten(params.section("prepare"), "prepare") | {"base.seed": base.seed}) as tr:
        drops: Counter = Counter({"dropped_non_numeric": 0, "dropped_too_long": 0})
        splits = build_rows(cfg, base.seed, drops)
        with atomic_path(OUT) as tmp:
            model_dir = tmp / "model"
            if cfg.model.name_or_path:
                tok = load_tokenizer(cfg.model.name_or_path)
                if cfg.model.chat_template == "off":
                    tok.chat_template = None  # the decision travels with the tokenizer (moalign/text.py)
                tok.save_pretrained(model_dir)
                (model_dir / "SOURCE").write_text(cfg.model.name_or_path + "\n")
            else:
                tok = train_tokenizer(arith.corpus(splits["train"]), cfg.tokenizer.vocab_size)
                tok.save_pretrained(model_dir)
                m = cfg.model
                tiny_config(m.arch, len(tok), m.hidden_size, m.num_layers, m.num_heads, m.max_length, tok).save_pretrained(model_dir)
            splits = drop_too_long(splits, tok, cfg.model.max_length, drops)
            metrics = split_metrics(splits) | dict(drops)
            for name, rows in splits.items():
                datasets.Dataset.from_list(rows).save_to_disk(str(tmp / name))
        write_json(METRICS, metrics)
        tr.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        tr.log_artifact(METRICS)
        log.info("prepared %s", {k: v for k, v in metrics.items() if k.count("_") == 1})
        return metrics


def main(argv: list[str] | None = None) -> int:
    return stage_main("prepare", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
