"""Prefect flows that chain and schedule the DVC stages."""
