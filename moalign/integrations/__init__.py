"""Adapters that bring moalign's algorithms into other training libraries.

- :mod:`moalign.integrations.trl`: the hypervolume-guided and gradient-based reward weighting
  (moalign/rl/weighting.py) for TRL's ``GRPOTrainer`` (``pip install moalign[trl]``).

Nothing here is imported by the package itself, and no adapter imports DVC, Prefect or MLflow.
"""
