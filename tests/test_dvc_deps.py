"""dvc.yaml's code deps are complete: every project module a stage's entry point imports is a dep of that stage.

The import closure of ``stages/<name>.py`` is read from the source (``ast``: every ``import`` and
``from ... import``, at module level or inside functions, since a lazy import is code the stage
runs), followed transitively through the project's packages (``moalign``, ``stages``), with each
package's ``__init__.py`` on the way. A dep covers a file when it names the file or a folder
above it. ``python -m tests.test_dvc_deps`` prints each stage's closure; ``--write`` rewrites dvc.yaml's code
deps from it (a package folder where the stage imports every file in it).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("moalign", "stages")


def _module_file(name: str) -> Path | None:
    """The project file of a dotted module name (a package resolves to its __init__.py), else None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def _imports(path: Path) -> set[str]:
    """Dotted names imported by ``path`` (``from a import b`` yields a and a.b: b may be a submodule), and
    string constants that name a project module (a registry's ``lazy={...}`` implementations)."""
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        pkg = pkg.rsplit(".", 1)[0] + "._"  # relative imports of a package resolve against the package itself
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _module_file(node.value):
            out.add(node.value)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                mod = ".".join(pkg.split(".")[: -node.level] + ([mod] if mod else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def closure(entry: Path) -> set[Path]:
    """Every project file ``entry`` imports, transitively, with the __init__.py of each package passed through."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in _imports(f):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
                p = _module_file(".".join(parts[:i]))
                if p is not None and p not in seen:
                    todo.append(p)
    return seen


def stage_deps() -> dict[str, list[str]]:
    """dvc.yaml's deps per stage (a foreach stage under its own name)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: (s.get("do") or s)["deps"] for name, s in stages.items()}


def missing(stage: str, deps: list[str]) -> list[str]:
    covered = [ROOT / d for d in deps]
    files = closure(ROOT / "stages" / f"{stage}.py")
    return sorted(str(f.relative_to(ROOT)) for f in files
                  if not any(f == c or c in f.parents for c in covered))


@pytest.mark.parametrize("stage", sorted(stage_deps()))
def test_every_imported_module_is_a_dep(stage):
    gaps = missing(stage, stage_deps()[stage])
    assert not gaps, f"dvc.yaml stage {stage!r} runs {gaps} but does not list them in deps (python -m tests.test_dvc_deps)"


def test_closure_follows_lazy_and_relative_imports():
    files = {str(p.relative_to(ROOT)) for p in closure(ROOT / "stages/train.py")}
    assert {"moalign/fastgen.py", "moalign/text.py", "moalign/__init__.py", "stages/_edge.py"} <= files
    assert "moalign/rubric/reward.py" in files  # imported inside a function (the rubric objective)


def test_a_missing_dep_is_named():
    deps = [d for d in stage_deps()["sft"] if d != "moalign"] + ["moalign/sft.py", "moalign/generation.py"]
    gaps = missing("sft", deps)  # dvc.yaml's sft deps before this test existed
    assert "moalign/text.py" in gaps and "moalign/fastgen.py" in gaps and "moalign/sft.py" not in gaps


@pytest.mark.slow
def test_touching_a_module_makes_dvc_status_name_its_stages(tiny_pipeline):
    """After a repro, an edit of moalign/fastgen.py makes `dvc status` report every train@* stage."""
    repo, _ = tiny_pipeline
    f = repo / "moalign/fastgen.py"
    text = f.read_text()
    try:
        f.write_text(text + "\n# touched\n")
        out = subprocess.run(["dvc", "status"], cwd=repo, capture_output=True, text=True).stdout
    finally:
        f.write_text(text)
    strategies = yaml.safe_load((repo / "params.yaml").read_text())["train"]["strategies"]
    for s in strategies:
        assert f"train@{s}:" in out, out


def compressed(files: set[Path]) -> list[str]:
    """``files`` as dvc.yaml deps: a package folder when every .py file under it is in ``files``, else the files."""
    def whole(d: Path) -> bool:
        return all(f in files for f in d.rglob("*.py") if "__pycache__" not in f.parts)

    out: set[str] = set()
    for f in files:
        top = f.parent
        while top.parent != ROOT and whole(top.parent):  # the highest folder below the package root wholly used
            top = top.parent
        out.add(str(top.relative_to(ROOT)) if top.parent != ROOT and whole(top) else str(f.relative_to(ROOT)))
    return sorted(out)


def write() -> None:
    """Rewrite the code deps (project .py files and folders) of every stage in dvc.yaml from the closure."""
    from ruamel.yaml import YAML

    y = YAML()
    y.width = 120
    doc = y.load((ROOT / "dvc.yaml").read_text())
    for name, st in doc["stages"].items():
        st = st.get("do") or st
        data = [d for d in st["deps"] if str(d).split("/")[0] not in PACKAGES]
        st["deps"] = compressed(closure(ROOT / "stages" / f"{name}.py")) + data
    with open(ROOT / "dvc.yaml", "w") as fh:
        y.dump(doc, fh)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    for st in sorted(stage_deps()):
        print(f"{st}: {compressed(closure(ROOT / 'stages' / f'{st}.py'))}; missing from dvc.yaml: "
              f"{missing(st, stage_deps()[st]) or 'none'}")


def test_train_stages_depend_on_every_train_key_but_the_strategy_list():
    """train@<s> lists every key of params.yaml's train section except ``strategies`` (so adding a strategy does not
    retrain the others), and params.yaml writes out every TrainConfig field (nothing hides behind a default)."""
    from moalign.rl.config import TrainConfig

    train = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    listed = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["do"]["params"]
    assert listed == ["base", *[f"train.{k}" for k in train if k != "strategies"]]
    assert set(train) == set(TrainConfig.model_fields)
