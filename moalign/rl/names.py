"""Strategy names, torch-free: the ``WEIGHTINGS`` registry (every built-in named here, imported on first use),
the paper's presets and :func:`parse_strategy`, so ``train.strategies`` is validated without loading a strategy.
"""

from __future__ import annotations

from moalign.registry import Registry

WEIGHTINGS: Registry = Registry("weighting strategy", lazy={
    "fixed": "moalign.rl.weighting", "gradient": "moalign.rl.weighting", "hypervolume": "moalign.rl.hv_weighting",
    **{name: "moalign.rl.field" for name in ("gdpo", "mogrpo", "dvao", "pareto", "paretopo")}})
PRESET_OBJECTIVES = ["accuracy", "conciseness", "clarity"]
PRESETS = {  # weights for PRESET_OBJECTIVES, as in the paper
    "accuracy": [0.5, 0.25, 0.25],
    "balanced": [1 / 3, 1 / 3, 1 / 3],
    "efficiency": [0.25, 0.375, 0.375],
}


def parse_strategy(name: str) -> tuple[str, str | None]:
    """``"fixed-accuracy"`` -> ("fixed", "accuracy"); ``"gradient"`` -> ("gradient", None).

    Raises a ValueError listing valid names when the weighting or the preset is unknown.
    """
    base, _, preset = name.partition("-")
    if base not in WEIGHTINGS or (preset and preset not in PRESETS and preset != "paper"):
        raise ValueError(f"strategy {name!r} is unknown; valid: <weighting>[-<preset>|-paper] with weighting in "
                         f"{', '.join(WEIGHTINGS.names())} and preset in {', '.join(PRESETS)} "
                         "(e.g. fixed-accuracy, gradient, hypervolume-paper)")
    return base, preset or None
