import pytest

from moalign.rl.rewards import REWARDS, make_reward

GOOD = "1. 2 + 3 = 5, write 5 carry 0\n2. so the result is 5\nAnswer: \\boxed{5}"


def test_accuracy_numeric_and_latex():
    acc = make_reward("accuracy")
    assert acc([GOOD, "Answer: \\boxed{6}", "no answer"], answer=["5", "5", "5"]) == [1.0, 0.0, 0.0]
    assert acc(["\\boxed{007}"], answer=["7"]) == [1.0]
    assert acc(["\\boxed{0.5}"], answer=["\\frac{1}{2}"]) == [1.0]


def test_conciseness_running_mean_and_state():
    c = make_reward("conciseness")
    assert c(["a"] * 3, completion_lengths=[10, 20, 30]) == [1.0, 0.0, 0.0]  # mean 20
    assert c(["a"] * 2, completion_lengths=[15, 40]) == [1.0, 0.0]  # mean of all 5 = 23
    c2 = make_reward("conciseness")
    c2.load_state_dict(c.state_dict())
    assert c2.mean == pytest.approx(23.0)
    cc = make_reward("conciseness_cont")
    assert cc(["a", "b"], completion_lengths=[10, 30]) == [1.0, pytest.approx(20 / 30)]


def test_clarity():
    cl = make_reward("clarity")
    assert cl([GOOD, "Answer: \\boxed{5}", "1. a\n2. b\n", "First x, then y: \\boxed{3}"]) == [1.0, 0.0, 0.0, 1.0]


def test_unknown_objective_lists_valid():
    with pytest.raises(KeyError, match="accuracy, clarity, conciseness"):
        REWARDS.get("helpfulness")


def test_rubric_objective_needs_refined_rubric(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro rubric"):
        make_reward("rubric", rubric_path=str(tmp_path / "missing.yaml"))
