"""Rewards: accuracy (numbers and LaTeX), conciseness running mean and resume, clarity, bad names."""

import threading

import pytest

from moalign.rl.rewards import REWARDS, make_reward

GOOD = "1. 2 + 3 = 5, write 5 carry 0\n2. so the result is 5\nAnswer: \\boxed{5}"


def test_accuracy_numeric_and_latex():
    acc = make_reward("accuracy")
    assert acc.__name__ == "accuracy"
    assert acc([GOOD, "Answer: \\boxed{6}", "no answer", "\\boxed{}"], answer=["5"] * 4) == [1.0, 0.0, 0.0, 0.0]
    assert acc(["\\boxed{007}", "\\boxed{1,000}", "\\boxed{3.50}"], answer=["7", "1000", "3.5"]) == [1.0] * 3
    assert acc(["\\boxed{0.5}", "\\boxed{\\frac{1}{3}}"], answer=["\\frac{1}{2}", "\\frac{1}{2}"]) == [1.0, 0.0]
    assert acc(["\\boxed{1/2}"], answer=["0.5"], prompts=["q"], domain=["arith"]) == [1.0]  # extra columns ignored


def test_accuracy_latex_outside_main_thread():
    """Prefect may run tasks in threads, where math-verify's signal timeouts are unavailable."""
    out = []
    t = threading.Thread(target=lambda: out.append(make_reward("accuracy")(["\\boxed{0.5}"], answer=["\\frac{1}{2}"])))
    t.start()
    t.join()
    assert out == [[1.0]]


def test_conciseness_running_mean_and_state():
    c = make_reward("conciseness")
    assert c(["a"] * 3, completion_lengths=[10, 20, 30]) == [1.0, 0.0, 0.0]  # mean of this batch: 20
    assert c(["a"] * 2, completion_lengths=[15, 40]) == [1.0, 0.0]  # mean of all 5 seen: 23
    assert c.mean == pytest.approx(23.0)
    c2 = make_reward("conciseness")
    c2.load_state_dict(c.state_dict())
    assert c2(["a"] * 2, completion_lengths=[22, 24]) == c(["a"] * 2, completion_lengths=[22, 24]) == [1.0, 0.0]
    assert c2.state_dict() == c.state_dict()
    assert make_reward("conciseness")(["one two three", "one"]) == [0.0, 1.0]  # words stand in for tokens


def test_conciseness_cont():
    cc = make_reward("conciseness_cont")
    assert cc(["a", "b", "c"], completion_lengths=[10, 30, 20]) == [1.0, pytest.approx(20 / 30), 1.0]
    assert all(0.0 <= v <= 1.0 for v in cc(["a"] * 2, completion_lengths=[0, 500]))


def test_clarity():
    cl = make_reward("clarity")
    texts = [GOOD, "Answer: \\boxed{5}", "1. a\n2. b\n", "First x, then y: \\boxed{3}", "1. a\n2. b \\boxed{ }"]
    assert cl(texts) == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_clarity_mixed_enumerations():
    """The authors' rule: boxed AND (>= 2 enumerated lines OR >= 2 ordinal words), each count on its own."""
    cl = make_reward("clarity")
    mixed = "1. Add the tens.\nFirst 20 + 30 = 50, then 4 + 1 = 5, finally 50 + 5 = 55.\nAnswer: \\boxed{55}"
    one_each = "1. Add the tens.\nFirst 20 + 30 = 50 and 4 + 1 = 5.\nAnswer: \\boxed{55}"
    assert cl([mixed, mixed.replace("\\boxed{55}", "55"), one_each]) == [1.0, 0.0, 0.0]
    others = ["- a\n* b\n\\boxed{1}", "Next we add. Then \\boxed{1}", "see 1. and 2. inline \\boxed{1}"]
    assert cl(others) == [1.0, 1.0, 0.0]


def test_accuracy_nested_and_last_box():
    acc = make_reward("accuracy")
    texts = ["1. halve\n2. \\boxed{\\frac{1}{2}}", "\\boxed{2^{10}}", "\\boxed{5} no, \\boxed{6}",
             "\\boxed{6} no, \\boxed{5}"]
    got = acc(texts, answer=["0.5", "1024", "5", "5"])
    assert got == [1.0, 1.0, 0.0, 1.0]


def test_bad_inputs():
    with pytest.raises(KeyError, match="valid names: accuracy, clarity, conciseness, conciseness_cont, rubric"):
        make_reward("helpfulness")
    with pytest.raises(TypeError, match="train.reward_options.clarity"):
        make_reward("clarity", bogus=1)
    with pytest.raises(ValueError, match="reference answers"):
        make_reward("accuracy")(["a", "b"], answer=["1"])
    assert "rubric" in REWARDS


def test_rubric_objective_needs_refined_rubric(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro rubric"):
        make_reward("rubric", rubric_path=str(tmp_path / "missing.yaml"))
