"""LoRA end to end (sft -> train -> snapshots -> evaluate) and the MLflow model registry round trip,
in-process on the tiny config: each final policy is registered as models:/moalign-policy@<strategy>,
and the registered model, loaded back by name, generates what the policy folder generates."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest
import torch
from safetensors.torch import load_file

from moalign.config import load_params
from moalign.modeling import load_policy, load_tokenizer
from moalign.text import format_prompt
from stages import balance, evaluate, prepare, sft, train

STRATEGIES = ["fixed", "hypervolume"]


def pipeline(dest: Path, extra: dict):
    """prepare -> balance -> sft -> train@{fixed,hypervolume} -> evaluate in a tiny repo at ``dest``."""
    from tests.tiny import make_repo

    repo = make_repo(dest, extra)
    old = os.getcwd()
    os.chdir(repo)
    os.environ.pop("MOALIGN_PARENT_RUN_ID", None)
    try:
        params = load_params()
        for stage in (prepare, balance, sft):
            stage.run(params)
        for s in STRATEGIES:
            train.run(params, s)
        return repo, params, evaluate.run(params)
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    # 80 SFT steps: the policy learns to stop (EOS), so rollout lengths and rewards vary and RL has a gradient
    return pipeline(tmp_path_factory.mktemp("full") / "repo", {
        "sft": {"max_steps": 80, "batch_size": 8, "eval_every": 80, "checkpoint_every": 80, "val_loss_every": 80},
        "train": {"strategies": STRATEGIES, "lr": 1e-3, "max_new_tokens": 24, "group_size": 4, "prompts_per_step": 4},
        "evaluate": {"bootstrap": 10, "max_new_tokens": 24}})


@pytest.fixture(scope="module")
def lora(full, tmp_path_factory):
    """The LoRA path as a pretrained model takes it: the full run's SFT policy is the 'pretrained' base."""
    base = str(full[0] / "models/sft")
    return pipeline(tmp_path_factory.mktemp("lora") / "repo", {
        "prepare": {"model": {"name_or_path": base}},
        "sft": {"lora": {"enabled": True, "r": 4, "alpha": 8}, "lr": 1e-3, "max_steps": 4, "eval_every": 4},
        "train": {"strategies": STRATEGIES, "lr": 1e-2, "max_new_tokens": 24, "group_size": 4, "prompts_per_step": 4},
        "evaluate": {"bootstrap": 10, "max_new_tokens": 24}})


@pytest.fixture(params=["full", "lora"])
def run(request, monkeypatch):
    repo, params, metrics = request.getfixturevalue(request.param)
    monkeypatch.chdir(repo)
    return request.param, params, metrics


def greedy(model, tok, n: int = 8) -> list[int]:
    enc = tok([format_prompt("Tom has 12 apples and buys 7 more. How many apples does he have?", tok)],
              return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return out[0, enc["input_ids"].shape[1]:].tolist()


def test_lora_policies_are_adapters_that_trained(run):
    kind, _, metrics = run
    assert ("base" in metrics) == (kind == "lora")  # a pretrained model (name_or_path) is scored as policy `base`
    if kind != "lora":
        assert Path("models/train/hypervolume/model.safetensors").exists()
        return
    assert metrics["base"]["weight_shift"] == 0 and len(metrics["non_dominated"]) >= 1
    assert Path("models/sft/moalign_lora.json").exists() and Path("models/sft/model.safetensors").exists()
    for folder in [Path("models/train") / s for s in STRATEGIES] + [Path("models/train/hypervolume/snapshots/step-00001")]:
        names = {p.name for p in folder.iterdir()}
        assert {"adapter_config.json", "adapter_model.safetensors"} <= names, folder
        assert not {"model.safetensors", "config.json"} & names, folder  # a few-kB adapter, not a model copy
        b = [v for k, v in load_file(folder / "adapter_model.safetensors").items() if "lora_B" in k]
        assert b and any(t.abs().sum() > 0 for t in b), folder  # LoRA B starts at 0: the adapter was trained
    assert all("hypervolume" in metrics[s] for s in ["sft", *STRATEGIES])
    merged = load_policy("models/train/hypervolume")  # evaluation loads the adapter merged into its base: fast
    assert type(merged).__name__ == "LlamaForCausalLM" and not any("lora" in n for n, _ in merged.named_parameters())


def test_registered_policy_loads_by_name_and_generates(run):
    kind, params, metrics = run
    mlflow.set_tracking_uri(params.base.tracking.uri)
    client = mlflow.MlflowClient()
    for policy in ["sft", *STRATEGIES]:
        mv = client.get_model_version_by_alias("moalign-policy", policy)
        assert mv.tags["moalign.strategy"] == policy and f"hypervolume {metrics[policy]['hypervolume']:.4f}" in \
            mv.description
        logged = mlflow.get_logged_model(mv.source.split("/")[-1])  # source: models:/<logged model id>
        assert {m.key: m.value for m in logged.metrics}["accuracy"] == pytest.approx(metrics[policy]["accuracy"])
    comp = mlflow.transformers.load_model("models:/moalign-policy@hypervolume", return_type="components")
    tok = load_tokenizer("models/sft")
    folder = load_policy("models/train/hypervolume")
    assert greedy(comp["model"], comp["tokenizer"]) == greedy(folder, tok)
    ids = torch.tensor([tok("Question: 3 + 4\nSolution:")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(comp["model"](ids).logits, folder(ids).logits, atol=1e-5)
    assert (type(comp["model"]).__name__ == "PeftModelForCausalLM") == (kind == "lora")
