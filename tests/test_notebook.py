"""examples/quickstart.ipynb runs top to bottom (nbclient, a fresh kernel, a temporary working
folder) and shows what it promises: the conversion line, a validation accuracy, the report in an
iframe and a prediction table labelling most new clips right."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(data.get("text/plain", "") + data.get("text/html", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_quickstart_notebook_runs_and_shows_its_results(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    nb = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on a failing cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    text = "\n".join(_text(c) for c in code)
    assert "48 clips converted into 48 images, 0 failed" in text
    acc = float(re.search(r"validation accuracy: ([0-9.]+)", text).group(1))
    assert acc >= 0.5, text  # six classes: chance is 0.17
    assert "head-only: True" in text
    assert '<iframe' in text and "runs/quickstart/report/index.html" in text
    assert (tmp_path / "runs" / "quickstart" / "report" / "index.html").is_file()
    right, total = map(int, re.search(r"(\d+) of (\d+) new clips labelled right", text).groups())
    assert total == 12 and right >= 6, text
