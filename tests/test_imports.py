"""The import graph of classify/ and spec2img/ points down the path a clip travels.

Built from the source with ``ast`` (every import statement, also those inside functions, which
run as soon as the function does; ``if TYPE_CHECKING:`` blocks excepted): no cycle, no arrow from
training or prediction into ``classify.report``, classify's folders import only the ones below
them (:data:`FORBIDDEN`), fastai imported by ``classify/training/train.py`` only.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spec2img", "classify")
# The report's only callers: the CLI's ``report`` subcommand, the fit/cv entry that writes a
# report beside a finished run (orchestration above both training and the report) and the public
# API's ``Run.report()`` (classify.run).
REPORT_CALLERS = {"classify.cli", "classify.commands", "classify.run"}
# classify's folders along the path (data -> models -> training -> run folder -> prediction /
# report / serve) and what each must not import: nothing later on the path, nor the entry points
# above everything (the CLI, the public API, the fit/cv entry, the distributed fit's launcher, the demo).
ABOVE = ("classify.cli", "classify.commands", "classify.fit_distributed", "classify.demo", "classify.api",
         "classify.run", "classify.options")
FORBIDDEN = {
    "classify.data": ("classify.models", "classify.training", "classify.runfolder", "classify.scoring",
                      "classify.prediction", "classify.report", "classify.serve", *ABOVE),
    "classify.models": ("classify.data", "classify.training", "classify.runfolder", "classify.scoring",
                        "classify.prediction", "classify.report", "classify.serve", *ABOVE),
    "classify.scoring": ("classify.data", "classify.models", "classify.training", "classify.runfolder",
                         "classify.prediction", "classify.report", "classify.serve", *ABOVE),
    "classify.runfolder": ("classify.training", "classify.prediction", "classify.report", "classify.serve",
                           *ABOVE),
    "classify.training": ("classify.prediction", "classify.report", "classify.serve", *ABOVE),
    "classify.prediction": ("classify.training", "classify.report", "classify.serve", *ABOVE),
    "classify.serve": ("classify.training", "classify.report", *ABOVE),
    "classify.report": ("classify.prediction", "classify.serve", *ABOVE),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Modules of ``modules`` that the file at ``path`` imports (absolute names)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str | None:  # longest known module prefix of a dotted name
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            targets = []
        for t in targets:
            m = resolve(t)
            if m is not None and m != name and m not in PACKAGES:
                found.add(m)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    # ``from pkg.sub import x`` also yields ``pkg.sub``'s parents; keep only the most specific
    return {m for m in found if not any(o.startswith(m + ".") for o in found)}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    modules = set(files)
    return {m: imports_of(p, modules) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_graph_is_read_correctly():
    g = import_graph()
    assert "classify.prediction.scorer" in g["classify.prediction.onnx_predict"]  # from .scorer import Scorer
    assert "classify.scoring.metrics" in g["classify.report.compute"]  # from .. import metrics
    assert "spec2img.window" in g["classify.prediction.windows"]  # absolute, multi-line import
    assert "classify.prediction.onnx_predict" in g["classify.prediction.ensemble"]  # inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_training_and_prediction_do_not_import_the_report():
    g = import_graph()
    wrong = sorted(f"{m} -> {t}" for m, ts in g.items() for t in ts
                   if t.startswith("classify.report") and not m.startswith("classify.report")
                   and m not in REPORT_CALLERS)
    assert wrong == []


def test_folders_import_only_down_the_path():
    g = import_graph()

    def under(m, prefix):
        return m == prefix or m.startswith(prefix + ".")

    wrong = sorted(f"{m} -> {t}" for m, ts in g.items() for pkg, banned in FORBIDDEN.items() if under(m, pkg)
                   for t in ts if any(under(t, b) for b in banned))
    assert wrong == []
    assert set(FORBIDDEN) <= {m.rpartition(".")[0] or m for m in g} | set(g)  # every rule names a real folder


def test_only_train_imports_fastai():
    users = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                if any(n.split(".")[0] == "fastai" for n in names):
                    users.add(module_name(path))
    assert users == {"classify.training.train"}
