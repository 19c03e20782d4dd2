"""Lecture slides: every lesson as a reveal.js deck that opens from disk with no internet.

The lessons' cells carry ``slideshow.slide_type`` metadata (slide, subslide, fragment, skip, -); nbconvert's
SlidesExporter turns that into reveal.js sections. Our template (templates/flows_reveal) loads reveal.js and MathJax
from ``assets/`` next to the decks instead of a CDN. A solution cell with no slide type of its own is skipped (it is
collapsed in JupyterLab too); give it a slide type to show it in the lecture.
"""
from __future__ import annotations

import copy
import html
import pathlib
import shutil

import nbformat

from .assets import assert_offline, copy_assets
from .static_widgets import snapshot_widgets
from .student import is_solution

TEMPLATES = pathlib.Path(__file__).resolve().parent / "templates"
ASSETS = "assets"


def lecture_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as it is presented: widgets as snapshots, unmarked solution cells skipped."""
    nb = copy.deepcopy(nb)
    snapshot_widgets(nb)
    for cell in nb.cells:
        if is_solution(cell):
            cell.metadata.setdefault("slideshow", {}).setdefault("slide_type", "skip")
    return nb


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def export_slides(notebooks: list[pathlib.Path], out: pathlib.Path) -> list[pathlib.Path]:
    """Write ``<out>/<lesson>.slides.html`` for each notebook, ``<out>/index.html`` and ``<out>/assets/``."""
    from nbconvert import SlidesExporter

    out = pathlib.Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    copy_assets(out / ASSETS)
    exporter = SlidesExporter(template_name="flows_reveal", extra_template_basedirs=[str(TEMPLATES)],
                              reveal_url_prefix=f"{ASSETS}/reveal.js", reveal_theme="white",
                              reveal_transition="none", reveal_width="1100", reveal_height="780",
                              exclude_input_prompt=True, exclude_output_prompt=True)
    decks = []
    for path in notebooks:
        nb = lecture_notebook(nbformat.read(path, as_version=4))
        body, _ = exporter.from_notebook_node(nb, resources={"flows_assets": ASSETS,
                                                             "metadata": {"name": title_of(nb, path.stem)}})
        target = out / f"{path.stem}.slides.html"
        target.write_text(body, encoding="utf-8")
        decks.append((target, title_of(nb, path.stem)))
    items = "\n".join(f"<li><a href='{t.name}'>{html.escape(title)}</a></li>" for t, title in decks)
    (out / "index.html").write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Flows from Scratch — slides</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.5}</style></head><body>"
        f"<h1>Flows from Scratch — slides</h1><ol>{items}</ol>"
        "<p>Keys: space or arrows to move, <kbd>S</kbd> speaker notes, <kbd>F</kbd> full screen, "
        "<kbd>Esc</kbd> overview. Everything loads from this folder: no internet needed.</p></body></html>",
        encoding="utf-8")
    assert_offline(out)
    return [t for t, _ in decks]
