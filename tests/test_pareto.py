import moocore
import numpy as np
import pytest

from moalign.pareto import (
    dominance_table,
    dominates,
    excluded_by_reference,
    first_step_reaching,
    hypervolume,
    non_dominated,
    steps_to_dominance,
)


def test_hand_computed_2d():
    pts = np.array([[1, 3], [2, 2], [3, 1]], float)
    assert hypervolume(pts, [0, 0]) == pytest.approx(6.0)  # 3 + 2 + 1 staircase
    assert hypervolume(pts[:1], [0, 0]) == pytest.approx(3.0)
    assert non_dominated(np.vstack([pts, [[1, 1]]])).tolist() == [True, True, True, False]


@pytest.mark.parametrize("seed", range(5))
def test_against_moocore_random_fronts(seed):
    rng = np.random.default_rng(seed)
    pts = rng.random((30, 3))
    ref = np.zeros(3)
    assert hypervolume(pts, ref) == pytest.approx(moocore.hypervolume(-pts, ref=-ref))
    assert non_dominated(pts).tolist() == moocore.is_nondominated(-pts).tolist()


def test_mixed_maximize_mask():
    # objective 0 maximised, objective 1 (length) minimised; ref (0, 10)
    pts = np.array([[0.5, 4.0], [0.8, 8.0]])
    assert hypervolume(pts, [0, 10], maximize=[True, False]) == pytest.approx(0.5 * 6 + 0.3 * 2)
    assert dominates([0.8, 3.0], [0.5, 4.0], maximize=[True, False])


def test_reference_not_dominated_is_excluded():
    pts = np.array([[0.5, 0.5], [0.9, 0.1]])
    ref = [0.2, 0.2]
    assert excluded_by_reference(pts, ref).tolist() == [False, True]
    assert hypervolume(pts, ref) == pytest.approx(0.09)
    assert hypervolume(pts[1:], ref) == 0.0


def test_dominance_table_crafted():
    t = dominance_table(["a", "b", "c", "d"], [[1, 1], [2, 2], [3, 0], [2, 2]])
    assert t["b"]["a"] == "dominates" and t["a"]["b"] == "dominated"
    assert t["c"]["b"] == "incomparable" and t["b"]["d"] == "equal"


def test_steps_to_dominance_and_threshold():
    curve = [(0, [0.1, 0.1]), (5, [0.5, 0.2]), (10, [0.6, 0.6]), (15, [0.9, 0.9])]
    assert steps_to_dominance(curve, [0.6, 0.5]) == 10
    assert steps_to_dominance(curve, [0.5, 0.25], tol=0.05) == 5
    assert steps_to_dominance(curve, [1.0, 1.0]) is None
    assert first_step_reaching([(0, 0.0), (3, 0.2), (6, 0.4)], 0.3) == 6
