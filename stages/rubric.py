"""rubric stage: preference pairs -> evolved meta-rubric (rubrics/refined.yaml) + review proposals.

Default pairs come from the SFT policy's own samples on train prompts, labelled by the
synthetic annotator ``rubric.annotator`` (moalign/rubric/annotators.py; default
``honest_working``, a criterion the judge has no feature for); ``rubric.preferences`` names a
user dataset instead. Judge backend from ``rubric.judge`` (``rules`` offline by default).

Metrics: the evolution's agreements (``initial_test``, ``refined_test``, ...), and OpenRS's
central comparison on the same held-out pairs: ``pairwise_test`` (the adaptive pairwise judge)
and ``pointwise_test`` (one tier-weighted scalar per response, compared afterwards;
moalign/rubric/pointwise.py), each for the initial and the refined rubric, on all test pairs
and on the correctness-tie split (``*_tie``: both responses right or both wrong, so the rubric
and not the ground-truth gate decides). An agreement over no pairs (a test split without a
correctness tie) is ``null``, and so is a gain computed from one; the pair counts
(``pairs_test_tie``) say how many pairs each number rests on. ``rubric.gate_checks`` names the
PVR checks that decide a pair before the judge, everywhere here (fitness, selection, review
proposals, both judges of the comparison).

The test split is read only for the numbers reported on it: evolution fits on train and picks
its champion on val, review proposals are measured on val, so changing test labels changes no
rubric and no train/val number (tests/rubric/test_splits_gate.py).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Sequence

import datasets

from moalign.config import Params, flatten
from moalign.errors import StageError
from moalign.generation import BACKENDS
from moalign.guards import no_pairs_message
from moalign.io import atomic_path, write_json
from moalign.modeling import load_policy, load_tokenizer, resolve_device, resolve_dtype
from moalign.plots import plot_curves
from moalign.rubric.annotators import ANNOTATORS
from moalign.rubric.evolve import agreement, evolve
from moalign.rubric.judges import make_judge
from moalign.rubric.pointwise import pointwise_agreement
from moalign.rubric.preferences import load_preferences, split_by_prompt, synthetic_pairs, tie_split
from moalign.rubric.pvr import DEFAULT_GATE
from moalign.rubric.review import propose_domain_edits
from moalign.rubric.schema import dump_meta_rubric, load_meta_rubric
from moalign.text import format_prompt
from moalign.tracking import stage_run
from stages._edge import seed_everything, stage_main

SFT, PREPARED = Path("models/sft"), Path("data/prepared")
OUT, REFINED = Path("data/rubric"), Path("rubrics/refined.yaml")
METRICS, PLOTS = Path("metrics/rubric.json"), Path("plots/rubric")
log = logging.getLogger("moalign.rubric")


def sample_pairs(params: Params) -> datasets.DatasetDict:
    cfg, base = params.rubric, params.base
    device = resolve_device(base.device)
    model = load_policy(SFT, dtype=resolve_dtype(base.dtype, device)).to(device)
    tok = load_tokenizer(SFT)
    train = list(datasets.load_from_disk(str(PREPARED / "train")))
    rows = random.Random(base.seed).sample(train, min(cfg.n_prompts, len(train)))
    prompts = [format_prompt(r["question"], tok) for r in rows for _ in range(cfg.samples_per_prompt)]
    gens = BACKENDS.get("fast")(model, tok, prompts, cfg.max_new_tokens, True, cfg.temperature, 1.0, seed=base.seed)
    k = cfg.samples_per_prompt
    samples = [gens.texts[i * k:(i + 1) * k] for i in range(len(rows))]
    pairs = synthetic_pairs([r["question"] for r in rows], [r["answer"] for r in rows], [r["domain"] for r in rows],
                            samples, cfg.label_noise, base.seed, cfg.max_pairs_per_prompt, cfg.balance_levels,
                            cfg.annotator, cfg.balance_length)
    why = no_pairs_message(pairs, samples, [r["answer"] for r in rows], ANNOTATORS.get(cfg.annotator), cfg.annotator,
                           cfg.splits)  # a policy that cannot give pairs: say what it wrote, not "raise n_prompts"
    if why:
        raise StageError(why)
    return split_by_prompt(pairs, cfg.splits, base.seed)


def gain(after: float | None, before: float | None) -> float | None:
    """after - before, or None when either is None (no pairs to measure on)."""
    return None if after is None or before is None else after - before


def compare_judges(judge, initial, refined, pairs: list[dict], tie_credit: float,
                   gate_checks: Sequence[str] = DEFAULT_GATE) -> dict[str, dict[str, float | None]]:
    """pairwise_test / pointwise_test: agreement of both judges x {initial, refined} x {all, tie split}."""
    tie = tie_split(pairs)
    out: dict[str, dict[str, float | None]] = {}
    for name, fn in (("pairwise_test", lambda r, ps: agreement(judge, r, ps, tie_credit, gate_checks)),
                     ("pointwise_test", lambda r, ps: pointwise_agreement(r, ps, tie_credit, gate_checks))):
        m = {f"{tag}{sfx}": fn(r, ps) for tag, r in (("initial", initial), ("refined", refined))
             for sfx, ps in (("", pairs), ("_tie", tie))}
        out[name] = {**m, "gain": gain(m["refined"], m["initial"]), "gain_tie": gain(m["refined_tie"], m["initial_tie"])}
    return out


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def run(params: Params) -> dict[str, float]:
    cfg, base = params.rubric, params.base
    seed_everything(base.seed, base.threads)
    with stage_run("rubric", base.tracking, flatten(params.section("rubric"), "rubric") | {"base.seed": base.seed}) as tr:
        rubric = load_meta_rubric(cfg.meta, cfg.domain_layer, cfg.accepted)
        prefs = (load_preferences(cfg.preferences, cfg.splits, base.seed, cfg.preference_columns)
                 if cfg.preferences else sample_pairs(params))
        splits = {s: list(prefs[s]) for s in ("train", "val", "test")}
        judge = make_judge(cfg.judge, model=cfg.judge_model, timeout=cfg.judge_timeout, retries=cfg.judge_retries,
                           backoff=cfg.judge_backoff)
        res = evolve(rubric, judge, splits, cfg.evolve, base.seed,
                     on_generation=lambda g, m: tr.log_metrics(m, step=g), gate_checks=cfg.gate_checks)
        winner = res["rubric"]
        with atomic_path(OUT) as tmp:
            prefs.save_to_disk(str(tmp / "preferences"))
            (tmp / "diff.patch").write_text(res["diff"])
            props = []
            for qt in winner.domain_layers:
                props += propose_domain_edits(judge, winner, winner.candidates(qt), splits["val"], qt,
                                              tmp / f"proposals-{qt}.json", gate_checks=cfg.gate_checks)
            write_json(tmp / "proposals.json", props)
            write_json(tmp / "report.json", {"agreement": res["agreement"], "history": res["history"],
                                             "pairs": {s: len(v) for s, v in splits.items()}})
        dump_meta_rubric(winner, REFINED)
        a = res["agreement"]
        judges = compare_judges(judge, rubric, winner, splits["test"], cfg.evolve.tie_credit, cfg.gate_checks)
        metrics = {**{k.replace("/", "_"): v for k, v in a.items()},
                   "gain_test": gain(a["refined/test"], a["initial/test"]), "pairs_train": len(splits["train"]),
                   "pairs_test": len(splits["test"]), "pairs_test_tie": len(tie_split(splits["test"])),
                   "proposals": len(props), **judges}
        write_json(METRICS, metrics)
        plot_curves({k: [(h["generation"], h[k]) for h in res["history"]] for k in ("fitness/best", "fitness/mean",
                                                                                    "fitness/val_of_best")},
                    PLOTS / "fitness.png", "meta-rubric evolution", "agreement with labels")
        tr.log_metrics(flatten(metrics, ""))
        for f in (REFINED, OUT / "diff.patch", OUT / "proposals.json", PLOTS / "fitness.png", METRICS):
            tr.log_artifact(f, "rubric")
        pw, pt = judges["pairwise_test"], judges["pointwise_test"]
        log.info("agreement initial -> refined: test %s -> %s; tie split (%d pairs) pairwise %s -> %s, "
                 "pointwise %s -> %s", _num(a["initial/test"]), _num(a["refined/test"]), metrics["pairs_test_tie"],
                 _num(pw["initial_tie"]), _num(pw["refined_tie"]), _num(pt["initial_tie"]), _num(pt["refined_tie"]))
        return metrics


def main(argv: list[str] | None = None) -> int:
    return stage_main("rubric", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
