"""A user's own dataset with one-line GSM8K-style solutions (`... #### N`) through prepare -> sft -> train ->
evaluate: clarity is 0 for every policy (no answer has steps), which with the origin reference made every
hypervolume 0 and froze the hypervolume strategy. The stages must say so, record it, and keep the
hypervolume informative (moalign/evaluate.py, "Degenerate fronts"; moalign/rl/weighting.py (5))."""

import json
import logging
import random
from pathlib import Path

import pytest
import yaml

from moalign.config import load_params
from stages import balance, evaluate, prepare, sft, train


def _gsm8k_style(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        lang = ["en", "es", "fr", "de"][min(3, int(rng.random() ** 3 * 4))]  # long-tailed domains
        rows.append({"question": f"Tom has {a} apples and buys {b} more. How many apples? ({lang})",
                     "answer": f"He has {a} + {b} = {a + b} apples. #### {a + b}", "lang": lang})
    return rows


@pytest.mark.slow
def test_one_line_solutions_give_a_degenerate_but_informative_front(tiny_repo, caplog):
    Path("gsm.jsonl").write_text("\n".join(json.dumps(r) for r in _gsm8k_style(240)))
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["prepare"]["source"] = "dataset"
    p["prepare"]["dataset"].update(name_or_path="gsm.jsonl", answer_format="gsm8k",
                                   columns={"question": "question", "answer": "answer", "domain": "lang", "solution": None})
    p["train"].update(strategies=["fixed", "hypervolume"], max_steps=3, group_size=4, max_new_tokens=24,
                      lr=0.01, temperature=1.5, eval_every=1, val_rows=8)
    p["evaluate"].update(max_new_tokens=24)
    Path("params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    params = load_params()
    prepare.run(params)
    balance.run(params)
    sft.run(params)
    with caplog.at_level(logging.WARNING):
        for s in ("fixed", "hypervolume"):
            train.run(params, s)
        evaluate.run(params)
    hist = json.loads(Path("models/train/hypervolume/history.json").read_text())
    assert all(v["point"][2] == 0.0 for v in hist["validation"])  # clarity never leaves 0 on this data
    assert json.loads(Path("metrics/train/hypervolume.json").read_text())["degenerate/clarity"] == 1.0
    assert max(v["hypervolume"] for v in hist["validation"]) > 0  # the strategy still sees a front
    m = json.loads(Path("metrics/evaluate.json").read_text())
    assert "clarity" in m["degenerate"]["constant"] and m["reference"][2] < 0
    assert all(m[n]["hypervolume"] > 0 for n in ("sft", "fixed", "hypervolume"))
    assert "degenerate front" in caplog.text and "lowered" in caplog.text
