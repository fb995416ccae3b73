"""sft core, generation and checkpoint helpers on a 1-layer model."""

import pytest
import torch

from moalign import checkpoint
from moalign.data.arith import corpus, generate, solve
from moalign.generation import hf_generate, position_ids, token_logprobs
from moalign.modeling import tiny_config, train_tokenizer
from moalign.sft import (collate, domain_losses, encode_rows, evaluate_policy, per_sequence_loss, sequence_ce,
                         weighted_loss, weighted_token_loss)
from moalign.grading import extract_answer
from moalign.text import format_completion


def tiny():
    rows = generate({"en": 60, "de": 2}, 2, 2, {"add": 1}, 0)
    tok = train_tokenizer(corpus(rows["train"]), 300)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", len(tok), 32, 1, 2, 128, tok))
    return rows, tok, model


def test_solutions_are_correct_and_parsable():
    for op, a, b, c in [("add", 478, 96, 0), ("sub", 402, 96, 0), ("mul", 478, 6, 0), ("two", 47, 38, 50)]:
        text, ans = solve(op, a, b, c)
        assert ans == {"add": a + b, "sub": a - b, "mul": a * b, "two": a + b - c}[op]
        assert extract_answer(format_completion(text, str(ans))) == str(ans)


def test_generate_splits_disjoint_and_long_tailed():
    rows = generate({"en": 300, "de": 3}, 5, 3, {"add": 1, "sub": 1, "mul": 1, "two": 1}, 1)
    q = {s: {r["question"] for r in v} for s, v in rows.items()}
    assert not (q["train"] & q["test"]) and not (q["train"] & q["val"]) and not (q["val"] & q["test"])
    assert sum(r["domain"] == "de" for r in rows["train"]) == 3


def test_tokenizer_roundtrip_and_digits():
    rows, tok, _ = tiny()
    text = "Question: 12 + 34 = ?\nSolution: 1. 2 + 4 = 6\nAnswer: \\boxed{46}"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert all(sum(ch.isdigit() for ch in t) <= 1 for t in tok.convert_ids_to_tokens(ids))


def test_loss_masks_prompt_and_weights():
    rows, tok, model = tiny()
    enc = encode_rows(tok, rows["train"][:3])
    b = collate(enc, tok.pad_token_id)
    assert (b["labels"][0, : len(enc[0][0])] == -100).all()
    per = per_sequence_loss(model, b)
    assert per.shape == (3,)
    w = torch.tensor([1.0, 0.0, 0.0])
    assert torch.allclose(weighted_loss(per, w), per[0] / 3)
    total, n = sequence_ce(model, b)
    assert torch.allclose(total / n, per)
    w = torch.tensor([1.0, 2.0, 0.5])  # token mean: sum_b w_b CE_b / sum_b n_b, computed by hand
    assert torch.allclose(weighted_token_loss(total, n, w), (total * w).sum() / n.sum())
    t, c = torch.tensor([4.0, 9.0]), torch.tensor([2.0, 9.0])  # per-sequence means 2 and 1: they differ
    assert weighted_token_loss(t, c, torch.ones(2)).item() == pytest.approx(13 / 11)
    assert weighted_loss(t / c, torch.ones(2)).item() == pytest.approx(1.5)


def test_position_ids_left_padding():
    m = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert position_ids(m).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


def test_generation_logprobs_match_generate_scores():
    rows, tok, model = tiny()
    prompts = ["Question: 1 + 2 = ?\nSolution:", "Question: 10 + 20 = ?\nSolution:"]
    g = hf_generate(model, tok, prompts, 6, do_sample=False)
    assert g.ids.shape == g.mask.shape == g.completion_mask.shape
    assert g.completion_mask.sum(-1).tolist() == g.lengths
    # greedy tokens are the argmax under the recomputed logits (position ids consistent)
    with torch.no_grad():
        logits = model(input_ids=g.ids, attention_mask=g.mask, position_ids=position_ids(g.mask)).logits
        lp = token_logprobs(model, g.ids, g.mask)
    pred = logits[:, :-1].argmax(-1)
    cm = g.completion_mask[:, 1:].bool()
    assert (pred[cm] == g.ids[:, 1:][cm]).all()
    assert (lp[:, 1:][cm] <= 0).all()


def test_evaluate_policy_keys():
    rows, tok, model = tiny()
    m = evaluate_policy(model, tok, rows["val"], 4)
    assert {"eval/all/loss", "eval/all/accuracy", "eval/en/accuracy", "eval/de/length"} <= set(m)


def test_checkpoint_latest_matches_fingerprint(tmp_path):
    checkpoint.save(tmp_path, 1, "aaa", {"x": 1})
    checkpoint.save(tmp_path, 2, "aaa", {"x": 2})
    checkpoint.save(tmp_path, 3, "aaa", {"x": 3})
    assert len(list(tmp_path.glob("step-*"))) == 2
    assert checkpoint.latest(tmp_path, "aaa")["x"] == 3
    assert checkpoint.latest(tmp_path, "bbb") is None


def test_domain_losses_match_evaluate_policy():
    rows, tok, model = tiny()
    val = rows["val"]  # 2 en + 2 de rows
    got = domain_losses(model, tok, val, batch_size=3)  # batches that straddle domains
    ref = evaluate_policy(model, tok, val, 4)
    assert set(got) == {"val_loss/de", "val_loss/en"}
    for d in ("de", "en"):
        assert got[f"val_loss/{d}"] == pytest.approx(ref[f"eval/{d}/loss"], rel=1e-5)
    assert got["val_loss/de"] != pytest.approx(got["val_loss/en"])


def test_train_sft_logs_per_domain_loss_curve():
    from moalign.balance import BalanceConfig, PlanSampler, build_plan
    from moalign.sft import SFTConfig, train_sft

    rows, tok, model = tiny()
    train = rows["train"]
    by = {d: [i for i, r in enumerate(train) if r["domain"] == d] for d in ("de", "en")}
    plan = build_plan(BalanceConfig(strategy="temperature", tau=1.0), {d: len(v) for d, v in by.items()}, 20)
    cfg = SFTConfig(max_steps=5, batch_size=4, eval_every=5, val_loss_every=2, max_new_tokens=4, warmup_steps=1)
    logged = []
    history, _ = train_sft(model, tok, encode_rows(tok, train), PlanSampler(plan, by, 5, 4, 0), cfg, rows["val"],
                           lambda m, s: logged.append((s, m)),
                           curve_rows={"val_loss": rows["val"], "train_loss": train[:4]})
    points = [h for h in history if "val_loss/en" in h]
    assert [h["step"] for h in points] == [0, 2, 4, 5]
    assert all({"val_loss/de", "val_loss/en", "train_loss/en"} <= set(h) for h in points)
    assert points[-1]["val_loss/en"] < points[0]["val_loss/en"]  # it learns
    assert [s for s, m in logged if "val_loss/de" in m] == [0, 2, 4, 5]


def test_sft_resume_after_kill_is_bit_exact(tmp_path):
    """Kill SFT at step 3 (after the step-2 checkpoint), resume: policy, AdamW and scheduler state, history and
    metrics equal the uninterrupted run's bit for bit; the resumed run starts after the checkpoint."""
    import copy

    from moalign.balance import BalanceConfig, PlanSampler, build_plan
    from moalign.sft import SFTConfig, train_sft
    from tests.rl.learnable import same

    rows, tok, model0 = tiny()
    train = rows["train"]
    by = {d: [i for i, r in enumerate(train) if r["domain"] == d] for d in ("de", "en")}
    plan = build_plan(BalanceConfig(strategy="temperature", tau=1.0), {d: len(v) for d, v in by.items()}, 20)
    cfg = SFTConfig(max_steps=6, batch_size=4, eval_every=6, val_loss_every=1, max_new_tokens=4, warmup_steps=2,
                    checkpoint_every=2, lr=1e-2)
    enc = encode_rows(tok, train)

    class Kill(Exception):
        pass

    def run(ckpt, kill_at=None, steps=None):
        m = copy.deepcopy(model0)

        def log(metrics, s):
            if steps is not None:
                steps.append(s)
            if s == kill_at:
                raise Kill

        out = train_sft(m, tok, enc, PlanSampler(plan, by, cfg.max_steps, cfg.batch_size, 0), cfg, rows["val"], log,
                        tmp_path / ckpt, "fp")
        return m, out

    full_m, (full_hist, full_metrics) = run("a")
    with pytest.raises(Kill):
        run("b", kill_at=3)
    steps = []
    res_m, (res_hist, res_metrics) = run("b", steps=steps)
    assert min(steps) == 3  # resumed after the step-2 checkpoint (no step-0 curve point, no steps 1-2)
    losses = [h["val_loss/en"] for h in full_hist if "val_loss/en" in h]
    assert losses[-1] < losses[0] - 0.1  # it learns: gradients were not zero
    for (na, pa), (nb, pb) in zip(full_m.state_dict().items(), res_m.state_dict().items()):
        assert na == nb and torch.equal(pa, pb), na
    a, b = checkpoint.latest(tmp_path / "a", "fp"), checkpoint.latest(tmp_path / "b", "fp")
    assert a["step"] == b["step"] == 4
    for key in ("model", "optimizer", "scheduler", "history"):
        same(a[key], b[key], key)
    same(full_hist, res_hist, "history")
    same(full_metrics, res_metrics, "metrics")
