"""params.yaml -> typed, validated :class:`Params` (one section per stage plus ``base``).

Values come only from ``params.yaml`` (and ``dvc exp run -S key=value``, which edits it).
Unknown keys, wrong types (strict: ``'0.2'`` is a string, not a number) and impossible
combinations raise :class:`ParamsError` naming the dotted key, the bad value and the fix;
every bad key of every section is named in the one error, so a single edit round fixes them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from moalign.balance.plan import BalanceConfig
from moalign.data.config import PrepareConfig
from moalign.evaluate import EvaluateConfig
from moalign.rl.config import TrainConfig
from moalign.rubric.config import RubricConfig
from moalign.schema import ParamsError, StrictModel, section_errors
from moalign.sft import SFTConfig

DEFAULT_PARAMS = "params.yaml"


class TrackingConfig(StrictModel):
    """MLflow tracking."""

    enabled: bool = Field(True, description="Log params/metrics/artifacts to MLflow.")
    uri: str = Field("sqlite:///mlflow.db", description="Tracking URI; the default is a SQLite file at the repo root.")
    experiment: str = Field("moalign", description="MLflow experiment name.")
    required: bool = Field(
        False, description="If false, an unreachable tracking store only warns; if true, the stage fails."
    )


class BaseConfig(StrictModel):
    """Shared by every stage."""

    seed: int = Field(0, description="The one seed; per-step seeds derive from (seed, step, index).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when present, else CPU.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto = bf16 on CUDA, fp32 on CPU."
    )
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 keeps torch's default.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


SECTIONS: dict[str, type[StrictModel]] = {
    "base": BaseConfig,
    "prepare": PrepareConfig,
    "balance": BalanceConfig,
    "sft": SFTConfig,
    "rubric": RubricConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


class Params:
    """All sections of params.yaml, validated (every bad key of every section reported at once)."""

    base: BaseConfig
    prepare: PrepareConfig
    balance: BalanceConfig
    sft: SFTConfig
    rubric: RubricConfig
    train: TrainConfig
    evaluate: EvaluateConfig

    def __init__(self, raw: dict[str, Any]) -> None:
        if not isinstance(raw, dict):
            raise ParamsError("params.yaml must be a mapping of sections (base, prepare, ...)")
        lines = [f"{name}: unknown section. Fix: valid sections are {', '.join(SECTIONS)}"
                 for name in sorted(set(raw) - set(SECTIONS), key=str)]
        self.raw = raw
        for name, model in SECTIONS.items():
            value, bad = section_errors(model, raw.get(name), name)
            setattr(self, name, value)
            lines += bad
        if lines:
            raise ParamsError("invalid params:\n  " + "\n  ".join(lines))

    def section(self, name: str) -> dict[str, Any]:
        """The validated section as a plain dict (for logging)."""
        return getattr(self, name).model_dump(mode="json")


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml; errors name the file, the key and the fix."""
    p = Path(path)
    if not p.exists():
        raise ParamsError(f"params file {str(p)!r} not found. Fix: run from the repo root or pass --params PATH")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{p}: not valid YAML: {e}") from None
    try:
        return Params(raw)
    except ParamsError as e:
        raise ParamsError(f"{p}: {e}") from None


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` (lists are kept as their string form)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out
