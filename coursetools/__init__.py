"""Teaching tools for the course: the student edition, lecture slides and the static site.

Each is one command of the ``course`` script, which calls ``python -m coursetools``:

    ./course student   every lesson without its solution cells            -> build/student/   (student.py)
    ./course slides    every lesson executed, as reveal.js slides         -> build/slides/    (slides.py)
    ./course site      every lesson executed, as a Sphinx + MyST-NB site  -> build/site/      (site.py)

Slides and site open with no internet: reveal.js and MathJax are pinned, checksummed npm tarballs (assets.py)
copied next to the HTML, widgets are replaced by a static snapshot of their last state (static_widgets.py), and
both builders refuse to finish if the HTML they wrote still loads a script or style sheet from a URL. Lessons are
executed once (execute.py) and the executed copies are shared by slides and site.
"""
from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
BUILD_DIR = ROOT / "build"


def lesson_paths(folder: pathlib.Path = NOTEBOOK_DIR) -> list[pathlib.Path]:
    """The lessons in order: ``notebooks/NN_*.ipynb``."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
