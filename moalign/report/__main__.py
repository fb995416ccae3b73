"""``python -m moalign.report [--check] [--root DIR]``: see moalign/report/cli.py."""

from moalign.report.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
