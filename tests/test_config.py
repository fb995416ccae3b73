import pytest
import yaml

from moalign.config import Params, flatten, load_params
from moalign.schema import ParamsError
from tests.tiny import ROOT, merge


def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_default_params_load():
    p = load_params(ROOT / "params.yaml")
    assert p.base.tracking.uri == "sqlite:///mlflow.db"
    assert p.prepare.generator.sizes["en"] >= 100 * min(p.prepare.generator.sizes.values())


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"train": {"group_szie": 4}}, "train.group_szie"),
        ({"prepare": {"generator": {"sizes": {"en": "many"}}}}, "prepare.generator.sizes.en"),
        ({"base": {"device": "tpu"}}, "base.device"),
        ({"sft": {"lr": -1}}, "sft.lr"),
        ({"prepare": {"model": {"hidden_size": 30, "num_heads": 4}}}, "prepare.model"),
        ({"prepare": {"source": "dataset"}}, "prepare"),
    ],
)
def test_bad_keys_are_named(patch, key):
    with pytest.raises(ParamsError) as e:
        Params(merge(raw(), patch))
    assert key in str(e.value)


def test_unknown_section_named():
    with pytest.raises(ParamsError, match="trian"):
        Params({**raw(), "trian": {}})


def test_misspelt_key_in_file_names_file_and_key(tmp_path):
    bad = merge(raw(), {"prepare": {"generatr": {}}})
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(bad))
    with pytest.raises(ParamsError) as e:
        load_params(f)
    assert "prepare.generatr" in str(e.value) and "unknown key" in str(e.value)
    assert str(f) in str(e.value)


def test_missing_file():
    with pytest.raises(ParamsError, match="not found"):
        load_params("/nonexistent/params.yaml")


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1]}}, "e": 2}) == {"a.b": 1, "a.c.d": [1], "e": 2}


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"sft": {"max_steps": True}}, "sft.max_steps"),
        ({"sft": {"lr": False}}, "sft.lr"),
        ({"prepare": {"dataset": {"max_rows": True}}}, "prepare.dataset.max_rows"),
        ({"prepare": {"generator": {"sizes": {"en": True}}}}, "prepare.generator.sizes"),
        ({"base": {"tracking": {"enabled": 1}}}, "base.tracking.enabled"),
        ({"base": {"tracking": {"required": "yes"}}}, "base.tracking.required"),
    ],
)
def test_booleans_and_numbers_are_not_interchangeable(patch, key):
    with pytest.raises(ParamsError) as e:
        Params(merge(raw(), patch))
    assert key in str(e.value) and ("boolean" in str(e.value))


def test_numbers_still_accept_ints_for_floats_and_null_for_optional():
    p = Params(merge(raw(), {"sft": {"lr": 1}, "prepare": {"dataset": {"max_rows": None}}}))
    assert p.sft.lr == 1.0 and p.prepare.dataset.max_rows is None


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"rubric": {"label_noise": "0.2"}}, "rubric.label_noise"),
        ({"sft": {"lr": "1e-3"}}, "sft.lr"),
        ({"train": {"max_steps": "5"}}, "train.max_steps"),
        ({"prepare": {"generator": {"sizes": {"en": "200"}}}}, "prepare.generator.sizes.en"),
        ({"rubric": {"splits": ["0.5", 0.25, 0.25]}}, "rubric.splits[0]"),
        ({"rubric": {"evolve": {"population": 10.0}}}, "rubric.evolve.population"),
    ],
)
def test_strings_and_fractions_are_not_numbers(patch, key):
    """Strict values: pydantic's lax mode would read '0.2' as 0.2 and 10.0 as 10."""
    with pytest.raises(ParamsError) as e:
        Params(merge(raw(), patch))
    assert key in str(e.value) and "Fix: write" in str(e.value), str(e.value)


def test_every_bad_key_of_every_section_in_one_error(tmp_path):
    bad = merge(raw(), {"train": {"group_szie": 4}, "rubric": {"label_noise": "0.2"}, "sft": {"max_steps": True},
                        "base": {"device": "tpu"}})
    bad["trian"] = {}
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(bad))
    with pytest.raises(ParamsError) as e:
        load_params(f)
    msg = str(e.value)
    for key in ("trian", "train.group_szie", "rubric.label_noise", "sft.max_steps", "base.device"):
        assert key in msg, (key, msg)
