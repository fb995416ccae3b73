"""moalign.pareto against hand-computed values and against moocore on seeded random fronts; plots smoke."""

import itertools

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
    relation,
    steps_to_dominance,
)
from moalign.plots import plot_curves, plot_pareto

STAIRCASE = np.array([[1, 3], [2, 2], [3, 1]], float)


def _brute_non_dominated(p: np.ndarray) -> list[bool]:
    """Loop version (maximisation): i is dominated when some j is >= everywhere and > somewhere."""
    return [not any(np.all(q >= x) and np.any(q > x) for q in p) for x in p]


# ---- hypervolume: hand-computed ------------------------------------------------------------

def test_hand_computed_2d():
    assert hypervolume(STAIRCASE, [0, 0]) == pytest.approx(6.0)  # 1*3 + 1*2 + 1*1 staircase
    assert hypervolume(STAIRCASE[:1], [0, 0]) == pytest.approx(3.0)
    assert hypervolume(STAIRCASE, [1, 1]) == pytest.approx(1.0 * 1 + 1 * 0 + 0)  # only (2,2) strictly beats (1,1)
    assert hypervolume([[2.0, 3.0]], [0.5, 1.0]) == pytest.approx(1.5 * 2.0)  # one box


def test_hand_computed_3d_box_union():
    # two boxes from the origin: 2x1x1 and 1x2x1 overlap in 1x1x1 -> 2 + 2 - 1
    assert hypervolume([[2, 1, 1], [1, 2, 1]], [0, 0, 0]) == pytest.approx(3.0)


def test_dominated_and_duplicate_points_add_nothing():
    base = hypervolume(STAIRCASE, [0, 0])
    assert hypervolume(np.vstack([STAIRCASE, [[1, 1], [2, 2]]]), [0, 0]) == pytest.approx(base)


# ---- against moocore on random fronts ------------------------------------------------------

@pytest.mark.parametrize("seed,k", list(itertools.product(range(4), (2, 3, 4))))
def test_against_moocore_random_fronts(seed, k):
    rng = np.random.default_rng(seed)
    pts = rng.random((40, k))
    ref = np.zeros(k)
    assert hypervolume(pts, ref) == pytest.approx(moocore.hypervolume(pts, ref=ref, maximise=True))
    assert hypervolume(pts, ref) == pytest.approx(moocore.hypervolume(-pts, ref=-ref))
    nd = non_dominated(pts)
    assert nd.tolist() == moocore.is_nondominated(pts, maximise=True).tolist()
    assert nd.tolist() == _brute_non_dominated(pts)
    # the front alone has the same hypervolume as all points
    assert hypervolume(pts[nd], ref) == pytest.approx(hypervolume(pts, ref))


@pytest.mark.parametrize("seed", range(3))
def test_random_mixed_mask_matches_moocore(seed):
    rng = np.random.default_rng(100 + seed)
    mask = [True, False, True]
    pts = rng.random((25, 3))
    ref = np.array([0.0, 1.0, 0.0])  # worst corner: low for maximised, high for minimised
    assert hypervolume(pts, ref, mask) == pytest.approx(moocore.hypervolume(pts, ref=ref, maximise=mask))
    assert non_dominated(pts, mask).tolist() == moocore.is_nondominated(pts, maximise=mask).tolist()


def test_non_dominated_hand_set_and_edges():
    assert non_dominated(np.vstack([STAIRCASE, [[1, 1]]])).tolist() == [True, True, True, False]
    assert non_dominated([[1, 1], [1, 1], [0, 0]]).tolist() == [True, True, False]  # duplicates kept
    assert non_dominated(np.zeros((0, 2))).tolist() == []
    assert non_dominated([[5.0, 5.0]]).tolist() == [True]


# ---- mixed maximise masks ------------------------------------------------------------------

def test_mixed_maximize_mask():
    # objective 0 maximised, objective 1 (length) minimised; ref (0, 10)
    pts = np.array([[0.5, 4.0], [0.8, 8.0]])
    mask = [True, False]
    assert hypervolume(pts, [0, 10], maximize=mask) == pytest.approx(0.5 * 6 + 0.3 * 2)
    assert dominates([0.8, 3.0], [0.5, 4.0], maximize=mask)
    assert not dominates([0.8, 5.0], [0.5, 4.0], maximize=mask)
    assert non_dominated([[0.5, 4.0], [0.5, 3.0]], mask).tolist() == [False, True]
    assert non_dominated([[0.5, 4.0], [0.5, 3.0]]).tolist() == [True, False]  # all maximised
    assert excluded_by_reference(pts, [0, 6], mask).tolist() == [False, True]  # 8 > 6 is worse
    assert steps_to_dominance([(1, [0.9, 9.0]), (2, [0.9, 4.0])], [0.8, 5.0], mask) == 2


def test_maximize_mask_length_is_checked():
    with pytest.raises(ValueError, match="one bool per objective"):
        hypervolume(STAIRCASE, [0, 0], maximize=[True])
    with pytest.raises(ValueError, match="objectives"):
        hypervolume(STAIRCASE, [0, 0, 0])
    with pytest.raises(ValueError, match="NaN"):
        non_dominated([[np.nan, 1.0]])


# ---- reference point ----------------------------------------------------------------------

def test_reference_not_dominated_is_excluded():
    pts = np.array([[0.5, 0.5], [0.9, 0.1]])
    ref = [0.2, 0.2]
    assert excluded_by_reference(pts, ref).tolist() == [False, True]
    assert hypervolume(pts, ref) == pytest.approx(0.09)  # only (0.5, 0.5): 0.3 * 0.3
    assert hypervolume(pts[1:], ref) == 0.0


def test_all_excluded_gives_zero_and_boundary_is_excluded():
    pts = np.array([[0.2, 0.9], [0.3, 0.1]])  # first point ties the reference on objective 0
    ref = [0.2, 0.0]
    assert excluded_by_reference(pts, ref).tolist() == [True, False]
    assert excluded_by_reference(pts, [1.0, 1.0]).all()
    assert hypervolume(pts, [1.0, 1.0]) == 0.0
    assert hypervolume(pts, ref) == pytest.approx(0.1 * 0.1)
    assert hypervolume(np.zeros((0, 2)), [0.0, 0.0]) == 0.0


# ---- dominance -----------------------------------------------------------------------------

def test_dominates_is_strict_somewhere():
    assert dominates([2, 2], [1, 2]) and not dominates([1, 2], [2, 2])
    assert not dominates([2, 2], [2, 2])
    assert not dominates([3, 0], [2, 2]) and not dominates([2, 2], [3, 0])


def test_dominance_table_crafted():
    t = dominance_table(["a", "b", "c", "d"], [[1, 1], [2, 2], [3, 0], [2, 2]])
    assert t["b"]["a"] == "dominates" and t["a"]["b"] == "dominated"
    assert t["c"]["b"] == "incomparable" and t["b"]["c"] == "incomparable"
    assert t["b"]["d"] == "equal" and t["d"]["b"] == "equal"
    assert t["c"]["a"] == "incomparable"  # 3 > 1 but 0 < 1
    assert set(t) == {"a", "b", "c", "d"} and all(n not in t[n] for n in t)
    # antisymmetry over the whole table
    flip = {"dominates": "dominated", "dominated": "dominates", "equal": "equal", "incomparable": "incomparable"}
    assert all(t[y][x] == flip[r] for x in t for y, r in t[x].items())


def test_dominance_table_minimised_flips_and_rejects_bad_input():
    t = dominance_table(["a", "b"], [[1, 1], [2, 2]], maximize=[False, False])
    assert t["a"]["b"] == "dominates"
    assert relation([1, 5], [1, 5]) == "equal"
    with pytest.raises(ValueError, match="unique"):
        dominance_table(["a", "a"], [[1, 1], [2, 2]])
    with pytest.raises(ValueError, match="names"):
        dominance_table(["a"], [[1, 1], [2, 2]])


# ---- steps to dominance / threshold --------------------------------------------------------

def test_steps_to_dominance_and_threshold():
    curve = [(0, [0.1, 0.1]), (5, [0.5, 0.2]), (10, [0.6, 0.6]), (15, [0.9, 0.9])]
    assert steps_to_dominance(curve, [0.6, 0.5]) == 10
    assert steps_to_dominance(curve, [0.6, 0.6]) == 10  # matching counts
    assert steps_to_dominance(curve, [0.5, 0.25], tol=0.05) == 5
    assert steps_to_dominance(curve, [0.5, 0.25]) == 10  # no tolerance: 0.2 < 0.25
    assert steps_to_dominance(curve, [1.0, 1.0]) is None
    assert steps_to_dominance(list(reversed(curve)), [0.6, 0.5]) == 10  # order-independent
    assert steps_to_dominance([], [0.0, 0.0]) is None
    with pytest.raises(ValueError):
        steps_to_dominance(curve, [0.6, 0.5], tol=-1.0)


def test_first_step_reaching():
    assert first_step_reaching([(0, 0.0), (3, 0.2), (6, 0.4)], 0.3) == 6
    assert first_step_reaching([(6, 0.4), (3, 0.3), (0, 0.0)], 0.3) == 3
    assert first_step_reaching([(0, 0.0), (3, 0.2)], 0.3) is None
    assert first_step_reaching([], 0.0) is None


# ---- plots (smoke: a PNG appears, no temp files are left) -----------------------------------

@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_plot_pareto_writes_png(tmp_path, k):
    rng = np.random.default_rng(k)
    pts = {f"p{i}": rng.random(k) for i in range(5)}
    out = tmp_path / "sub" / "pareto.png"
    plot_pareto(pts, [f"o{j}" for j in range(k)], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["pareto.png"]


def test_plot_pareto_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError, match="objectives"):
        plot_pareto({"a": [1, 2, 3]}, ["x", "y"], tmp_path / "p.png")
    with pytest.raises(ValueError, match="front_mask"):
        plot_pareto({"a": [1, 2]}, ["x", "y"], tmp_path / "p.png", front_mask=[True, False])


def test_plot_curves_writes_png(tmp_path):
    out = tmp_path / "hv.png"
    plot_curves({"fixed": [(0, 0.1), (10, 0.3)], "gradient": [(10, 0.4), (0, 0.1)], "empty": []},
                out, "hypervolume vs step", "hypervolume")
    assert out.read_bytes()[:4] == b"\x89PNG"
    plot_curves({}, tmp_path / "none.png", "nothing", "y")
    assert (tmp_path / "none.png").exists()
