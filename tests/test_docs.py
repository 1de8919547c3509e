"""The API reference (docs/api.rst) lists every public function, class and accessor member.

Building the documentation needs Sphinx (``make docs``); this test only reads the
reStructuredText, so a public object added without a line in the reference fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import ionofield
from ionofield.accessor import RSTMRFAccessor

API = Path(__file__).resolve().parents[1] / "docs" / "api.rst"
ENTRY = re.compile(r"^   ([A-Za-z_][\w.]*)\s*$")


def documented_names() -> set[str]:
    """Full dotted names of the autosummary entries of api.rst."""
    module, names = "", set()
    for line in API.read_text().splitlines():
        if line.startswith((".. currentmodule::", ".. module::")):
            module = line.split("::", 1)[1].strip()
        elif match := ENTRY.match(line):
            names.add(f"{module}.{match.group(1)}")
    return names


def resolve(name: str) -> object:
    """The object a dotted name refers to, found as Sphinx finds it.

    Attributes from the top-level package first (``ionofield.reconstruct`` is the
    function), else the longest importable module and attributes from there
    (``ionofield.prediction.predict_residual`` lives in the module of that name).
    """
    parts = name.split(".")
    obj = importlib.import_module(parts[0])
    try:
        for part in parts[1:]:
            obj = getattr(obj, part)
        return obj
    except AttributeError:
        pass
    for k in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for part in parts[k:]:
            obj = getattr(obj, part)
        return obj
    raise ModuleNotFoundError(name)


def public_objects() -> dict[str, object]:
    """Public functions and classes defined in each public module of ionofield."""
    found = {}
    for info in pkgutil.walk_packages(ionofield.__path__, "ionofield."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if obj.__module__ != info.name or (exported is not None and attr not in exported):
                continue
            found[f"{info.name}.{attr}"] = obj
    return found


def test_every_public_object_is_in_the_api_reference():
    ionofield_entries = {n for n in documented_names() if n.startswith("ionofield.")}
    documented = {id(resolve(name)) for name in ionofield_entries}
    missing = sorted(name for name, obj in public_objects().items() if id(obj) not in documented)
    assert not missing, f"add these to docs/api.rst: {missing}"


def test_every_top_level_export_is_in_the_api_reference():
    entries = documented_names()
    missing = [
        name for name in ionofield.__all__
        if name != "__version__" and not inspect.ismodule(getattr(ionofield, name))
        and f"ionofield.{name}" not in entries
    ]
    assert not missing, f"add these to the top-level sections of docs/api.rst: {missing}"


@pytest.mark.parametrize(
    "member", [m for m in vars(RSTMRFAccessor) if not m.startswith("_")]
)
def test_every_accessor_member_is_in_the_api_reference(member):
    assert f"xarray.Dataset.rstmrf.{member}" in documented_names()


def test_every_entry_resolves():
    for name in documented_names():
        if name.startswith("xarray.Dataset.rstmrf."):
            assert hasattr(RSTMRFAccessor, name.rsplit(".", 1)[1]), name
        else:
            resolve(name)
