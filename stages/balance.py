"""balance stage: per-domain sizes of data/prepared/train -> data/balanced/plan.json + report PNG.

The plan (per-phase sampling probabilities and loss weights, expected epochs, F(tau)) is
what the sft stage's sampler follows. ``total_samples`` is ``sft.max_steps * sft.batch_size``,
so the plan's epochs are those SFT will really see.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets

from moalign.balance import build_plan, plot_plan
from moalign.config import Params, flatten
from moalign.io import write_json
from moalign.tracking import stage_run
from stages._edge import stage_main

PREPARED = Path("data/prepared")
OUT = Path("data/balanced")
METRICS = Path("metrics/balance.json")


def run(params: Params) -> dict:
    cfg, sft = params.balance, params.sft
    logged = flatten(params.section("balance"), "balance") | {"sft.max_steps": sft.max_steps, "sft.batch_size": sft.batch_size}
    with stage_run("balance", params.base.tracking, logged) as tr:
        train = datasets.load_from_disk(str(PREPARED / "train"))
        sizes = dict(sorted(Counter(train["domain"]).items()))
        plan = build_plan(cfg, sizes, sft.max_steps * sft.batch_size)
        write_json(OUT / "plan.json", plan)
        plot_plan(plan, OUT / "report.png")
        metrics = {"F_tau": plan["F_tau"] if not isinstance(plan["F_tau"], list) else max(plan["F_tau"]),
                   **{f"epochs_{d}": e for d, e in plan["expected_epochs"].items()},
                   **{f"p_first_{d}": p for d, p in plan["phases"][0]["probs"].items()},
                   **{f"p_last_{d}": p for d, p in plan["phases"][-1]["probs"].items()}}
        write_json(METRICS, metrics)
        tr.log_metrics(metrics)
        tr.log_artifact(OUT / "plan.json")
        tr.log_artifact(OUT / "report.png")
        return plan


def main(argv: list[str] | None = None) -> int:
    return stage_main("balance", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
