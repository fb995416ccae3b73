"""Typed config of the rubric stage (``rubric:`` in params.yaml); unknown keys are errors."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from moalign.schema import StrictModel


class EvolveConfig(StrictModel):
    """Evolutionary refinement of the meta-rubric (GA-style beam search over criteria edits)."""

    population: int = Field(10, ge=2, description="Rubrics per generation (EvoPrompt uses 10).")
    generations: int = Field(10, ge=0, description="Generations (0 = no refinement, the initial rubric wins).")
    elite: int = Field(2, ge=1, description="Best rubrics (train fitness) copied unchanged into the next generation.")
    mutation_rate: float = Field(0.8, ge=0, le=1, description="Probability that a child is mutated.")
    crossover_rate: float = Field(0.5, ge=0, le=1, description="Probability that a child is a crossover of two parents.")
    add_rate: float = Field(1.0, ge=0, description="Relative odds of an ADD mutation (a criterion from the pool).")
    delete_rate: float = Field(1.0, ge=0, description="Relative odds of a DELETE mutation (a non-fatal criterion).")
    modify_rate: float = Field(2.0, ge=0, description="Relative odds of a MODIFY mutation (tier/direction/margin/weight).")
    tie_credit: float = Field(0.5, ge=0, le=1, description="Agreement credit of a tie verdict (0.5: half right, 0: wrong).")
    seed: int | None = Field(None, description="Seed of the search; null = base.seed.")

    @model_validator(mode="after")
    def _sizes(self) -> "EvolveConfig":
        if self.elite >= self.population:
            raise ValueError(f"elite ({self.elite}) must be < population ({self.population}). "
                             "Fix: e.g. population: 10, elite: 2")
        if self.add_rate + self.delete_rate + self.modify_rate <= 0:
            raise ValueError("add_rate + delete_rate + modify_rate must be > 0. Fix: e.g. 1, 1, 2")
        return self


class RubricConfig(StrictModel):
    """rubric: the explicit judge, its refinement, and the rubric reward's source."""

    judge: str = Field("rules", description="Judge backend: rules (offline, default) | openai | hf.")
    judge_model: str | None = Field(None, description="hf: model name/path; openai: overrides $MOALIGN_JUDGE_MODEL.")
    judge_retries: int = Field(3, ge=0, description="Extra attempts after a failed or unparsable judge call.")
    judge_timeout: float = Field(60.0, gt=0, description="Seconds per judge request (openai).")
    judge_backoff: float = Field(1.0, ge=0, description="First retry delay in seconds; doubles per retry (capped at 30).")
    gate_checks: list[str] = Field(default_factory=lambda: ["ground_truth"],
                                   description="PVR checks that decide a pair before the judge when their verdicts "
                                   "differ (moalign/rubric/pvr.py pvr_gate), in the rubric stage's fitness, selection, "
                                   "review proposals and judge comparison; [] = the rubric decides every pair. The RL "
                                   "reward has its own: train.reward_options.rubric.gate_checks.")
    meta: str = Field("rubrics/meta.yaml", description="The general meta-rubric (constitution).")
    domain_layer: str | None = Field("rubrics/domains/arithmetic.yaml", description="Domain layer (candidate dimensions).")
    accepted: str = Field("rubrics/accepted.yaml", description="Human-accepted domain principles (git-tracked list).")
    preferences: str | None = Field(None, description="Preference dataset (hub name or json/jsonl/csv/parquet); "
                                                      "null = synthetic pairs from SFT samples.")
    preference_columns: dict[str, str] | None = Field(
        None, description="Map of our column names (prompt, chosen, rejected, answer, domain) to the dataset's.")
    n_prompts: int = Field(240, ge=6, description="Train prompts sampled from the SFT policy for synthetic pairs.")
    samples_per_prompt: int = Field(4, ge=2, description="SFT samples per prompt (pairs are drawn among them).")
    max_new_tokens: int = Field(128, ge=1, description="Sampling budget for the SFT samples.")
    temperature: float = Field(1.2, gt=0, description="Sampling temperature for diverse SFT samples.")
    annotator: str = Field("honest_working", description="Synthetic annotator (moalign/rubric/annotators.py): "
                           "honest_working (correct, then a criterion the judge has no feature for) | rules "
                           "(correct, well-formed, shorter: the judge's own features).")
    balance_length: bool = Field(True, description="Pairs decided after correctness: as many with the longer response "
                                 "preferred as with the shorter, so length alone predicts none of them.")
    label_noise: float = Field(0.1, ge=0, lt=0.5, description="Synthetic annotator's label-flip rate.")
    max_pairs_per_prompt: int = Field(3, ge=1, description="Most synthetic pairs kept per prompt.")
    balance_levels: bool = Field(True, description="Draw a prompt's pairs round-robin over the annotator level that "
                                                   "decides them (correctness, format, length), so pairs that test the "
                                                   "rubric are not drowned by ones the ground-truth gate decides.")
    splits: list[float] = Field(default_factory=lambda: [0.5, 0.25, 0.25], description="train/val/test fractions.")
    evolve: EvolveConfig = Field(default_factory=EvolveConfig, description="Evolutionary refinement.")

    @field_validator("judge")
    @classmethod
    def _judge(cls, v: str) -> str:
        from moalign.rubric.judges import JUDGES

        return JUDGES.check(v, "judge")

    @field_validator("annotator")
    @classmethod
    def _annotator(cls, v: str) -> str:
        from moalign.rubric.annotators import ANNOTATORS

        return ANNOTATORS.check(v, "annotator")

    @field_validator("gate_checks")
    @classmethod
    def _gate(cls, v: list[str]) -> list[str]:
        from moalign.rubric.pvr import PVR

        bad = [c for c in v if c not in PVR]
        if bad:
            raise ValueError(f"unknown PVR checks {bad}; valid names: {', '.join(PVR.names())}")
        return v

    @field_validator("preference_columns")
    @classmethod
    def _columns(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        ours = {"prompt", "chosen", "rejected", "answer", "domain"}
        if v is not None and set(v) - ours:
            raise ValueError(f"unknown keys {sorted(set(v) - ours)}. Fix: map only {sorted(ours)} to your columns")
        return v

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or any(x <= 0 for x in v) or abs(sum(v) - 1) > 1e-6:
            raise ValueError("splits must be three positive fractions (train, val, test) summing to 1. "
                             "Fix: e.g. [0.5, 0.25, 0.25]")
        return v
