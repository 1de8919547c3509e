"""The import graph of the package points one way (docs/architecture.rst).

Every module belongs to one layer; a module imports only from its own layer or those
below it, never in a cycle, and ``import ionofield`` loads neither matplotlib nor the
synthetic world.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ionofield"

#: Layers from the ground up; a module may import from its layer and those before it.
LAYERS = {
    "ground": ["_version", "_files", "errors", "timeutil", "sphere", "diagnostics"],
    "io": ["io", "io.cf", "io.ionex", "io.ro", "io.indices", "io.netcdf",
           "io.zarr", "io.ionosonde"],
    "data model": ["align", "campaign", "config", "iri", "background", "features", "drivers",
                   "observations", "magnetic", "ro_errors"],
    "nn": ["nn", "nn.siren", "nn.losses", "nn.recurrent", "nn.model"],
    "model": ["_device", "_distributed", "_threads", "checkpoint", "model", "prediction",
              "tec_cache"],
    "jobs": ["sampling", "calibration", "training", "reconstruction", "validation"],
    "faces": ["accessor", "plot", "cli", "__main__", ""],
    "osse": ["osse", "osse.world", "osse.sampling", "osse.samples", "osse.__main__"],
}
LEVEL = {module: level for level, names in enumerate(LAYERS.values()) for module in names}
#: Layers that may not import torch, and layers that may not import xarray.
NO_TORCH = {"ground", "io"}
NO_XARRAY = {"nn"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name.removesuffix("__init__").rstrip(".")] = path
    return found


def imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """The ionofield modules and the outside packages a module imports."""
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != "ionofield":
                outside.add(target.split(".")[0])
                continue
            parts = target.split(".")[1:]
            for k in range(len(parts), -1, -1):
                candidate = ".".join(parts[:k])
                if candidate in LEVEL:
                    if candidate != name:
                        inside.add(candidate)
                    break
    return inside, outside


def test_every_module_has_a_layer():
    assert sorted(set(modules()) - set(LEVEL)) == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_point_down(name):
    inside, outside = imports(name, modules()[name])
    layer = list(LAYERS)[LEVEL[name]]
    if name != "":  # the package face re-exports the layers below it
        upward = sorted(d for d in inside if LEVEL[d] > LEVEL[name])
        assert upward == [], f"ionofield.{name} ({layer}) imports from higher layers"
    if layer in NO_TORCH:
        assert "torch" not in outside
    if layer in NO_XARRAY:
        assert "xarray" not in outside


def test_no_import_cycle():
    graph = {name: imports(name, path)[0] for name, path in modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, "cycle: " + " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_import_ionofield_stays_light():
    code = ("import sys, ionofield; print(sorted(m for m in sys.modules if m == 'matplotlib' "
            "or m.startswith(('ionofield.osse', 'ionofield.plot'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
