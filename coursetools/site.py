"""The static course site: Sphinx + MyST-NB with the furo theme, offline at build time and when read.

The Sphinx project lives in docs/site/ (conf.py, index.md). The builder stages it in build/site-src/ with the
(executed) lessons under lessons/, widgets turned into static snapshots, solution cells collapsed (MyST-NB's
``hide-input`` tag), the lecturer's guide, and MathJax under _static/; then it runs Sphinx and checks that no page
loads a script or style sheet from the network.
"""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import nbformat

from . import BUILD_DIR, ROOT
from .assets import assert_offline, ensure_assets
from .static_widgets import snapshot_widgets
from .student import is_solution

SPHINX_PROJECT = ROOT / "docs" / "site"
LECTURER_GUIDE = ROOT / "docs" / "lecturer-guide.md"


def site_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as the site shows it: widgets as snapshots, solutions collapsed."""
    snapshot_widgets(nb)
    for cell in nb.cells:
        if is_solution(cell):
            tags = cell.metadata.setdefault("tags", [])
            if "hide-input" not in tags:
                tags.append("hide-input")
    return nb


def stage(notebooks: list[pathlib.Path], src: pathlib.Path) -> pathlib.Path:
    """Write the Sphinx source folder ``src`` (emptied first)."""
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(SPHINX_PROJECT, src, ignore=shutil.ignore_patterns("_build", "__pycache__"))
    (src / "lessons").mkdir()
    for path in notebooks:
        nb = site_notebook(nbformat.read(path, as_version=4))
        nbformat.write(nb, src / "lessons" / path.name)
    if LECTURER_GUIDE.exists():
        shutil.copy(LECTURER_GUIDE, src / "lecturer-guide.md")
    mathjax = ensure_assets(quiet=True) / "mathjax"
    shutil.copytree(mathjax, src / "_static" / "mathjax", dirs_exist_ok=True)
    return src


def build_site(notebooks: list[pathlib.Path], out: pathlib.Path, src: pathlib.Path | None = None,
               log=print) -> pathlib.Path:
    """Build the site into ``out`` from ``notebooks`` (executed or not); returns the path of its index.html."""
    out = pathlib.Path(out)
    src = pathlib.Path(src) if src else BUILD_DIR / "site-src"
    stage(notebooks, src)
    if out.exists():
        shutil.rmtree(out)
    log(f"running Sphinx on {len(notebooks)} lesson(s)")
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-d", str(src / "_doctrees"), str(src),
           str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    warnings = [line for line in r.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    for line in warnings[:20]:
        log(f"  sphinx: {line.replace(str(src) + '/', '')}")
    if r.returncode != 0:
        raise RuntimeError(f"Sphinx failed ({' '.join(cmd)}):\n{r.stderr[-4000:]}")
    assert_offline(out)
    return out / "index.html"
