"""evaluate stage: score the SFT policy and every strategy's final and intermediate policies.

Writes ``metrics/evaluate.json`` (DVC metrics, per policy: objectives with standard errors,
hypervolume with a bootstrap 95% interval, weight_shift, on_front, steps-to-dominance),
``plots/evaluate/`` (DVC plots: CSVs, PNG figures, ``policies.csv`` - the table of points, also
logged with ``mlflow.log_table``), all of it to MLflow. A missing checkpoint is an error naming the folder and the stage to run.

With a pretrained model (``prepare.model.name_or_path``) the untouched model is scored too, as
policy ``base``, in the same prompt format (the tokenizer of models/sft): what SFT and RL changed.
A policy folder may hold a LoRA adapter (the train stage's output after a LoRA SFT); it is
merged onto its base for scoring. With ``evaluate.register_as`` and tracking on, the final
policies (sft and each strategy) are logged as MLflow models, registered under that name with
the strategy as alias and their evaluate metrics attached (moalign/tracking.py).
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import datasets

from moalign.config import Params, flatten
import pandas as pd

from moalign.evaluate import (bootstrap_hv_ci, informative_reference, pareto_report, pick_rows, resolve_reference,
                              score_policy, weight_shift)
from moalign.io import atomic_outputs, read_json, write_json, write_text
from moalign.modeling import (adapter_base, is_adapter, load_adapter, load_policy, load_tokenizer, resolve_device,
                              resolve_dtype)
from moalign.plots import plot_curves, plot_pareto
from moalign.rl.rewards import scoring_rewards
from moalign.tracking import stage_run
from stages._edge import seed_everything, stage_main

PREPARED, SFT, TRAINED = Path("data/prepared"), Path("models/sft"), Path("models/train")
METRICS, PLOTS = Path("metrics/evaluate.json"), Path("plots/evaluate")
log = logging.getLogger("moalign.evaluate")


def _need(path: Path, stage: str) -> Path:
    if not (path / "config.json").exists() and not is_adapter(path):
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
        fns = scoring_rewards(tcfg)
        tok = load_tokenizer(_need(SFT, "sft"))

        def score(path: Path, both: bool = True) -> dict[str, dict]:
            model = load_policy(path, dtype=dtype).to(device)
            out = {}
            if both or cfg.point == "sampled":
                out["sampled"] = score_policy(model, tok, rows, objs, fns, cfg.max_new_tokens, cfg.generation_backend, samples=cfg.samples,
                                              temperature=cfg.temperature, seed=base.seed)
            if both or cfg.point == "greedy":
                out["greedy"] = score_policy(model, tok, rows, objs, fns, cfg.max_new_tokens, cfg.generation_backend)
            return out

        results: dict[str, dict] = {}
        shifts: dict[str, float] = {"sft": 0.0}
        if params.prepare.model.name_or_path:  # the pretrained model before SFT, same prompts
            results["base"], shifts["base"] = score(params.prepare.model.name_or_path), 0.0
        results["sft"] = score(SFT)
        curves: dict[str, list[tuple[int, list[float]]]] = {}
        weights: dict[str, dict] = {}
        for s in tcfg.strategies:
            d = _need(TRAINED / s, f"train@{s}")
            hist = read_json(d / "history.json")
            last = hist["history"][-1]["step"] if hist["history"] else 0
            results[s] = score(d)
            curve = [(0, results["sft"][cfg.point]["point"])]
            if cfg.include_snapshots:
                for snap in sorted((d / "snapshots").glob("step-*")):
                    curve.append((int(snap.name.split("-")[1]), score(snap, both=False)[cfg.point]["point"]))
            curve.append((last, results[s][cfg.point]["point"]))
            curves[s] = curve
            weights[s] = {o: [(h["step"], h[f"weights/{o}"]) for h in hist["history"]] for o in objs}
            shifts[s] = weight_shift([hist["initial_weights"], hist["final_weights"]]
                                     if "final_weights" in hist else hist["weights"])
        ref = resolve_reference(cfg.reference, cfg.ref_margin, results["sft"][cfg.point]["point"], len(objs))
        finals = {n: r[cfg.point]["point"] for n, r in results.items()}
        ref, degenerate = informative_reference(list(finals.values()), ref, cfg.ref_margin, objs,
                                                adjust=not isinstance(cfg.reference, list))
        if degenerate:
            log.warning("degenerate front: %s; reference %s (moalign/evaluate.py, 'Degenerate fronts')",
                        degenerate, [round(r, 4) for r in ref])
        rep = pareto_report(finals, curves, ref, cfg.baseline, cfg.match_tol)
        if rep["excluded_by_reference"]:
            log.warning("policies %s do not dominate the reference point %s: they add 0 hypervolume",
                        rep["excluded_by_reference"], ref)
        metrics: dict[str, object] = {"objectives": objs, "reference": rep["reference"], "point": cfg.point,
                                      "degenerate": degenerate,
                                      "hypervolume_front": rep["hypervolume_front"],
                                      "non_dominated": rep["non_dominated"], "baseline": rep["baseline"]}
        table = []
        for n, r in results.items():
            m, g = r[cfg.point], r["greedy"]
            ci = [None if x != x else x for x in bootstrap_hv_ci(m["per_prompt"], ref, cfg.bootstrap, base.seed)]
            metrics[n] = {"hypervolume": rep["hypervolume"][n], "hypervolume_ci": ci,
                          "weight_shift": shifts[n], "on_front": n in rep["non_dominated"],
                          "length": m["length"], "length_se": m["length_se"],
                          **dict(zip(objs, m["point"])), **{f"{o}_se": v for o, v in zip(objs, m["se"])},
                          **{f"greedy_{o}": v for o, v in zip(objs, g["point"])}, "greedy_length": g["length"],
                          **{f"style_{k}": (None if v != v else v) for k, v in m["styles"].items()},
                          "steps_to_dominance": rep["steps_to_dominance"].get(n)}
            table.append({"policy": n, "measure": cfg.point, **dict(zip(objs, m["point"])),
                          **{f"{o}_se": v for o, v in zip(objs, m["se"])}, "length": m["length"],
                          "length_se": m["length_se"], "hypervolume": rep["hypervolume"][n],
                          "hv_lo": ci[0], "hv_hi": ci[1], "weight_shift": shifts[n],
                          "on_front": n in rep["non_dominated"], **{f"style_{k}": v for k, v in m["styles"].items()},
                          **{f"greedy_{o}": v for o, v in zip(objs, g["point"])}, "greedy_length": g["length"]})
        points = pd.DataFrame(table)
        with atomic_outputs(PLOTS, METRICS) as (tmp, tmp_metrics):  # all outputs appear together or none
            tmp.mkdir()
            write_json(tmp_metrics, metrics)
            write_json(tmp / "report.json", {**rep, "results": {
                n: {k: {kk: vv for kk, vv in v.items() if kk != "per_prompt"} for k, v in r.items()}
                for n, r in results.items()}})
            write_text(tmp / "policies.csv", points.to_csv(index=False))
            write_text(tmp / "points.csv", _csv(["policy", "step", *objs], [
                [n, s, *p] for n, c in curves.items() for s, p in c] + [[b, 0, *finals[b]] for b in ("base", "sft") if b in finals]))
            write_text(tmp / "hypervolume.csv", _csv(["strategy", "step", "hypervolume"], [
                [n, s, hv] for n, c in rep["hypervolume_curve"].items() for s, hv in c]))
            write_text(tmp / "weights.csv", _csv(["strategy", "step", *objs], [
                [n, st, *[dict(w[o])[st] for o in objs]] for n, w in weights.items() for st, _ in w[objs[0]]]))
            plot_pareto(finals, objs, tmp / "pareto.png")
            plot_curves({n: c for n, c in rep["hypervolume_curve"].items()}, tmp / "hypervolume.png",
                        f"test hypervolume vs step ({cfg.point})", "hypervolume")
            plot_curves({f"{n}/{o}": w[o] for n, w in weights.items() for o in objs}, tmp / "weights.png",
                        "reward weights vs step", "weight")
        for f in ("pareto.png", "hypervolume.png", "weights.png", "points.csv", "policies.csv", "report.json"):
            tr.log_artifact(PLOTS / f, "evaluate")
        tr.log_table(points, "evaluate/policies.json")
        tr.log_metrics({f"{n}/hypervolume": v for n, v in rep["hypervolume"].items()}
                       | {f"{n}/eval/{o}": v for n, r in results.items() for o, v in zip(objs, r[cfg.point]["point"])}
                       | {f"{n}/weight_shift": v for n, v in shifts.items()}
                       | {"pareto/hypervolume_front": rep["hypervolume_front"]})
        log.info("hypervolume per policy: %s", {k: round(v, 4) for k, v in rep["hypervolume"].items()})
        if cfg.register_as and tr.enabled:
            register(tr, cfg.register_as, {"sft": SFT, **{s: TRAINED / s for s in tcfg.strategies}}, tok, metrics,
                     objs, dtype)
        return metrics


def register(tr, name: str, folders: dict[str, Path], tok, metrics: dict, objs: list[str], dtype) -> None:
    """Log every final policy as an MLflow model registered as ``name@<policy>`` with its evaluate metrics."""
    keys = [*objs, *[f"{o}_se" for o in objs], "length", "length_se", "hypervolume", "weight_shift", "on_front"]
    for policy, folder in folders.items():
        m = metrics[policy]
        desc = f"{policy}: " + ", ".join(f"{o} {m[o]:.3f}" for o in objs) + f", length {m['length']:.1f}, " \
               f"hypervolume {m['hypervolume']:.4f}" + (" (on the front)" if m["on_front"] else "")
        if is_adapter(folder):  # only the adapter is stored; its base (models/sft) is referenced by path
            model, base = load_adapter(folder, dtype), str(Path(adapter_base(folder)).resolve())
        else:
            model, base = load_policy(folder, dtype=dtype), None
        version = tr.log_policy(model, tok, policy, name, {k: float(m[k]) for k in keys}, base, desc)
        log.info("registered %s as models:/%s@%s (version %s)", folder, name, policy, version)


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
