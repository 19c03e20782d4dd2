"""Lecture slides: every lesson as a reveal.js deck that opens from disk with no internet.

The lessons' cells carry ``slideshow.slide_type`` metadata (slide, subslide, fragment, skip, -); nbconvert's
SlidesExporter turns that into reveal.js sections. Our template (templates/flows_reveal) loads reveal.js and MathJax
from ``assets/`` next to the decks instead of a CDN. A solution cell with no slide type of its own is skipped (it is
collapsed in JupyterLab too); give it a slide type to show it in the lecture.

Slides are 1280x720 (16:9). What fits, by the cells' tags: ``slide-output-only`` shows a cell's figure without its
code (the default for a figure cell longer than LONG_CODE_LINES lines; ``slide-show-code`` keeps such code), and
the template shrinks the figures of a slide that would still be too tall (down to 45% of their size, never the
text). What still does not fit must be split (a ``subslide``) or shortened: tests/browser/test_slides_fit.py opens every deck at
1280x720 and 1920x1080 and fails on any slide whose content overflows.
"""
from __future__ import annotations

import copy
import html
import pathlib
import shutil

import nbformat

from .assets import assert_offline, copy_assets
from .execute import FAST_BANNER, is_fast
from .static_widgets import snapshot_widgets
from .student import is_solution

TEMPLATES = pathlib.Path(__file__).resolve().parent / "templates"
ASSETS = "assets"


OUTPUT_ONLY_TAG = "slide-output-only"  # the slide shows the cell's outputs (its figure), not its code
SHOW_CODE_TAG = "slide-show-code"  # the slide shows the code even of a long figure cell
LONG_CODE_LINES = 8  # a figure cell with more lines than this shows only its figure, unless tagged slide-show-code


def has_figure(cell) -> bool:
    """True if a code cell's outputs hold a picture (a PNG/SVG, or a widget snapshot with its figure)."""
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if "image/png" in data or "image/svg+xml" in data or "flows-widget-snapshot" in "".join(
                data.get("text/html", "")):
            return True
    return False


def shows_output_only(cell) -> bool:
    """Whether a slide shows this code cell's outputs without its code: tagged ``slide-output-only``, or a figure
    cell of more than LONG_CODE_LINES lines that is not tagged ``slide-show-code``."""
    if cell.cell_type != "code":
        return False
    tags = cell.metadata.get("tags", [])
    if OUTPUT_ONLY_TAG in tags:
        return True
    return (SHOW_CODE_TAG not in tags and has_figure(cell)
            and len(cell.source.strip().splitlines()) > LONG_CODE_LINES)


def _is_progress_or_stderr(output) -> bool:
    if output.get("output_type") == "stream":
        return output.get("name") == "stderr"
    html = "".join(output.get("data", {}).get("text/html", ""))
    return "flows-widget-output" in html and "<progress" in html  # a finished progress bar's snapshot


def lecture_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as it is presented: widgets as snapshots, unmarked solution cells skipped, long figure cells
    as their figure only (``shows_output_only``)."""
    nb = copy.deepcopy(nb)
    snapshot_widgets(nb)
    for cell in nb.cells:
        if is_solution(cell):
            cell.metadata.setdefault("slideshow", {}).setdefault("slide_type", "skip")
        if cell.cell_type == "code":  # progress bars and warnings belong in a live session, not on a slide
            cell.outputs = [o for o in cell.outputs if not _is_progress_or_stderr(o)]
        if shows_output_only(cell):
            cell.metadata.setdefault("transient", {})["remove_source"] = True  # nbconvert leaves the input out
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
                              reveal_transition="none", reveal_width="1280", reveal_height="720",
                              exclude_input_prompt=True, exclude_output_prompt=True)
    decks = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        banner = FAST_BANNER if is_fast(nb) else ""
        nb = lecture_notebook(nb)
        body, _ = exporter.from_notebook_node(nb, resources={"flows_assets": ASSETS, "flows_banner": banner,
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
