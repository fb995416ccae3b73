"""Load a user dataset (Hugging Face hub name or local json/jsonl/csv/parquet) with a column mapping.

The same loader serves hub names on a networked box and local files in the tests:
``datasets.load_dataset`` receives either the name or the file-format builder.

Answers (``prepare.dataset.answer_format``): ``gsm8k`` cells are ``"<worked solution> ####
<answer>"``, ``boxed`` cells (MATH-style) carry the answer in the last ``\\boxed{...}``,
``plain`` cells are the answer itself; ``auto`` picks per row. The gsm8k rule follows the
GSM8K release (answer after ``####``, thousands commas removed); we also strip the
``<<48/2=24>>`` calculator notes from the worked part, which becomes the SFT solution,
since the policy should not learn to emit them. Departure from the previous loader: a plain
answer is kept as written (it fell back to the cell's last number, which silently turned
"about 5 to 7" into "7"); a cell without its format's marker is an error naming the row.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import datasets

from moalign.errors import StageError
from moalign.grading import extract_answer

AnswerFormat = Literal["auto", "plain", "gsm8k", "boxed"]
ANSWER_FORMATS: tuple[str, ...] = ("auto", "plain", "gsm8k", "boxed")
CALC_RE = re.compile(r"<<[^<>]*>>")
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


def parse_answer(raw: str, fmt: AnswerFormat = "auto") -> tuple[str, str]:
    """(reference answer, worked solution) from one answer cell in format ``fmt``.

    gsm8k: the answer follows the last ``####`` (commas dropped), the solution is the text
    before it without the ``<<a*b=c>>`` calculator notes; boxed: the answer is the last
    ``\\boxed{...}`` (nested braces kept), the solution the whole cell; plain: the cell is the
    answer and there is no solution; auto: gsm8k if ``####`` occurs, else boxed if
    ``\\boxed{`` does, else plain. Raises ValueError when the cell lacks its format's marker.
    """
    text = str(raw).strip()
    if fmt == "auto":
        fmt = "gsm8k" if "####" in text else "boxed" if "\\boxed{" in text else "plain"
    if fmt == "gsm8k":
        if "####" not in text:
            raise ValueError("no '####' marker")
        work, ans = text.rsplit("####", 1)
        return ans.strip().replace(",", ""), strip_calculator_notes(work).strip()
    if fmt == "boxed":
        ans = extract_answer(text)
        if ans is None:
            raise ValueError("no closed, non-empty \\boxed{...}")
        return ans, text
    return text, ""


def strip_calculator_notes(text: str) -> str:
    """GSM8K's worked solutions without the ``<<48/2=24>>`` calculator annotations."""
    return CALC_RE.sub("", text)


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



def load_rows(
    name_or_path: str,
    columns: dict[str, str | None],
    config: str | None = None,
    split: str = "train",
    default_domain: str = "default",
    answer_format: AnswerFormat = "auto",
) -> list[dict[str, str]]:
    """Rows with keys question/answer/domain/solution from a dataset and a column mapping.

    ``columns`` maps our names (question, answer, domain, solution) to the dataset's;
    domain and solution may be None. A mapped column that is missing raises an error
    listing the available columns. ``answer_format`` says how to read the answer column
    (:func:`parse_answer`); a mapped solution column replaces the parsed solution (with
    GSM8K's calculator notes stripped in the gsm8k format).
    """
    ds = _load_any(name_or_path, config, split)
    have = list(ds.column_names)
    for ours, theirs in columns.items():
        if theirs is not None and theirs not in have:
            raise KeyError(
                f"prepare.dataset.columns.{ours}: column {theirs!r} not found in {name_or_path!r}; "
                f"available columns: {have}. Fix: map {ours} to one of them."
            )
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"prepare.dataset.answer_format = {answer_format!r}; valid: {', '.join(ANSWER_FORMATS)}")
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(ds):
        try:
            answer, solution = parse_answer(r[columns["answer"]], answer_format)
        except ValueError as e:
            raise ValueError(
                f"prepare.dataset.answer_format = {answer_format!r}: row {i} of {name_or_path!r}, column "
                f"{columns['answer']!r}: {e}. Fix: use answer_format: auto (or plain), or clean that row"
            ) from e
        if columns.get("solution") and r[columns["solution"]]:
            solution = str(r[columns["solution"]])
            solution = strip_calculator_notes(solution) if answer_format == "gsm8k" else solution
        rows.append(
            {
                "question": str(r[columns["question"]]),
                "answer": answer,
                "domain": str(r[columns["domain"]]) if columns.get("domain") else default_domain,
                "solution": str(solution or ""),
            }
        )
    return rows
