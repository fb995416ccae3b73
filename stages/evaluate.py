"""evaluate stage: score the SFT policy and every strategy's final and intermediate policies.

Writes ``metrics/evaluate.json`` (DVC metrics: per-strategy hypervolume, objectives,
steps-to-dominance), ``plots/evaluate/*.csv`` (DVC plots) and PNG figures, and logs all of
it to MLflow. A missing checkpoint is an error naming the folder and the stage to run.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import datasets

from moalign.config import Params, flatten
from moalign.evaluate import pareto_report, pick_rows, score_policy
from moalign.io import read_json, write_json, write_text
from moalign.modeling import load_policy, load_tokenizer, resolve_device, resolve_dtype
from moalign.plots import plot_curves, plot_pareto
from moalign.rl.rewards import make_reward
from moalign.tracking import stage_run
from stages._edge import seed_everything, stage_main

PREPARED, SFT, TRAINED = Path("data/prepared"), Path("models/sft"), Path("models/train")
METRICS, PLOTS = Path("metrics/evaluate.json"), Path("plots/evaluate")
log = logging.getLogger("moalign.evaluate")


def _need(path: Path, stage: str) -> Path:
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"missing checkpoint {str(path)!r}. Fix: run `dvc repro {stage}` first")
    return path


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def run(params: Params) -> dict[str, object]:
    cfg, base, tcfg = params.evaluate, params.base, params.train
    seed_everything(base.seed, base.threads)
    device = resolve_device(base.device)
    dtype = resolve_dtype(base.dtype, device)
    objs = tcfg.objectives
    logged = flatten(params.section("evaluate"), "evaluate") | {"train.objectives": objs, "base.seed": base.seed}
    with stage_run("evaluate", base.tracking, logged) as tr:
        rows = pick_rows(list(datasets.load_from_disk(str(PREPARED / "test"))), cfg.test_rows)
        fns = {o: make_reward(o, **tcfg.reward_options.get(o, {})) for o in objs if not o.startswith("conciseness")}
        tok = load_tokenizer(_need(SFT, "sft"))

        def score(path: Path) -> dict[str, object]:
            model = load_policy(path, dtype=dtype).to(device)
            return score_policy(model, tok, rows, objs, fns, cfg.max_new_tokens)

        results: dict[str, dict] = {"sft": score(SFT)}
        curves: dict[str, list[tuple[int, list[float]]]] = {}
        weights: dict[str, dict] = {}
        for s in tcfg.strategies:
            d = _need(TRAINED / s, f"train@{s}")
            hist = read_json(d / "history.json")
            last = hist["history"][-1]["step"] if hist["history"] else 0
            results[s] = score(d)
            curve = [(0, results["sft"]["point"])]
            if cfg.include_snapshots:
                for snap in sorted((d / "snapshots").glob("step-*")):
                    curve.append((int(snap.name.split("-")[1]), score(snap)["point"]))
            curve.append((last, results[s]["point"]))
            curves[s] = curve
            weights[s] = {o: [(h["step"], h[f"weights/{o}"]) for h in hist["history"]] for o in objs}
        ref = ([v - cfg.ref_margin for v in results["sft"]["point"]] if cfg.reference == "sft"
               else list(cfg.reference))
        if len(ref) != len(objs):
            raise ValueError(f"evaluate.reference has {len(ref)} coordinates but there are {len(objs)} objectives {objs}")
        finals = {n: r["point"] for n, r in results.items()}
        rep = pareto_report(finals, curves, ref, cfg.baseline, cfg.match_tol)
        if rep["excluded_by_reference"]:
            log.warning("policies %s do not dominate the reference point %s: they add 0 hypervolume",
                        rep["excluded_by_reference"], ref)
        metrics: dict[str, object] = {"objectives": objs, "reference": rep["reference"],
                                      "hypervolume_front": rep["hypervolume_front"],
                                      "non_dominated": rep["non_dominated"]}
        for n, r in results.items():
            metrics[n] = {"hypervolume": rep["hypervolume"][n], "length": r["length"],
                          **dict(zip(objs, r["point"])),
                          "steps_to_dominance": rep["steps_to_dominance"].get(n)}
        write_json(METRICS, metrics)
        write_json(PLOTS / "report.json", {**rep, "results": results})
        write_text(PLOTS / "points.csv", _csv(["policy", "step", *objs], [
            [n, s, *p] for n, c in curves.items() for s, p in c] + [["sft", 0, *results["sft"]["point"]]]))
        write_text(PLOTS / "hypervolume.csv", _csv(["strategy", "step", "hypervolume"], [
            [n, s, hv] for n, c in rep["hypervolume_curve"].items() for s, hv in c]))
        write_text(PLOTS / "weights.csv", _csv(["strategy", "step", *objs], [
            [n, st, *[dict(w[o])[st] for o in objs]] for n, w in weights.items() for st, _ in w[objs[0]]]))
        plot_pareto({n: r["point"] for n, r in results.items()}, objs, PLOTS / "pareto.png")
        plot_curves({n: c for n, c in rep["hypervolume_curve"].items()}, PLOTS / "hypervolume.png",
                    "test hypervolume vs step", "hypervolume")
        plot_curves({f"{n}/{o}": w[o] for n, w in weights.items() for o in objs}, PLOTS / "weights.png",
                    "reward weights vs step", "weight")
        for f in ("pareto.png", "hypervolume.png", "weights.png", "points.csv", "report.json"):
            tr.log_artifact(PLOTS / f, "evaluate")
        tr.log_metrics({f"{n}/hypervolume": v for n, v in rep["hypervolume"].items()}
                       | {f"{n}/eval/{o}": v for n, r in results.items() for o, v in zip(objs, r["point"])}
                       | {"pareto/hypervolume_front": rep["hypervolume_front"]})
        log.info("hypervolume per policy: %s", {k: round(v, 4) for k, v in rep["hypervolume"].items()})
        return metrics


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
