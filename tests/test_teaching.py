"""The teaching tools: the student edition (generated; it is the lesson without its solution cells, and a solution
runs in a copy of the namespace, so tests/test_lessons.py's run of each lesson is also the run of its student edition,
with each exercise checked to say "not answered yet"), slides and site that load nothing from the network, and the
offline check itself. The browser-side view of the exports is in
tests/browser/test_offline_exports.py."""
from __future__ import annotations

import base64
import pathlib
import re
import subprocess
import sys
from html.parser import HTMLParser

import nbformat
import pytest

from coursetools import ROOT, lesson_paths
from coursetools.assets import check_offline, remote_loads
from coursetools.static_widgets import NOTE, WIDGET_STATE, WIDGET_VIEW, snapshot_widgets
from coursetools.student import EXERCISE_TAG, SOLUTION_TAG, is_solution, student_edition

from .test_lessons import exercise_pairs, solution_names

LESSONS = lesson_paths()


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
    snapshots = re.findall(r"<div class=[\"']flows-widget-snapshot[\"'].*?" + re.escape(NOTE), deck, re.S)
    assert len(snapshots) >= 2 and all(re.search(r"<img[^>]*src=[\"']data:image/png;base64,", s) for s in snapshots), \
        "a widget's snapshot lost its picture"
    assert "application/vnd.jupyter.widget" not in deck  # no live widget left that would need a CDN
    for path, deck_path in zip(LESSONS, built_exports["decks"]):
        html = deck_path.read_text()
        assert "cell-id=" in html  # cells carry their ids, so the check below can see a solution
        for cell in nbformat.read(path, as_version=4).cells:
            # a solution is skipped unless its author gave it a slide type of its own
            if is_solution(cell) and cell.metadata.get("slideshow", {}).get("slide_type", "skip") == "skip":
                assert f"cell-id={cell.id}" not in html, f"{deck_path.name} shows the solution cell {cell.id}"


def test_a_widget_snapshot_draws_the_image_widgets_picture_from_its_stored_buffer():
    png = base64.b64encode(b"\x89PNG fake").decode()
    state = {"box": {"model_name": "VBoxModel", "state": {"_model_name": "VBoxModel",
                                                           "children": ["IPY_MODEL_s", "IPY_MODEL_img"]}},
             "s": {"model_name": "FloatSliderModel", "state": {"_model_name": "FloatSliderModel", "value": 0.5,
                                                               "min": 0, "max": 1, "description": "a"}},
             "img": {"model_name": "ImageModel", "state": {"_model_name": "ImageModel", "format": "png",
                                                           "value": None},
                     "buffers": [{"data": png, "encoding": "base64", "path": ["value"]}]}}
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": state}}
    nb.cells = [nbformat.v4.new_code_cell("w", outputs=[nbformat.v4.new_output(
        "display_data", data={WIDGET_VIEW: {"model_id": "box"}, "text/plain": "VBox()"})])]
    assert snapshot_widgets(nb) == 1
    html = nb.cells[0].outputs[0]["data"]["text/html"]
    assert f"<img src='data:image/png;base64,{png}'" in html and "flows-widget-snapshot" in html
    del state["img"]["buffers"]  # an Image whose bytes were not stored draws nothing, the slider still shows
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": state}}
    nb.cells[0].outputs[0]["data"] = {WIDGET_VIEW: {"model_id": "box"}}
    snapshot_widgets(nb)
    assert "<img" not in nb.cells[0].outputs[0]["data"]["text/html"]


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


def test_guide_names_only_misconceptions_the_checkers_know():
    """Every `name` in a lecture plan's misconception paragraphs is a diagnosis its lesson's checkers can return, and
    every lesson with checkers has such a paragraph (a replaced exercise must not leave the guide naming old ones)."""
    import re

    guide = (ROOT / "docs" / "lecturer-guide.md").read_text()
    plans = dict(re.findall(r"\n### Lecture \d+ — lesson (\d\d)(.*?)(?=\n### |\n## )", guide, re.S))
    for path in sorted((ROOT / "flowlib_teaching" / "exercises").glob("lesson0*.py")):
        n = path.stem[-2:]
        assert n in plans, f"the lecturer's guide has no lecture plan for lesson {n}"
        paragraphs = [p for p in plans[n].split("\n\n") if "Misconceptions the checkers name" in p
                      or p.startswith("Misconceptions —")]
        assert paragraphs, f"the plan for lesson {n} lists no misconceptions its checkers name"
        source = path.read_text()
        named = set(re.findall(r"`([a-z][A-Za-z0-9_]*)`", "\n".join(paragraphs)))
        unknown = sorted(x for x in named if f'"{x}"' not in source)
        assert not unknown, f"lesson {n}: the guide names diagnoses its checkers never return: {unknown}"


# ---- solution cells: they neither spoil nor overwrite ---------------------------------------------------------------
@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_solution_cells_are_collapsed_behind_a_neutral_first_line(path):
    from flowlib_teaching.exercises.framework import SOLUTION_FIRST_LINE

    for exercise, solution in exercise_pairs(nbformat.read(path, as_version=4)):
        first = solution.source.splitlines()[0]
        # JupyterLab shows a collapsed cell's first line: it must be the note, not a line of the answer
        assert first == SOLUTION_FIRST_LINE, f"{path.name}: solution cell {solution.id} starts with {first!r}"
        assert solution.metadata.get("jupyter", {}).get("source_hidden") is True, solution.id
        assert solution_names(solution), f"{path.name}: solution {solution.id} defines no answer"


def test_run_solution_keeps_the_learners_names():
    from flowlib_teaching.exercises.framework import run_solution

    def mine(x):
        return "mine"

    namespace = {"answer": mine, "value": 1}
    out = run_solution("def answer(x):\n    return 'reference'\nvalue = 2\nanswer(0), value", namespace)
    assert out == ("reference", 2)  # the cell's last expression is evaluated in the copy
    assert namespace["answer"] is mine and namespace["value"] == 1
    assert run_solution("value = 3", namespace) is None and namespace["value"] == 1


# ---- executed copies per mode, and the fast-mode banner -------------------------------------------------------------
def test_fast_and_normal_copies_live_apart_and_neither_replaces_the_other(tmp_path):
    from coursetools.execute import executed_lessons, is_fast

    lesson = tmp_path / "00_tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os\nprint('mode', os.environ['FLOWS_FAST'])")]), lesson)
    cache, quiet = tmp_path / "executed", (lambda msg: None)
    [normal] = executed_lessons([lesson], cache, fast=False, log=quiet)
    [fast] = executed_lessons([lesson], cache, fast=True, log=quiet)
    assert normal != fast and normal.parent.name == "normal" and fast.parent.name == "fast"
    normal_nb, fast_nb = nbformat.read(normal, as_version=4), nbformat.read(fast, as_version=4)
    assert "mode 0" in normal_nb.cells[0].outputs[0]["text"] and not is_fast(normal_nb)
    assert "mode 1" in fast_nb.cells[0].outputs[0]["text"] and is_fast(fast_nb)
    log = []
    assert executed_lessons([lesson], cache, fast=False, log=log.append) == [normal]
    assert "up to date" in log[0], log  # the fast run did not invalidate the normal copy


def test_a_fast_build_carries_a_banner_on_every_page(built_exports):
    from coursetools.execute import FAST_BANNER

    # built_exports: lesson 01 executed in fast mode, the others as stored (not executed, so not "fast")
    decks = built_exports["decks"]
    assert FAST_BANNER in decks[0].read_text() and "flows-fast-banner" in decks[0].read_text()
    assert all(FAST_BANNER not in d.read_text() for d in decks[1:])
    pages = sorted(built_exports["site"].rglob("*.html"))
    assert len(pages) >= len(LESSONS) + 2
    for page in pages:
        if page.name not in ("search.html", "genindex.html"):
            assert FAST_BANNER in html_unescape(page.read_text()), f"{page.name} has no fast-mode banner"


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


# ---- the student's working copy -------------------------------------------------------------------------------------
def test_working_copy_is_created_never_overwritten_extended_and_reset_per_lesson(tmp_path):
    from coursetools.student import reset_lesson, sync_working_copy

    work = tmp_path / "my-notebooks"
    added, kept = sync_working_copy(work, LESSONS[:2])
    assert [p.name for p in added] == [p.name for p in LESSONS[:2]] and kept == []
    mine = nbformat.read(added[0], as_version=4)
    mine.cells[0].source = "my own notes"
    nbformat.write(mine, added[0])
    # the course gains a lesson: it is added, the student's edited lesson is left alone
    added, kept = sync_working_copy(work, LESSONS[:3])
    assert [p.name for p in added] == [LESSONS[2].name] and len(kept) == 2
    assert nbformat.read(work / LESSONS[0].name, as_version=4).cells[0].source == "my own notes"
    # reset one lesson: the course's version is back, the student's is kept aside
    target, backup = reset_lesson(LESSONS[0].name[:2], work, LESSONS[:3])
    assert nbformat.read(target, as_version=4).cells[0].source == nbformat.read(LESSONS[0], 4).cells[0].source
    assert nbformat.read(backup, as_version=4).cells[0].source == "my own notes"
    with pytest.raises(ValueError, match="give a lesson number"):
        reset_lesson("99", work, LESSONS)


def test_course_commands_for_the_working_copy(tmp_path):
    work = tmp_path / "work"
    run = [sys.executable, "-m", "coursetools"]
    r = subprocess.run(run + ["workcopy", "--dir", str(work)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in work.glob("*.ipynb")) == [p.name for p in LESSONS]
    r = subprocess.run(run + ["reset", "--dir", str(work), "01"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "course's version again" in r.stdout, r.stderr
    assert "/my-notebooks/" in (ROOT / ".gitignore").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    assert "my-notebooks/" in readme and "./course reset" in readme


def test_a_text_or_slide_edit_reuses_the_outputs_and_a_code_edit_executes_again(tmp_path):
    from coursetools.execute import executed_lessons

    lesson = tmp_path / "00_tiny.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Old title"),
                                         nbformat.v4.new_code_cell("import time\nprint(time.time())")])
    nbformat.write(nb, lesson)
    cache, log = tmp_path / "executed", []
    [copy] = executed_lessons([lesson], cache, fast=True, log=log.append)
    printed = nbformat.read(copy, as_version=4).cells[1].outputs[0]["text"]
    nb.cells[0].source = "# New title"
    nb.cells[1].metadata["tags"] = ["slide-output-only"]
    nbformat.write(nb, lesson)
    [copy] = executed_lessons([lesson], cache, fast=True, log=log.append)
    again = nbformat.read(copy, as_version=4)
    assert "up to date" in log[-1] and again.cells[0].source == "# New title"
    assert again.cells[1].metadata["tags"] == ["slide-output-only"] and again.cells[1].outputs[0]["text"] == printed
    nb.cells[1].source += "\nprint('changed')"
    nbformat.write(nb, lesson)
    [copy] = executed_lessons([lesson], cache, fast=True, log=log.append)
    assert "executed in" in log[-1] and "changed" in nbformat.read(copy, as_version=4).cells[1].outputs[-1]["text"]
