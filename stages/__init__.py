"""Thin stage edges: each module's ``run(params)`` is what DVC (``python -m stages.NAME``) and Prefect call."""
