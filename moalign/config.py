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
from pydantic import Field, field_validator

from moalign.balance.plan import BalanceConfig
from moalign.data.config import PrepareConfig
from moalign.rl.config import TrainConfig
from moalign.rubric.config import RubricConfig
from moalign.schema import ParamsError, StrictModel, section_errors

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


class LoraConfig(StrictModel):
    """Optional LoRA adapters via peft: SFT merges them into models/sft; the train stage then trains fresh
    adapters on that policy (saved alone, a few MB, in models/train/<strategy> and its snapshots)."""

    enabled: bool = Field(False, description="Train LoRA adapters instead of all weights, in SFT and in the train "
                          "stage (the practical setting for a pretrained model on CPU: profiles/smollm2.yaml).")
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha.")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], description="Module names to adapt."
    )


class SFTConfig(StrictModel):
    """sft: supervised warm start on the balance plan's mixture."""

    max_steps: int = Field(1200, ge=1, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1, description="Sequences per step.")
    lr: float = Field(3e-3, gt=0, description="Peak AdamW learning rate (tiny models like it high; a pretrained model "
                      "needs ~2e-5, or ~2e-4 with LoRA: the stage warns).")
    warmup_steps: int = Field(50, ge=0, description="Linear warmup, then cosine decay to 10%.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    grad_clip: float = Field(1.0, gt=0, description="Max gradient norm.")
    eval_every: int = Field(300, ge=1, description="Steps between validation passes.")
    eval_rows: int = Field(64, ge=1, description="Validation rows per domain in each eval pass.")
    max_new_tokens: int = Field(160, ge=1, description="Generation budget of the greedy eval.")
    checkpoint_every: int = Field(300, ge=1, description="Steps between resumable checkpoints.")
    val_loss_every: int = Field(50, ge=1, description="Steps between per-domain validation-loss passes "
                                "(forward only, cheap): the curves `val_loss/<domain>` that show a small domain "
                                "overfitting (plots/sft/domain_val_loss.csv); also logged at step 0.")
    loss: Literal["token_mean", "sequence_mean"] = Field(
        "token_mean", description="token_mean: every target token of the batch weighs the same (HF/TRL's "
        "default); sequence_mean: each sequence's token mean, then the batch mean (short targets weigh more per "
        "token, so with mixed-length styles the short style's first token dominates: measured 52% terse "
        "samples from 25% terse data)."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)


class EvaluateConfig(StrictModel):
    """evaluate: score every policy on the test split and build the Pareto report."""

    test_rows: int = Field(32, ge=1, description="Test rows (prompts) per domain.")
    max_new_tokens: int = Field(128, ge=1, description="Decoding budget (use train.max_new_tokens).")
    point: Literal["sampled", "greedy"] = Field(
        "sampled", description="Which measurement forms the Pareto points (module docstring); both are reported."
    )
    samples: int = Field(4, ge=1, description="Sampled decodes per prompt for the 'sampled' measurement.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the 'sampled' measurement "
                               "(use train.temperature: the distribution RL trains).")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples of test prompts for hypervolume_ci (0 = off).")
    reference: Literal["origin", "sft"] | list[float] = Field(
        "origin", description="Hypervolume reference: 'origin' (0 in every objective, the worst value), 'sft' "
        "(the SFT point minus ref_margin) or explicit coordinates."
    )
    ref_margin: float = Field(0.05, ge=0, description="With reference 'sft': subtract this from the SFT point "
                              "(a saturated objective would otherwise zero every hypervolume).")
    baseline: str = Field("best_fixed", description="Strategy whose final policy is the steps-to-dominance "
                          "target; 'best_fixed' = the fixed-* strategy with the largest hypervolume.")
    match_tol: float = Field(0.0, ge=0, description="Tolerance for 'matches' in steps-to-dominance.")
    generation_backend: str = Field("fast", description="Decoding engine (generation BACKENDS registry): fast | hf.")
    include_snapshots: bool = Field(True, description="Also score intermediate snapshots (steps-to-dominance).")
    register_as: str | None = Field(
        "moalign-policy", description="MLflow registered-model name of the final policies (sft and each strategy, "
        "alias = the strategy: models:/moalign-policy@hypervolume); null = log no models. Needs base.tracking.")

    @field_validator("generation_backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        from moalign.generation import BACKENDS  # validation reads the registry; importing this module does not

        return BACKENDS.check(v, "generation_backend")


SECTIONS: dict[str, type[StrictModel]] = {
    "base": BaseConfig,
    "prepare": PrepareConfig,
    "balance": BalanceConfig,
    "sft": SFTConfig,
    "rubric": RubricConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


# ---- overrides: the one syntax, `dvc exp run -S`'s (moalign study, flows.profile, moalign CLI) -------------------

def apply_sets(raw: dict, sets: list[str] | None) -> dict:
    """``raw`` params with ``key=value`` overrides (OmegaConf's dotlist parser: ``dvc exp run -S``'s syntax).

    New keys are added as given, so an unknown one fails in :class:`moalign.config.Params` with its name.
    """
    if not sets:
        return raw
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    bad = [s for s in sets if "=" not in s]
    if bad:
        raise ParamsError(f"-S {bad[0]!r}: not key=value. Fix: write e.g. -S train.max_steps=40")
    try:
        merged = OmegaConf.merge(OmegaConf.create(raw), OmegaConf.from_dotlist(list(sets)))
        return OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as e:
        raise ParamsError(f"-S {' '.join(sets)}: {str(e).splitlines()[0]}. Fix: -S section.key=value, "
                          "keys as in params.yaml") from None


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
