"""Typed config of the rubric stage (``rubric:`` in params.yaml)."""

from __future__ import annotations

from pydantic import Field, field_validator

from moalign.schema import StrictModel


class EvolveConfig(StrictModel):
    """Evolutionary refinement of the meta-rubric."""

    population: int = Field(10, ge=2, description="Rubrics per generation (EvoPrompt uses 10).")
    generations: int = Field(10, ge=0, description="Generations (0 = no refinement).")
    elite: int = Field(2, ge=1, description="Best rubrics copied unchanged into the next generation.")
    mutation_rate: float = Field(0.8, ge=0, le=1, description="Probability that a child is mutated.")
    crossover_rate: float = Field(0.5, ge=0, le=1, description="Probability that a child is a crossover.")
    tie_credit: float = Field(0.5, ge=0, le=1, description="Agreement credit of a tie verdict (0.5: half right).")


class RubricConfig(StrictModel):
    """rubric: the explicit judge, its refinement, and the rubric reward's source."""

    judge: str = Field("rules", description="Judge backend: rules (offline, default) | openai | hf.")
    judge_model: str | None = Field(None, description="hf backend: model name/path; openai: overrides $MOALIGN_JUDGE_MODEL.")
    judge_retries: int = Field(3, ge=0, description="Retries of a failed or unparsable judge call.")
    judge_timeout: float = Field(60.0, gt=0, description="Seconds per judge request.")
    meta: str = Field("rubrics/meta.yaml", description="The general meta-rubric (constitution).")
    domain_layer: str = Field("rubrics/domains/arithmetic.yaml", description="Domain layer for the data's query type.")
    accepted: str = Field("rubrics/accepted.yaml", description="Human-accepted domain principles (git-tracked).")
    preferences: str | None = Field(None, description="Preference dataset (hub name or path); null = synthetic from SFT samples.")
    n_prompts: int = Field(240, ge=6, description="Train prompts sampled from the SFT policy for synthetic pairs.")
    samples_per_prompt: int = Field(4, ge=2, description="SFT samples per prompt (pairs are drawn among them).")
    max_new_tokens: int = Field(128, ge=1, description="Sampling budget for the SFT samples.")
    temperature: float = Field(1.2, gt=0, description="Sampling temperature for diverse SFT samples.")
    label_noise: float = Field(0.1, ge=0, lt=0.5, description="Synthetic annotator's label-flip rate.")
    splits: list[float] = Field(default_factory=lambda: [0.5, 0.25, 0.25], description="train/val/test fractions.")
    evolve: EvolveConfig = Field(default_factory=EvolveConfig)

    @field_validator("judge")
    @classmethod
    def _judge(cls, v: str) -> str:
        from moalign.rubric.judges import JUDGES

        if v not in JUDGES:
            raise ValueError(f"unknown judge {v!r}; valid names: {', '.join(JUDGES.names())}")
        return v

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or any(x <= 0 for x in v) or abs(sum(v) - 1) > 1e-6:
            raise ValueError("splits must be three positive fractions (train, val, test) summing to 1. Fix: e.g. [0.5, 0.25, 0.25]")
        return v
