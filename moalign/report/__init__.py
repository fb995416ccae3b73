"""The README and benchmarks/README result tables, rendered from the committed result files.

    python -m moalign.report [--check]        # or: moalign report [--check], make report

cli.py (render, --check, derived files), blocks.py (README's blocks), current.py and records.py
(benchmarks/README's blocks), throughput.py (benchmarks/rl_throughput.py's printed report), profile.py (a
profile run's README section, flows/profile.py); fmt.py is the one loader and formatter they all use.
"""
