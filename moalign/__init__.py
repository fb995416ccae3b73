"""moalign: a reproducible pipeline for multi-objective alignment of language models.

Core algorithms live in this package as pure functions with typed configs;
the thin edges that touch files, DVC and MLflow live in ``stages/`` and ``flows/``.
"""

__version__ = "0.1.0"
