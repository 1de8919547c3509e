"""Sphinx configuration of the ionofield documentation.

Build it with ``make docs`` (warnings are errors): the HTML lands in
``docs/_build/html``.
"""

from __future__ import annotations

import datetime

import sphinx_autosummary_accessors

import ionofield

project = "ionofield"
author = "ionofield developers"
copyright = f"{datetime.date.today().year}, {author}"
version = release = ionofield.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_autosummary_accessors",
]

templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]
exclude_patterns = ["_build"]
root_doc = "index"

# -- autodoc / autosummary ---------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
autodoc_default_options = {"member-order": "bysource"}

# -- numpydoc ----------------------------------------------------------------------
# Class members are listed by the class template (autodoc :members:), not by
# numpydoc's member tables, which would point at pages that do not exist.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- HTML --------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"ionofield {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
