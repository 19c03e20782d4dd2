"""The teaching tools: the student edition (generated, executed, exercises unanswered), slides and site that load
nothing from the network, and the offline check itself. The browser-side view of the exports is in
tests/browser/test_offline_exports.py."""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from html.parser import HTMLParser

import nbformat
import pytest

from coursetools import ROOT, lesson_paths
from coursetools.assets import check_offline, remote_loads
from coursetools.student import EXERCISE_TAG, SOLUTION_TAG, is_solution, student_edition, write_student_edition

LESSONS = lesson_paths()
NOT_ANSWERED = "not answered yet"


# ---- the student edition -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_student_edition_drops_exactly_the_solution_cells(path):
    nb = nbformat.read(path, as_version=4)
    solutions = [c for c in nb.cells if is_solution(c)]
    assert solutions, f"{path.name} has no cell tagged '{SOLUTION_TAG}'"
    student = student_edition(nb)
    assert not any(is_solution(c) for c in student.cells)
    kept = [c.source for c in student.cells]
    assert not any(s.source in kept for s in solutions)
    assert len(student.cells) == len(nb.cells) - len(solutions) + 1  # + the edition note
    exercises = [c for c in student.cells if EXERCISE_TAG in c.metadata.get("tags", [])]
    assert len(exercises) == len(solutions), "each solution answers the code cell just before it"
    nbformat.validate(student)
    assert sum(is_solution(c) for c in nb.cells) == len(solutions)  # the lesson itself is left as it was


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("student")


def test_course_student_command_writes_every_lesson(student_dir):
    r = subprocess.run([sys.executable, "-m", "coursetools", "student", "--out", str(student_dir)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in student_dir.glob("*.ipynb")) == [p.name for p in LESSONS]
    assert "without solution cells" in r.stdout


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return "\n".join("".join(data[m]) for m in ("text/plain", "text/html") if m in data)


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_student_notebook_runs_and_its_exercises_say_not_answered_yet(path, tmp_path):
    """Executed top to bottom (fast mode) in a folder of its own: no cell raises, and every exercise cell, left
    as the student receives it, prints "not answered yet" instead of failing."""
    from coursetools.execute import execute

    [student_path] = write_student_edition(tmp_path / "student", [path])
    nb = nbformat.read(student_path, as_version=4)
    execute(nb, student_path.parent, fast=True, timeout=600)  # raises CellExecutionError on any error
    exercises = [c for c in nb.cells if EXERCISE_TAG in c.metadata.get("tags", [])]
    assert exercises
    for cell in exercises:
        text = "\n".join(_text(o) for o in cell.outputs).lower()
        assert NOT_ANSWERED in text, (f"{path.name}: the exercise cell\n{cell.source[:300]}\nshould print "
                                      f"'{NOT_ANSWERED}' when left unanswered; it printed:\n{text[:500]}")
        assert not any(o.get("output_type") == "error" for o in cell.outputs)


# ---- the offline check ---------------------------------------------------------------------------------------------
def test_remote_loads_finds_scripts_styles_fonts_and_images_but_not_links():
    page = """<html><head>
      <script src="https://cdn.example.org/x.js"></script><script src="local.js"></script>
      <link rel="stylesheet" href="//fonts.example.org/css"><link rel="index" href="https://example.org/i">
      <link rel="preload" href="http://example.org/font.woff2">
      <style>@import url("https://example.org/a.css"); .x { background: url(img/local.png) }</style>
      </head><body><a href="https://arxiv.org/abs/1807.03039">Glow</a><img src="data:image/png;base64,AAAA">
      <div style="background-image: url('https://example.org/b.png')"></div></body></html>"""
    assert sorted(remote_loads(page)) == sorted([
        "https://cdn.example.org/x.js", "//fonts.example.org/css", "http://example.org/font.woff2",
        "https://example.org/a.css", "https://example.org/b.png"])


class _LocalRefs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.refs.append(a["src"])
        if tag == "link" and "stylesheet" in (a.get("rel") or "") and a.get("href"):
            self.refs.append(a["href"])


def _assert_local_refs_exist(page: pathlib.Path) -> int:
    parser = _LocalRefs()
    parser.feed(page.read_text())
    for ref in parser.refs:
        target = (page.parent / ref.split("?")[0].split("#")[0]).resolve()
        assert target.is_file(), f"{page.name} loads {ref}, which is not in the build ({target})"
    return len(parser.refs)


# ---- slides --------------------------------------------------------------------------------------------------------
def test_slides_load_nothing_from_the_network(built_exports):
    slides = built_exports["slides"]
    assert check_offline(slides) == {}
    assert len(built_exports["decks"]) == len(LESSONS)
    for deck in built_exports["decks"]:
        html = deck.read_text()
        assert remote_loads(html) == [], deck.name
        assert _assert_local_refs_exist(deck) >= 4  # reveal.css, its theme, MathJax, reveal.js
        assert "assets/mathjax/es5/tex-chtml-full.js" in html and "assets/reveal.js/dist/reveal.js" in html
        assert not re.search(r"<script[^>]+src=[\"']https?:", html)
    assert (slides / "index.html").is_file()


def test_slides_show_widget_snapshots_and_skip_solutions(built_exports):
    deck = built_exports["decks"][0].read_text()
    assert deck.count("flows-widget-snapshot") >= 2  # lesson 01's two change-of-variables widgets
    assert "data:image/png;base64," in deck
    assert "application/vnd.jupyter.widget" not in deck  # no live widget left that would need a CDN
    for path, deck_path in zip(LESSONS, built_exports["decks"]):
        html = deck_path.read_text()
        assert "cell-id=" in html  # cells carry their ids, so the check below can see a solution
        for cell in nbformat.read(path, as_version=4).cells:
            # a solution is skipped unless its author gave it a slide type of its own
            if is_solution(cell) and cell.metadata.get("slideshow", {}).get("slide_type", "skip") == "skip":
                assert f"cell-id={cell.id}" not in html, f"{deck_path.name} shows the solution cell {cell.id}"


# ---- site ----------------------------------------------------------------------------------------------------------
def test_site_loads_nothing_from_the_network(built_exports):
    site = built_exports["site"]
    assert check_offline(site) == {}
    pages = [site / "index.html"] + [site / "lessons" / f"{p.stem}.html" for p in LESSONS]
    for page in pages:
        assert page.is_file(), page
        assert remote_loads(page.read_text()) == [], page.name
        _assert_local_refs_exist(page)
    lesson01 = pages[1].read_text()
    assert "_static/mathjax/es5/tex-chtml-full.js" in lesson01
    assert "flows-widget-snapshot" in lesson01 and "data:image/png;base64," in lesson01
    assert (site / "lecturer-guide.html").is_file()


def test_sphinx_project_and_guide_are_in_the_repository():
    assert (ROOT / "docs" / "site" / "conf.py").is_file()
    guide = (ROOT / "docs" / "lecturer-guide.md").read_text()
    for lesson in LESSONS:
        assert lesson.stem[:2] in guide, f"the lecturer's guide does not mention lesson {lesson.stem[:2]}"
