"""Typed config of the prepare stage (``prepare:`` in params.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from moalign.schema import StrictModel


class GeneratorConfig(StrictModel):
    """The default source: seeded arithmetic word problems in several surface languages."""

    sizes: dict[str, int] = Field(
        default_factory=lambda: {"en": 10000, "es": 2000, "fr": 400, "de": 100},
        description="Train rows per domain (surface language); long-tailed on purpose.",
    )
    eval_rows: int = Field(64, ge=1, description="Val rows and test rows per domain.")
    max_digits: int = Field(3, ge=2, le=6, description="Largest operand size in digits.")
    styles: dict[str, float] = Field(
        default_factory=lambda: {"worked": 0.5, "outline": 0.25, "terse": 0.25},
        description="Shares of the SFT solution styles worked / outline / terse (moalign.data.arith docstring): "
        "the RL trade-off between accuracy, clarity and length.",
    )
    numerals: Literal["words", "digits"] = Field(
        "words", description="How questions write their operands: words = es/fr/de in their own number words "
        "(en keeps digits; each domain needs its own rows to read its questions: moalign.data.arith docstring), "
        "digits = digits everywhere (the earlier world, where domains differed only in template words).",
    )
    op_weights: dict[str, float] = Field(
        default_factory=lambda: {"add": 1.0, "sub": 1.0, "mul": 1.0, "two": 0.5},
        description="Relative frequency of add/sub/mul and two-step problems.",
    )

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if n < 1}
        if bad:
            raise ValueError(f"every domain needs at least 1 train row, got {bad}. Fix: raise them or drop the domain")
        if not v:
            raise ValueError("no domains. Fix: list at least one domain, e.g. {en: 1000}")
        return v

    @field_validator("styles")
    @classmethod
    def _styles(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - {"worked", "outline", "terse"}
        if unknown:
            raise ValueError(f"unknown style(s) {sorted(unknown)}. Fix: use worked, outline, terse")
        if not any(w > 0 for w in v.values()) or any(w < 0 for w in v.values()):
            raise ValueError("style shares must be >= 0 with at least one > 0, e.g. {worked: 0.5, terse: 0.5}")
        return v

    @field_validator("op_weights")
    @classmethod
    def _ops(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - {"add", "sub", "mul", "two"}
        if unknown:
            raise ValueError(f"unknown operation(s) {sorted(unknown)}. Fix: use add, sub, mul, two")
        if not any(w > 0 for w in v.values()) or any(w < 0 for w in v.values()):
            raise ValueError("weights must be >= 0 with at least one > 0")
        return v


class ColumnsConfig(StrictModel):
    """Which dataset columns hold our fields."""

    question: str = Field("question", description="Column with the question/prompt text.")
    answer: str = Field("answer", description="Column with the reference answer (read per dataset.answer_format).")
    domain: str | None = Field(None, description="Column with the domain; None puts every row in `default_domain`.")
    solution: str | None = Field(None, description="Column with a worked solution for SFT (optional).")


class DatasetConfig(StrictModel):
    """A user dataset: Hugging Face hub name, saved folder, or local json/jsonl/csv/parquet file."""

    name_or_path: str | None = Field(None, description="Hub name or local path; used when prepare.source is 'dataset'.")
    config: str | None = Field(None, description="Dataset config name (hub datasets with several configs).")
    train_split: str = Field("train", description="Split to read rows from (val/test are carved out of it).")
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    default_domain: str = Field("default", description="Domain for rows when columns.domain is None.")
    answer_format: Literal["auto", "plain", "gsm8k", "boxed"] = Field(
        "auto", description="How to read the answer column: gsm8k ('<work> #### N': N, commas dropped; the work, "
        "calculator notes stripped, is the SFT solution), boxed (last \\boxed{...}; the text is the solution), "
        "plain (the cell as is), auto (gsm8k if '####' occurs, else boxed if '\\boxed{' does, else plain).")
    non_numeric: Literal["auto", "drop", "keep"] = Field(
        "auto", description="Rows whose reference answer is not a number: drop (counted in metrics/prepare.json "
        "as dropped_non_numeric), keep (counted as non_numeric_answers), or auto: keep LaTeX-looking answers "
        "(backslash, braces or ^: graded by math-verify) and drop plain words, which no grader can check."
    )
    val_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of rows held out for val.")
    test_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of rows held out for test.")
    max_rows: int | None = Field(None, ge=3, description="Keep at most this many rows (after shuffling).")


class TokenizerConfig(StrictModel):
    """The locally trained tokenizer (ignored when model.name_or_path is set)."""

    vocab_size: int = Field(1024, ge=300, le=65536, description="BPE vocabulary size (>= 256 bytes + specials).")


class ModelConfig(StrictModel):
    """The policy: a tiny config-built model by default, or any Hugging Face causal LM."""

    name_or_path: str | None = Field(
        None, description="HF causal LM name/path; replaces the tiny model AND the local tokenizer."
    )
    arch: Literal["llama", "qwen2"] = Field("llama", description="Architecture of the tiny config.")
    hidden_size: int = Field(128, ge=16, description="Tiny model width.")
    num_layers: int = Field(4, ge=1, description="Tiny model depth.")
    num_heads: int = Field(4, ge=1, description="Attention heads (must divide hidden_size).")
    max_length: int = Field(320, ge=64, description="Max positions (prompt + completion).")
    chat_template: Literal["auto", "off"] = Field(
        "auto", description="Prompt format of every stage (moalign/text.py): auto = the model's chat template when its "
        "tokenizer has one (the question and the answer-format instruction as the user turn, SFT targets as the "
        "assistant turn), else the raw 'Question: ...\\nSolution:' format; off = always raw (prepare saves the "
        "tokenizer without its template, and every later stage reads that tokenizer).")

    @model_validator(mode="after")
    def _heads(self) -> "ModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}. "
                "Fix: pick num_heads that divides hidden_size"
            )
        return self


class PrepareConfig(StrictModel):
    """prepare: build data/prepared/{train,val,test}, the tokenizer and the model config."""

    source: Literal["generator", "dataset"] = Field("generator", description="Where rows come from.")
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)

    @model_validator(mode="after")
    def _source(self) -> "PrepareConfig":
        if self.source == "dataset" and not self.dataset.name_or_path:
            raise ValueError(
                "source is 'dataset' but dataset.name_or_path is empty. "
                "Fix: set prepare.dataset.name_or_path or use source: generator"
            )
        return self
