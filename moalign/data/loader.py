"""Load a user dataset (Hugging Face hub name or local json/jsonl/csv/parquet) with a column mapping.

The same loader serves hub names on a networked box and local files in the tests:
``datasets.load_dataset`` receives either the name or the file-format builder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from moalign.errors import StageError
from moalign.text import NUMBER_RE, extract_answer

_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def _load_any(name_or_path: str, config: str | None, split: str) -> datasets.Dataset:
    p = Path(name_or_path)
    if p.suffix in _FORMATS:
        if not p.exists():
            raise FileNotFoundError(
                f"prepare.dataset.name_or_path: file {str(p)!r} does not exist. "
                "Fix: give an existing json/jsonl/csv/parquet file or a Hugging Face dataset name."
            )
        return _read_file(p)
    if p.is_dir():
        try:
            return datasets.load_from_disk(str(p))[split] if (p / "dataset_dict.json").exists() else datasets.load_from_disk(str(p))
        except FileNotFoundError:
            return datasets.load_dataset(str(p), config, split=split)
    if name_or_path.startswith((".", "/")) or p.suffix:
        raise FileNotFoundError(
            f"prepare.dataset.name_or_path: {name_or_path!r} does not exist. "
            "Fix: give an existing json/jsonl/csv/parquet file, a saved dataset folder, "
            "or a Hugging Face dataset name."
        )
    return datasets.load_dataset(name_or_path, config, split=split)


def _empty_error(p: Path) -> StageError:
    return StageError(f"prepare.dataset.name_or_path: dataset file {str(p)!r} has no rows. "
                      "Fix: point it to a file with data (one JSON object per line for .jsonl)")


def _check_not_empty(p: Path) -> None:
    """An empty (or whitespace-only) file is a clear error, not a StopIteration from ``datasets``."""
    size = p.stat().st_size
    if size == 0 or (size < 2**20 and p.suffix in (".json", ".jsonl", ".csv") and not p.read_bytes().strip()):
        raise _empty_error(p)


def _read_file(p: Path) -> datasets.Dataset:
    """Load a local data file; empty files, zero rows (a CSV with only its header) and
    unparsable files are one-line errors naming the file."""
    _check_not_empty(p)
    try:
        ds = datasets.load_dataset(_FORMATS[p.suffix], data_files=str(p), split="train")
    except StopIteration:
        raise _empty_error(p) from None
    except ValueError as e:
        if "corresponds to no data" in str(e):
            raise _empty_error(p) from None
        raise
    except datasets.exceptions.DatasetGenerationError as e:
        cause = e.__cause__ or e
        raise StageError(f"prepare.dataset.name_or_path: {str(p)!r} could not be parsed as {p.suffix[1:]} "
                         f"({type(cause).__name__}: {str(cause)[:200]}). Fix: repair the file") from e
    if len(ds) == 0:
        raise _empty_error(p)
    return ds


def _final_answer(text: str) -> str:
    """Reference answer from a free-form answer column (GSM8K's '#### 42', a boxed answer, a number)."""
    text = str(text)
    if "####" in text:
        return text.split("####")[-1].strip().replace(",", "")
    boxed = extract_answer(text)
    if boxed is not None:
        return boxed
    nums = NUMBER_RE.findall(text.replace(",", ""))
    return nums[-1] if nums else text.strip()


def load_rows(
    name_or_path: str,
    columns: dict[str, str | None],
    config: str | None = None,
    split: str = "train",
    default_domain: str = "default",
) -> list[dict[str, str]]:
    """Rows with keys question/answer/domain/solution from a dataset and a column mapping.

    ``columns`` maps our names (question, answer, domain, solution) to the dataset's;
    domain and solution may be None. A mapped column that is missing raises an error
    listing the available columns.
    """
    ds = _load_any(name_or_path, config, split)
    have = list(ds.column_names)
    for ours, theirs in columns.items():
        if theirs is not None and theirs not in have:
            raise KeyError(
                f"prepare.dataset.columns.{ours}: column {theirs!r} not found in {name_or_path!r}; "
                f"available columns: {have}. Fix: map {ours} to one of them."
            )
    rows: list[dict[str, Any]] = []
    for r in ds:
        raw_answer = str(r[columns["answer"]])
        solution = r[columns["solution"]] if columns.get("solution") else ""
        if not solution and "####" in raw_answer:
            solution = raw_answer.split("####")[0].strip()
        rows.append(
            {
                "question": str(r[columns["question"]]),
                "answer": _final_answer(raw_answer),
                "domain": str(r[columns["domain"]]) if columns.get("domain") else default_domain,
                "solution": str(solution or ""),
            }
        )
    return rows
