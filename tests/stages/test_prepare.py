import json
from pathlib import Path

import datasets
import mlflow
import pytest
import yaml

from moalign.config import load_params
from stages import prepare


def test_prepare_generator_smoke(tiny_repo):
    metrics = prepare.run(load_params())
    splits = {s: datasets.load_from_disk(f"data/prepared/{s}") for s in ("train", "val", "test")}
    assert set(splits["train"].column_names) >= {"question", "answer", "domain", "solution"}
    qs = [set(d["question"]) for d in splits.values()]
    assert not (qs[0] & qs[1]) and not (qs[0] & qs[2]) and not (qs[1] & qs[2])  # disjoint
    assert metrics["rows_train_en"] == 200 and metrics["imbalance_ratio"] == 100
    assert json.loads(Path("metrics/prepare.json").read_text())["rows_train"] == 250
    assert (Path("data/prepared/model/config.json")).exists()
    assert (Path("data/prepared/model/tokenizer.json")).exists()
    # MLflow: stage run with flattened params and the git tag
    mlflow.set_tracking_uri(load_params().base.tracking.uri)
    runs = mlflow.search_runs(experiment_names=["moalign"])
    assert len(runs) == 1
    r = runs.iloc[0]
    assert r["tags.moalign.stage"] == "prepare" and "tags.moalign.git_commit" in runs
    assert r["params.prepare.generator.sizes.en"] == "200"
    assert r["metrics.rows_train"] == 250


def test_prepare_dataset_source_local_jsonl(tiny_repo):
    rows = [{"q": f"What is {i} + {i}?", "a": f"#### {2 * i}", "topic": "t" + str(i % 2)} for i in range(40)]
    Path("d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["prepare"]["source"] = "dataset"
    p["prepare"]["dataset"].update(name_or_path="d.jsonl", columns={"question": "q", "answer": "a", "domain": "topic", "solution": None})
    Path("params.yaml").write_text(yaml.safe_dump(p))
    prepare.run(load_params())
    train = datasets.load_from_disk("data/prepared/train")
    assert set(train["domain"]) == {"t0", "t1"}
    assert all(a.isdigit() for a in train["answer"])
    assert len(train) + len(datasets.load_from_disk("data/prepared/val")) + len(datasets.load_from_disk("data/prepared/test")) == 40


def _set_dataset(**kw):
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["prepare"]["source"] = "dataset"
    p["prepare"]["dataset"].update(kw)
    Path("params.yaml").write_text(yaml.safe_dump(p))


def test_missing_column_lists_available(tiny_repo):
    Path("d.jsonl").write_text('{"question": "1+1", "label": "2"}\n' * 5)
    _set_dataset(name_or_path="d.jsonl")
    with pytest.raises(KeyError) as e:
        prepare.run(load_params())
    assert "'answer'" in str(e.value) and "label" in str(e.value)
    assert not Path("data/prepared").exists()


def test_missing_path_named_and_no_partial_output(tiny_repo, capsys):
    _set_dataset(name_or_path="nope/missing.jsonl")
    assert prepare.main([]) == 2
    assert "nope/missing.jsonl" in capsys.readouterr().err
    assert not Path("data/prepared").exists()
    assert not list(Path("data").glob(".prepared*"))  # no temp leftovers


def test_misspelt_param_exit_code(tiny_repo, capsys):
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["prepare"]["generator"]["sizs"] = {}
    Path("params.yaml").write_text(yaml.safe_dump(p))
    assert prepare.main([]) == 2
    assert "prepare.generator.sizs" in capsys.readouterr().err


def test_tracking_disabled_and_unreachable(tiny_repo):
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["base"]["tracking"]["uri"] = "http://127.0.0.1:9"  # nothing listens there
    Path("params.yaml").write_text(yaml.safe_dump(p))
    import os

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "2"
    try:
        prepare.run(load_params())  # not required: warns and continues
    finally:
        os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        os.environ.pop("MLFLOW_HTTP_REQUEST_TIMEOUT")
    assert Path("data/prepared/train").exists()
    p["base"]["tracking"] = {"enabled": False}
    Path("params.yaml").write_text(yaml.safe_dump(p))
    prepare.run(load_params())


def _prepare_rows(tmp_path, cells, fmt):
    """Run prepare on a jsonl of (question, answer cell) rows; all prepared rows by question."""
    f = tmp_path / "answers.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"Q{i}?", "answer": c}) for i, c in enumerate(cells)))
    _set_dataset(name_or_path=str(f), answer_format=fmt, non_numeric="keep")  # word answers kept: formats only
    prepare.run(load_params())
    rows = [r for s in ("train", "val", "test") for r in datasets.load_from_disk(f"data/prepared/{s}")]
    assert len(rows) == len(cells)
    return {r["question"]: r for r in rows}


GSM = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 7{},000"
BOXED = "Halve it: \\boxed{{\\frac{{1}}{{2}}}}; then square: \\boxed{{2^{{{}}}}}"


def test_answer_format_gsm8k(tiny_repo, tmp_path):
    rows = _prepare_rows(tmp_path, [GSM.format(i % 10) for i in range(12)], "gsm8k")
    r = rows["Q3?"]
    assert r["answer"] == "73000"  # after ####, commas dropped
    assert r["solution"] == "Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips."  # no <<...>> notes


def test_answer_format_boxed(tiny_repo, tmp_path):
    cells = [BOXED.format(i) for i in range(12)]
    rows = _prepare_rows(tmp_path, cells, "boxed")
    assert rows["Q11?"]["answer"] == "2^{11}"  # the last box, nested braces kept
    assert rows["Q11?"]["solution"] == cells[11]


def test_answer_format_plain(tiny_repo, tmp_path):
    cells = ["about 5 to 7 #### x" if i == 0 else f"  {i},5 apples " for i in range(12)]
    rows = _prepare_rows(tmp_path, cells, "plain")
    assert rows["Q0?"]["answer"] == "about 5 to 7 #### x" and rows["Q0?"]["solution"] == ""
    assert rows["Q4?"]["answer"] == "4,5 apples"  # as is (stripped), no number fishing


def test_answer_format_auto_per_row(tiny_repo, tmp_path):
    cells = [GSM.format(1), BOXED.format(3), "  forty-two "] * 4
    rows = _prepare_rows(tmp_path, cells, "auto")
    assert [rows[f"Q{i}?"]["answer"] for i in range(3)] == ["71000", "2^{3}", "forty-two"]
    assert "<<" not in rows["Q0?"]["solution"] and rows["Q1?"]["solution"] == cells[1]


def test_answer_format_mismatch_names_row_and_fix(tiny_repo, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"Q{i}", "answer": "#### 1" if i != 2 else "3"}) for i in range(6)))
    _set_dataset(name_or_path=str(f), answer_format="gsm8k")
    with pytest.raises(ValueError, match=r"row 2 .*'answer'.*####.*Fix: use answer_format: auto"):
        prepare.run(load_params())
    _set_dataset(answer_format="boxed")
    with pytest.raises(ValueError, match=r"row 0 .*boxed"):
        prepare.run(load_params())
    _set_dataset(answer_format="latex")
    with pytest.raises(Exception, match="answer_format"):
        prepare.run(load_params())


@pytest.mark.parametrize("content, name", [("", "d.jsonl"), ("\n\n", "d.jsonl"), ("question,answer\n", "d.csv")])
def test_empty_dataset_file_is_one_line_error(tiny_repo, capsys, content, name):
    Path(name).write_text(content)
    _set_dataset(name_or_path=name)
    assert prepare.main([]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{name!r} has no rows" in err
    assert not Path("data/prepared").exists()


def test_non_numeric_and_too_long_rows_are_dropped_and_counted(tiny_repo, caplog):
    rows = [{"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"} for i in range(30)]
    rows += [{"question": f"Name colour {i}", "answer": "blue"} for i in range(4)]  # non-numeric
    rows += [{"question": "Add " + "1 " * 400 + f"then {i}", "answer": str(i)} for i in range(3)]  # too long
    Path("d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    _set_dataset(name_or_path="d.jsonl")
    with caplog.at_level("WARNING", logger="moalign.prepare"):
        metrics = prepare.run(load_params())
    assert metrics["dropped_non_numeric"] == 4 and metrics["dropped_too_long"] == 3
    saved = json.loads(Path("metrics/prepare.json").read_text())
    assert saved["dropped_non_numeric"] == 4 and saved["dropped_too_long"] == 3
    assert saved["rows_train"] + saved["rows_val"] + saved["rows_test"] == 30
    assert "not a number" in caplog.text and "max_length" in caplog.text
    kept = [q for s in ("train", "val", "test") for q in datasets.load_from_disk(f"data/prepared/{s}")["question"]]
    assert not any(q.startswith(("Name", "Add ")) for q in kept)
