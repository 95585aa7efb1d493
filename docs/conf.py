"""Sphinx configuration of the diffwalk documentation.

Build (from the repository root)::

    python -m pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html                    # runs the gallery lessons
    python -m sphinx -W -b html -D plot_gallery=0 docs docs/_build/html  # without running them (CI)
"""

import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))     # the packages, for a build without an install

from walker import package_version  # noqa: E402

project = "diffwalk"
author = "diffwalk developers"
copyright = "2026, diffwalk developers"
release = package_version()
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "diffwalk_docs",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
html_theme = "pydata_sphinx_theme"
html_title = f"diffwalk {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {page: [] for page in ("index", "getting_started", "cli", "config")}

# API reference: one page per public name, from the numpy-style docstrings
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
autodoc_typehints = "none"              # numpydoc shows the documented types; hints would repeat them
numpydoc_show_class_members = False     # attributes are documented in each class docstring
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# the gallery: lessons live in the package (diffwalk example NAME runs them), rendered here
sphinx_gallery_conf = {
    "examples_dirs": [str(HERE.parent / "diffwalk" / "gallery")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "reference_url": {"diffwalk": None},
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": True,
}
os.environ.setdefault("MPLBACKEND", "Agg")

# intersphinx: the inventories are fetched online; offline (CI machines reach only PyPI) the links fall back to
# plain text instead of failing the warning-free build, so only reachable inventories are configured
INTERSPHINX = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "dipy": "https://docs.dipy.org/stable/",
    "trimesh": "https://trimesh.org/",
    "h5py": "https://docs.h5py.org/en/stable/",
    "dask": "https://docs.dask.org/en/stable/",
    "matplotlib": "https://matplotlib.org/stable/",
}


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "objects.inv", timeout=5) as resp:
            return resp.status == 200
    except Exception:
        return False


if os.environ.get("DIFFWALK_DOCS_OFFLINE"):
    _ok = [False] * len(INTERSPHINX)
else:
    with ThreadPoolExecutor(len(INTERSPHINX)) as pool:
        _ok = list(pool.map(_reachable, INTERSPHINX.values()))
intersphinx_mapping = {name: (url, None) for (name, url), ok in zip(INTERSPHINX.items(), _ok) if ok}
if len(intersphinx_mapping) < len(INTERSPHINX):
    print("diffwalk docs: intersphinx inventories not reachable, links to them stay plain text: "
          + ", ".join(n for n, ok in zip(INTERSPHINX, _ok) if not ok))
