"""The example notebooks: each runs end to end (quick settings) and matches its .py twin.

The notebooks run in a kernel of this very Python (a kernelspec written to a temporary
folder, so no kernel installed on the machine is used), with
``IONOFIELD_EXAMPLE_QUICK=1``, the samples named by ``IONOFIELD_SAMPLES``, the IRI
cache in a temporary folder shared by the three, and a temporary working directory
for what they write.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMES = ["01_quickstart", "02_storm_study", "03_bring_your_own_data"]
KERNEL = "ionofield-examples"
#: Seconds one cell may run (a quick-mode fit takes a few seconds to a minute).
CELL_TIMEOUT_S = 600


def cells(notebook) -> list[tuple[str, str]]:
    """(cell type, source) of each cell, trailing blank lines ignored."""
    return [(cell.cell_type, cell.source.rstrip("\n")) for cell in notebook.cells]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_matches_its_script(name):
    script = jupytext.read(EXAMPLES / f"{name}.py")
    notebook = jupytext.read(EXAMPLES / f"{name}.ipynb")
    assert cells(notebook) == cells(script), (
        f"examples/{name}.ipynb is out of date: run "
        f"`jupytext --to ipynb examples/{name}.py`"
    )
    assert all(not cell.get("outputs") for cell in notebook.cells), (
        f"examples/{name}.ipynb holds outputs: regenerate it from its .py twin"
    )


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory):
    """A KernelSpecManager that knows one kernel: this Python (the project's venv)."""
    from jupyter_client.kernelspec import KernelSpecManager

    folder = tmp_path_factory.mktemp("kernels")
    (folder / KERNEL).mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"ionofield tests ({sys.executable})",
        "language": "python",
    }
    (folder / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(folder)])


@pytest.fixture(scope="module")
def iri_cache(tmp_path_factory):
    """One IRI cache for the three notebooks (they share background cubes)."""
    return tmp_path_factory.mktemp("iri-cache")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, kernel_specs, iri_cache, tmp_path, monkeypatch):
    from jupyter_client.manager import KernelManager

    monkeypatch.setenv("IONOFIELD_EXAMPLE_QUICK", "1")
    monkeypatch.setenv("IONOFIELD_CACHE", str(iri_cache))
    monkeypatch.setenv("IONOFIELD_SAMPLES", str(ROOT / "data_samples"))
    notebook = jupytext.read(EXAMPLES / f"{name}.ipynb")
    manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = nbclient.NotebookClient(
        notebook, km=manager, timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
