"""The course as a student sees it: JupyterLab in headless Chromium.

The test starts its own JupyterLab (127.0.0.1, random token, private settings, fast mode), opens a lesson, runs
all cells from the Run menu, waits until every cell has run and the kernel is idle, and fails on any error output.
In lesson 01 it then moves the change-of-variables widget's slider with the keyboard and checks that the readout
and the picture change; in lesson 07 it moves the temperature slider. Screenshots of each checked widget go to
artifacts/browser/.

Solutions, as a student meets them (lesson 01): after Run All, every collapsed ``%%solution`` cell shows only its
neutral first line in the page (no line of the answer is visible). Then the test types a wrong answer into the first
exercise's editor and presses Shift+Enter twice, as a student would: the exercise says "not yet right", the focus
lands on the collapsed solution cell, and running it says "correct". A new cell below then checks the student's
function again without redefining it: it must still be the wrong answer ("not yet right"), i.e. the solution did
not overwrite it.

Add a lesson to LESSONS to have it opened and run as well; give it a widget check like lesson 01's when it has
widgets that matter.
"""
from __future__ import annotations

import hashlib
import re
import time

import pytest

from .conftest import ROOT, JupyterLabServer

LESSON_01 = "01_change_of_variables.ipynb"
LESSON_05 = "05_flows_for_images.ipynb"
LESSON_06 = "06_glow.ipynb"
LESSON_07 = "07_what_glow_can_do.ipynb"
LESSON_08 = "08_memory_and_beyond.ipynb"
LESSONS = [LESSON_01, LESSON_05, LESSON_06, LESSON_07, LESSON_08]
RUN_TIMEOUT = {LESSON_01: 120, LESSON_05: 240, LESSON_06: 300, LESSON_07: 240, LESSON_08: 300}  # seconds, fast mode on a busy 2-core machine

# What the page's notebook is doing, read from JupyterLab's own model (the app is exposed to the page):
# the kernel's status, code cells in all and executed, cells still queued or running ("[*]"), and error outputs.
NOTEBOOK_STATE = """(name) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.content || !w.sessionContext || !w.context || w.context.path !== name) return null;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content.model.cells;
  let total = 0, executed = 0; const errors = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    total++;
    if (cell.executionCount) executed++;
    for (let j = 0; j < cell.outputs.length; j++) {
      const out = cell.outputs.get(j).toJSON();
      if (out.output_type === 'error') errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
    }
  }
  const running = [...w.content.node.querySelectorAll('.jp-InputPrompt')]
    .filter(e => e.textContent.includes('*')).length;
  return {kernel: kernel ? kernel.status : 'none', total, executed, running, errors};
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory, artifacts):
    server = JupyterLabServer(tmp_path_factory.mktemp("jupyterlab"), [ROOT / "notebooks" / n for n in LESSONS],
                              artifacts / "jupyterlab-server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(chromium_context, artifacts, request):
    page = chromium_context.new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    yield page
    (artifacts / f"{request.node.name}.console.log").write_text("\n".join(problems) + "\n")
    page.close()


def _state(page, name):
    return page.evaluate(NOTEBOOK_STATE, name)


def _wait(page, name, done, timeout, what, read=None):
    """Poll ``read()`` (the notebook state by default) until ``done(state)``; fail after ``timeout`` seconds."""
    read = read or (lambda: _state(page, name))
    deadline, state = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        state = read()
        if state is not None and done(state):
            return state
        page.wait_for_timeout(500)
    raise AssertionError(f"{name}: {what} did not happen within {timeout} s; last state {state}")


def run_all_cells(page, lab, name, artifacts, timeout, start_timeout=60):
    """Open ``name`` in its own workspace, run all cells from the Run menu, wait until the kernel is idle with
    nothing queued; returns the notebook state. Fails on error outputs, with a screenshot."""
    stem = name.split(".")[0]
    page.goto(f"{lab.url}/lab/workspaces/{stem}/tree/{name}?reset&token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=60_000)
    _wait(page, name, lambda s: s["kernel"] == "idle", start_timeout, "the kernel starting")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    t0 = time.monotonic()

    def finished(s):
        return s["running"] == 0 and s["kernel"] == "idle" and (s["executed"] == s["total"] or s["errors"])

    try:
        state = _wait(page, name, finished, timeout, "running all cells")
        page.wait_for_timeout(500)  # the kernel can be idle for a moment between two queued cells: look again
        state = _wait(page, name, finished, 30, "running all cells")
    finally:
        page.screenshot(path=str(artifacts / f"{stem}-after-run-all.png"))
    print(f"{name}: ran {state['executed']} code cells in {time.monotonic() - t0:.0f} s")
    assert not state["errors"], f"{name} raised in the browser: {state['errors']}"
    assert state["executed"] == state["total"], f"{name}: only {state['executed']} of {state['total']} cells ran"
    return state


def _png_digest(img) -> str:
    """A digest of the pixels shown (not of the src, which for an Image widget is a new blob: URL on every update)."""
    pixels = img.evaluate("""img => { if (!img.complete || !img.naturalWidth) return '';
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png'); }""")
    return hashlib.sha256(pixels.encode()).hexdigest()


def test_lesson_01_runs_and_its_widget_responds_to_the_keyboard(lab, page, artifacts):
    run_all_cells(page, lab, LESSON_01, artifacts, RUN_TIMEOUT[LESSON_01])
    # the first change-of-variables widget: its visible slider labelled "a"
    slider = page.locator(".widget-slider:visible",
                          has=page.locator("label.widget-label", has_text=re.compile(r"^a$"))).first
    widget = slider.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), "
                            "' widget-vbox ')][1]")
    readout, picture = widget.locator(".widget-html").first, widget.locator("img.flows-figure").first
    widget.scroll_into_view_if_needed()
    picture.wait_for(state="visible", timeout=30_000)
    assert picture.evaluate("img => img.complete && img.naturalWidth > 400"), "the widget's figure did not load"
    widget.screenshot(path=str(artifacts / "01-widget-before.png"))
    before_text, before_png = readout.inner_text(), _png_digest(picture)
    before_value = float(slider.locator(".widget-readout").inner_text())
    assert "x = a·z + b" in before_text and "a = " in before_text, before_text

    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(4):  # four steps of 0.05 to the right
        page.keyboard.press("ArrowRight")
    expected = f"{before_value + 0.2:.2f}"
    page.wait_for_function("([el, want]) => el.textContent.trim() === want",
                           arg=[slider.locator(".widget-readout").element_handle(), expected], timeout=15_000)
    # Each key press is one update in the kernel, answered in order: wait for the last one (the readout showing the
    # final value), not just for the first change, or the test races the kernel.
    want = f"a = {float(expected):g}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (want not in readout.inner_text() or
                                           _png_digest(picture) == before_png):
        page.wait_for_timeout(250)
    after_text = readout.inner_text()
    widget.screenshot(path=str(artifacts / "01-widget-after.png"))
    assert after_text != before_text, "moving the slider did not change the readout"
    assert f"a = {float(expected):g}" in after_text, f"the readout does not show the new a = {expected}: {after_text}"
    assert _png_digest(picture) != before_png, "moving the slider did not change the picture"
    assert picture.evaluate("img => img.complete && img.naturalWidth > 400")

    # the non-invertible map's widget further down is drawn too, with its explanation
    square = page.locator(".widget-vbox", has=page.locator(".widget-html", has_text="not invertible")).first
    square.scroll_into_view_if_needed()
    assert square.locator("img.flows-figure").first.evaluate("img => img.complete && img.naturalWidth > 400")
    square.screenshot(path=str(artifacts / "01-widget-square.png"))
    lab.shutdown_kernels()


# The solution cells of the open notebook: index, source, whether the input is collapsed (in the page and in the
# cell's metadata), the text the page shows for the whole cell (innerText: what is rendered, not what is hidden) and
# the collapsed input's placeholder text.
SOLUTION_CELLS = """(name) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.context || w.context.path !== name) return null;
  const found = [];
  w.content.widgets.forEach((cell, index) => {
    const source = cell.model.sharedModel.getSource();
    if (cell.model.type !== 'code' || !source.startsWith('%%solution')) return;
    const placeholder = cell.node.querySelector('.jp-InputPlaceholder .jp-PlaceholderText');
    found.push({index, source, inputHidden: cell.inputHidden,
                sourceHidden: !!(cell.model.getMetadata('jupyter') || {}).source_hidden,
                shown: cell.node.innerText, placeholder: placeholder ? placeholder.innerText : null});
  });
  return found;
}"""

# One cell of the open notebook: its type, source, execution count, whether it is queued or running, the text its
# output area shows, and which cell is active in which mode; with the kernel's status.
CELL_STATE = """([name, index]) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.sessionContext || !w.context || w.context.path !== name) return null;
  const cell = w.content.widgets[index];
  if (!cell) return null;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const prompt = cell.node.querySelector('.jp-InputArea-prompt');
  const output = cell.node.querySelector('.jp-OutputArea');
  return {kernel: kernel ? kernel.status : 'none', type: cell.model.type, source: cell.model.sharedModel.getSource(),
          count: cell.model.type === 'code' ? cell.model.executionCount : null,
          running: !!(prompt && prompt.textContent.includes('*')), output: output ? output.innerText : '',
          active: w.content.activeCellIndex, mode: w.content.mode};
}"""

# What the student types over the first exercise's placeholder: p(f(x)) without the factor |df/dx| = 1/2, a wrong
# answer the checker diagnoses. The check call line is kept as the exercise has it.
WRONG_ANSWER_01 = "def q_ex1(x): return torch.where((x >= 3) & (x <= 5), 1.0, 0.0)"
# The verdict's heading as the page shows it (ExerciseResult's HTML: "✓ Correct — ...", "✗ Not yet right — ...").
NOT_YET_RIGHT, CORRECT = re.compile(r"✗\s*not yet right", re.I), re.compile(r"✓\s*correct", re.I)


def _squash(text: str) -> str:
    """Runs of white space as one space, as the page renders them (innerText collapses them)."""
    return " ".join(text.split())


def _answer_lines(source: str) -> list[str]:
    """The lines of a solution cell after its neutral first line, as the page would render them."""
    return [_squash(line) for line in source.splitlines()[1:] if line.strip()]


def _cell(page, name, index):
    return page.evaluate(CELL_STATE, [name, index])


def _shift_enter(page, name, index, timeout=90):
    """Press Shift+Enter with cell ``index`` active and wait until the kernel has run it (its execution count moved
    on, nothing queued, the kernel idle, an output shown); returns the cell's state."""
    before = _cell(page, name, index)
    assert before["active"] == index, f"cell {index} should be active before Shift+Enter, cell {before['active']} is"
    page.keyboard.press("Shift+Enter")

    def ran(s):
        return (s["count"] is not None and s["count"] != before["count"] and not s["running"]
                and s["kernel"] == "idle" and s["output"].strip() != "")

    return _wait(page, name, ran, timeout, f"running cell {index} with Shift+Enter",
                 read=lambda: _cell(page, name, index))


def test_lesson_01_solutions_neither_spoil_nor_overwrite(lab, page, artifacts):
    from flowlib_teaching.exercises.framework import SOLUTION_FIRST_LINE

    run_all_cells(page, lab, LESSON_01, artifacts, RUN_TIMEOUT[LESSON_01])
    cells = page.evaluate(SOLUTION_CELLS, LESSON_01)
    assert cells, "lesson 01 has no %%solution cells in the page"
    neutral = _squash(SOLUTION_FIRST_LINE)[:40]  # its start (the page may cut a long line short)
    notebook = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    for c in cells:
        where = f"solution cell {c['index']}"
        assert c["sourceHidden"] and c["inputHidden"], f"{where} is not collapsed: {c}"
        assert c["source"].startswith(SOLUTION_FIRST_LINE), f"{where} does not start with the neutral line"
        assert c["placeholder"] is not None and neutral in _squash(c["placeholder"]), \
            f"{where}: the collapsed input shows {c['placeholder']!r}, not the neutral line"
        shown = _squash(c["shown"])
        assert neutral in shown, f"{where}: the page does not show the neutral line: {shown[:300]!r}"
        spoilers = [line for line in _answer_lines(c["source"]) if line in shown]
        assert not spoilers, f"{where} shows lines of the answer in the page: {spoilers}"
        assert CORRECT.search(c["shown"]), f"{where}: after Run All its output should say correct: {c['shown']!r}"
    notebook.nth(cells[0]["index"]).screenshot(path=str(artifacts / "01-solution-collapsed.png"))

    # The first exercise is the code cell just above the first solution cell.
    solution = cells[0]["index"]
    exercise = solution - 1
    given = _cell(page, LESSON_01, exercise)
    assert given["type"] == "code" and re.search(r"not answered yet", given["output"], re.I), \
        f"cell {exercise} should be the first exercise, not answered yet after Run All: {given}"
    check_line = [line for line in given["source"].splitlines() if line.strip()][-1]
    assert check_line.startswith("check_"), f"the exercise's last line should call its checker: {check_line!r}"

    # The student clicks into the exercise's editor, selects everything and types a wrong answer and the check call.
    t0 = time.monotonic()
    notebook.nth(exercise).locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(WRONG_ANSWER_01)
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.type(check_line)
    typed = _cell(page, LESSON_01, exercise)
    assert typed["mode"] == "edit" and typed["active"] == exercise, f"not editing cell {exercise}: {typed}"
    assert typed["source"].strip() == f"{WRONG_ANSWER_01}\n\n{check_line}", \
        f"the editor holds something else than what was typed: {typed['source']!r}"

    # Shift+Enter: the exercise says "not yet right", and the focus lands on the collapsed solution cell.
    ran = _shift_enter(page, LESSON_01, exercise)
    notebook.nth(exercise).screenshot(path=str(artifacts / "01-solution-exercise-wrong.png"))
    assert NOT_YET_RIGHT.search(ran["output"]), f"the wrong answer was not told 'not yet right': {ran['output']!r}"
    assert ran["active"] == solution, f"Shift+Enter went to cell {ran['active']}, not the solution cell {solution}"

    # Shift+Enter again: the solution runs (still collapsed, still not spoiling) and says "correct".
    ran = _shift_enter(page, LESSON_01, solution)
    notebook.nth(solution).screenshot(path=str(artifacts / "01-solution-ran.png"))
    assert CORRECT.search(ran["output"]) and not NOT_YET_RIGHT.search(ran["output"]), \
        f"the solution cell should say correct: {ran['output']!r}"
    after = next(c for c in page.evaluate(SOLUTION_CELLS, LESSON_01) if c["index"] == solution)
    assert after["inputHidden"], "running the solution cell expanded it"
    assert not [line for line in _answer_lines(after["source"]) if line in _squash(after["shown"])], \
        "after running, the solution cell shows lines of its answer"

    # Is the student's answer still there? Re-running the exercise cell would prove nothing (it defines q_ex1 again),
    # so the student inserts a cell below the solution and calls the checker on q_ex1 as it is in the kernel now.
    page.keyboard.press("Escape")
    page.keyboard.press("a")  # a new cell above the active one (the cell after the solution)
    probe = solution + 1
    _wait(page, LESSON_01, lambda s: s["active"] == probe and s["type"] == "code" and s["source"] == "", 15,
          "inserting a cell below the solution", read=lambda: _cell(page, LESSON_01, probe))
    page.keyboard.press("Enter")  # edit mode
    page.keyboard.type(check_line)
    ran = _shift_enter(page, LESSON_01, probe)
    notebook.nth(probe).screenshot(path=str(artifacts / "01-solution-answer-kept.png"))
    assert NOT_YET_RIGHT.search(ran["output"]) and not CORRECT.search(ran["output"]), \
        f"after the solution cell ran, the student's q_ex1 is no longer the wrong answer they typed: the solution " \
        f"overwrote it (the check of q_ex1 now says: {ran['output']!r})"
    print(f"{LESSON_01}: typed a wrong answer and ran exercise, solution and check in {time.monotonic() - t0:.0f} s")
    lab.shutdown_kernels()


def test_lesson_05_runs_without_errors(lab, page, artifacts):
    run_all_cells(page, lab, LESSON_05, artifacts, RUN_TIMEOUT[LESSON_05])
    images = page.locator(".jp-OutputArea-output img")
    assert images.count() >= 4, "lesson 05 should show its figures"
    lab.shutdown_kernels()


def test_lesson_06_runs_without_errors(lab, page, artifacts):
    run_all_cells(page, lab, LESSON_06, artifacts, RUN_TIMEOUT[LESSON_06])
    images = page.locator(".jp-OutputArea-output img")
    assert images.count() >= 4, "lesson 06 should show its figures (the 1x1 Jacobian, LU cost, ablation, training curves)"
    lab.shutdown_kernels()


def test_lesson_08_runs_without_errors(lab, page, artifacts):
    run_all_cells(page, lab, LESSON_08, artifacts, RUN_TIMEOUT[LESSON_08])
    images = page.locator(".jp-OutputArea-output img")
    assert images.count() >= 4, "lesson 08 should show its figures (memory and time, drift, flow matching, transformer flow)"


def test_lesson_07_runs_and_its_temperature_widget_responds(lab, page, artifacts):
    run_all_cells(page, lab, LESSON_07, artifacts, RUN_TIMEOUT[LESSON_07])
    slider = page.locator(".widget-slider:visible",
                          has=page.locator("label.widget-label", has_text="temperature T")).first
    widget = slider.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), "
                            "' widget-vbox ')][1]")
    picture = widget.locator("img.flows-figure").first
    widget.scroll_into_view_if_needed()
    picture.wait_for(state="visible", timeout=30_000)
    assert picture.evaluate("img => img.complete && img.naturalWidth > 400"), "the widget's figure did not load"
    readout = slider.locator(".widget-readout")
    before_value, before_png = readout.inner_text().strip(), _png_digest(picture)
    widget.screenshot(path=str(artifacts / "07-temperature-before.png"))
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowLeft")  # one temperature lower (the slider computes on release: a key press is one)
    page.wait_for_function("([el, old]) => el.textContent.trim() !== old",
                           arg=[readout.element_handle(), before_value], timeout=15_000)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _png_digest(picture) == before_png:
        page.wait_for_timeout(250)
    widget.screenshot(path=str(artifacts / "07-temperature-after.png"))
    assert _png_digest(picture) != before_png, "moving the temperature slider did not change the picture"
    # the button-driven widgets drew their first pictures too
    assert page.locator(".widget-button", has_text="encode A and B, interpolate").count() == 1
    assert page.locator("img.flows-figure").count() >= 4, "lesson 07 should show its four widgets' pictures"
    lab.shutdown_kernels()
