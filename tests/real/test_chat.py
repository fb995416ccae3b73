"""Chat templates (moalign/text.py): the raw format of the tiny default is byte-identical to before;
with SmolLM2's template every prompt is one user turn with the instruction, and SFT learns only the
assistant turn, ending with the end-of-turn EOS."""

from __future__ import annotations

import pytest

from moalign.data.arith import corpus, generate
from moalign.modeling import load_tokenizer, train_tokenizer
from moalign.sft import collate, encode_rows
from moalign.text import INSTRUCTION, format_prompt, format_target

ROW = {"question": "Tom has 22 apples and buys 89 more. How many apples does he have?", "answer": "111",
       "solution": "1. 22 + 89\n2. 2 + 9 = 11, write 1 carry 1\n3. 2 + 8 + 1 = 11, write 1 carry 1\n"
                   "4. so the result is 111"}


def test_tiny_default_prompts_are_byte_identical():
    rows = generate({"en": 40, "de": 2}, 2, 2, {"add": 1, "mul": 1}, 0)
    tok = train_tokenizer(corpus(rows["train"]), 300)
    assert tok.chat_template is None
    assert format_prompt("  What is 2 + 3?  ", tok) == "Question: What is 2 + 3?\nSolution:"
    assert format_target(ROW["question"], ROW["solution"], "111", tok) == " " + ROW["solution"] + \
        "\nAnswer: \\boxed{111}"
    assert format_target("q", "", "7", tok) == " Answer: \\boxed{7}"
    for r, (p, c) in zip(rows["train"][:20], encode_rows(tok, rows["train"][:20])):
        assert tok.decode(p) == f"Question: {r['question']}\nSolution:"  # the pre-chat-template format
        sol = r["solution"].strip()
        assert tok.decode(c[:-1]) == (" " + sol + "\n" if sol else " ") + f"Answer: \\boxed{{{r['answer']}}}"
        assert c[-1] == tok.eos_token_id and tok.eos_token_id not in c[:-1]


def test_chat_prompt_and_assistant_target(smollm2):
    tok = load_tokenizer(smollm2)
    prompt = format_prompt(ROW["question"], tok)
    assert prompt.endswith(f"<|im_start|>user\n{ROW['question']}\n{INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.startswith("<|im_start|>system\n")  # the template's own system turn is kept
    (p, c), = encode_rows(tok, [ROW])
    assert tok.decode(p) == prompt
    assert c[-1] == tok.eos_token_id and tok.eos_token_id not in c[:-1]  # ends at the end-of-turn token
    assert tok.decode(c) == ROW["solution"] + "\nAnswer: \\boxed{111}<|im_end|>"
    b = collate([(p, c), (p[:5], c)], tok.pad_token_id)
    assert (b["labels"][0, : len(p)] == -100).all()  # no loss on the prompt (system + user turns)
    assert b["labels"][0, len(p): len(p) + len(c)].tolist() == c  # loss on every assistant token, EOS included


def test_chat_template_off_gives_the_raw_format(smollm2, tmp_path, tiny_repo):
    import yaml

    from moalign.config import load_params
    from stages import prepare

    raw = yaml.safe_load(open("params.yaml"))
    raw["prepare"]["model"].update(name_or_path=str(smollm2), chat_template="off")
    raw["base"]["tracking"]["enabled"] = False
    yaml.safe_dump(raw, open("params.yaml", "w"))
    prepare.run(load_params())
    tok = load_tokenizer("data/prepared/model")
    assert tok.chat_template is None
    assert format_prompt("What is 2 + 3?", tok) == "Question: What is 2 + 3?\nSolution:"
    raw["prepare"]["model"]["chat_template"] = "auto"
    yaml.safe_dump(raw, open("params.yaml", "w"))
    prepare.run(load_params())
    assert format_prompt("Q?", load_tokenizer("data/prepared/model")).endswith("<|im_start|>assistant\n")


def test_template_that_hides_the_assistant_turn_is_an_error(smollm2):
    tok = load_tokenizer(smollm2)
    tok.chat_template = "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}"
    with pytest.raises(ValueError, match="chat_template: off"):
        format_target("q", "", "1", tok)
