"""Every lesson, run once from top to bottom in fast mode, the way a student meets it.

One kernel per lesson runs the lesson's code cells in order, as Run All does. At each exercise it runs three more
cells around the lesson's own two (the exercise cell as given, then its ``%%solution`` cell):

1. the exercise cell as given must print "not answered yet" (the student edition is the lesson without its solution
   cells, and a solution runs in a copy of the namespace, so this is what a student's Run All shows);
2. the exercise with a wrong answer must print "not yet right";
3. the solution cell must show "correct" and leave the wrong answer in place (it must not overwrite the student's
   work), and checking the answer again must still say "wrong";
4. the answer names are then put back as they were, so the rest of the lesson runs exactly as under Run All.

No cell may raise. The lesson's own cells, with their outputs, are stored as the lesson's executed fast-mode copy
in build/executed/fast/ (coursetools.execute.store_executed), where the slide checks
(tests/browser/test_slides_fit.py) and ``./course slides --fast`` find them: each lesson is executed once per test
run, not once per check. Under ``pytest -n`` the tests of one lesson run on one worker, in this order (the
scheduler in tests/conftest.py).
"""
from __future__ import annotations

import ast
import re
import time

import nbformat
import pytest

from coursetools import BUILD_DIR, lesson_paths
from coursetools.student import is_solution

LESSONS = lesson_paths()
WRONG = 12345.0
NOT_ANSWERED, NOT_RIGHT, CORRECT = "not answered yet", "not yet right", "correct"


def lesson_param(path):
    """A pytest parameter for one lesson, named by the lesson (tests/conftest.py groups a lesson's tests by it)."""
    return pytest.param(path, id=path.stem)


def solution_names(cell) -> list[str]:
    """Names a solution cell defines at top level (functions and assigned variables)."""
    body = "\n".join(cell.source.splitlines()[1:])  # without the %%solution line
    names = []
    for node in ast.parse(body).body:
        if isinstance(node, ast.FunctionDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def exercise_pairs(nb) -> list[tuple]:
    """(exercise cell, solution cell) for every solution: the exercise is the code cell just before it."""
    pairs = []
    for i, cell in enumerate(nb.cells):
        if is_solution(cell):
            exercise = next(c for c in reversed(nb.cells[:i]) if c.cell_type == "code")
            pairs.append((exercise, cell))
    return pairs


def text_of(cell) -> str:
    parts = []
    for output in cell.outputs:
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts += ["".join(data[m]) for m in ("text/plain", "text/html") if m in data]
    return "\n".join(parts).lower()


def errors_of(cell) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.outputs if o.get("output_type") == "error"]


def build_run(nb):
    """The cells to execute for lesson ``nb``: (cells, lesson_cells, exercises) where ``lesson_cells`` are the run's
    copies of the lesson's code cells in order and ``exercises`` holds, for each exercise, the run's cells
    (as given, wrong answer, solution, verification)."""
    pairs = exercise_pairs(nb)
    solution_of = {id(ex): sol for ex, sol in pairs}
    cells, lesson_cells, exercises = [nbformat.v4.new_code_cell("_MISSING = object()")], [], []

    def add(source):
        cells.append(nbformat.v4.new_code_cell(source))
        return cells[-1]

    for cell in nb.cells:
        if cell.cell_type != "code" or is_solution(cell):
            continue
        lesson_cells.append(add(cell.source))
        if id(cell) not in solution_of:
            continue
        solution = solution_of[id(cell)]
        names = solution_names(solution)
        checks = [line for line in cell.source.splitlines() if re.match(r"^(?:\w+\.)?check_\w+\(", line)]
        assert len(checks) == 1, f"the exercise cell {cell.id} should end with one check call, not {checks}"
        add("_saved = {%s}" % ", ".join(f"{n!r}: globals().get({n!r}, _MISSING)" for n in names))
        rest = "\n".join(line for line in cell.source.splitlines() if line != checks[0])
        wrong = "".join(f"def {n}(*args, **kwargs):\n    return {WRONG}\n" if re.search(rf"^def {n}\(", solution.source, re.M)
                        else f"{n} = {WRONG}\n" for n in names)
        keep = "_wrong = {%s}\n" % ", ".join(f"{n!r}: {n}" for n in names)
        wrong_cell = add(rest + "\n" + wrong + keep + checks[0])
        lesson_cells.append(add(solution.source))
        verify = add(f"_r = {checks[0]}\n"
                     f"assert _r.status == 'wrong', ('{cell.id}: checking the wrong answer again', str(_r))\n"
                     "for _n, _v in _wrong.items():\n"
                     "    assert globals()[_n] is _v, f'{_n} was replaced by the solution cell'\n"
                     "for _n, _v in _saved.items():  # as Run All leaves them\n"
                     "    if _v is _MISSING:\n"
                     "        globals().pop(_n, None)\n"
                     "    else:\n"
                     "        globals()[_n] = _v\n")
        exercises.append((cell.id, lesson_cells[-2], wrong_cell, lesson_cells[-1], verify))
    return cells, lesson_cells, exercises


def run_lesson(path, store: bool = True) -> None:
    """Run lesson ``path`` as described at the top; raise AssertionError naming the cell on any failure. With
    ``store``, keep the executed lesson as its fast-mode copy in build/executed/fast/."""
    from nbclient.exceptions import CellExecutionError

    from coursetools.execute import execute, store_executed

    nb = nbformat.read(path, as_version=4)
    cells, lesson_cells, exercises = build_run(nb)
    assert exercises, f"{path.name} has no exercise"
    run = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
    t0 = time.perf_counter()
    try:
        execute(run, path.parent, fast=True, timeout=600)
    except CellExecutionError as e:
        raise AssertionError(f"{path.name}: a cell raised when run in order (fast mode):\n{e}") from None
    seconds = time.perf_counter() - t0
    for exercise_id, given, wrong, solution, verify in exercises:
        where = f"{path.name}, exercise cell {exercise_id}"
        assert NOT_ANSWERED in text_of(given), f"{where}: left as given, it should say '{NOT_ANSWERED}':\n{text_of(given)[:500]}"
        assert NOT_RIGHT in text_of(wrong), f"{where}: a wrong answer should be told '{NOT_RIGHT}':\n{text_of(wrong)[:500]}"
        out = text_of(solution)
        assert CORRECT in out and NOT_RIGHT not in out, f"{where}: its solution cell should say '{CORRECT}':\n{out[:500]}"
    if store:
        executed = nbformat.v4.new_notebook(cells=lesson_cells, metadata=run.metadata)
        store_executed(path, executed, BUILD_DIR / "executed", fast=True, seconds=seconds)


@pytest.mark.parametrize("path", [lesson_param(p) for p in LESSONS])
def test_lesson_runs_and_its_exercises_answer_a_student(path):
    run_lesson(path)


PROBE_SETUP = """from flowlib_teaching.exercises.framework import register_solution_magic
register_solution_magic()

class Verdict:
    def __init__(self, status):
        self.status = status
    def __repr__(self):
        return {"correct": "Correct.", "wrong": "Not yet right.", "not answered": "Not answered yet."}[self.status]

def check_double(f):
    if f is None:
        return Verdict("not answered")
    return Verdict("correct" if f(2) == 4 else "wrong")
"""


@pytest.mark.parametrize("planted", [None, "overwrites", "says nothing"])
def test_the_run_catches_a_solution_that_overwrites_and_an_exercise_that_says_nothing(planted, tmp_path):
    """A two-exercise probe lesson passes; planting a solution cell that is not isolated by %%solution (it replaces
    the student's answer), or an exercise whose placeholder is checked as wrong instead of "not answered", fails."""
    from flowlib_teaching.exercises.framework import SOLUTION_FIRST_LINE

    solution = "def double(x):\n    return 2 * x\ncheck_double(double)"
    first = "# %%solution forgotten" if planted == "overwrites" else SOLUTION_FIRST_LINE
    placeholder = "lambda x: 0" if planted == "says nothing" else "None"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(PROBE_SETUP),
        nbformat.v4.new_code_cell(f"double = {placeholder}\ncheck_double(double)"),
        nbformat.v4.new_code_cell(first + "\n" + solution, metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("print('the lesson goes on')"),
    ])
    nbformat.write(nb, tmp_path / "99_probe.ipynb")
    if planted is None:
        run_lesson(tmp_path / "99_probe.ipynb", store=False)
    else:
        with pytest.raises(AssertionError, match="checking the wrong answer again|replaced by the solution" if planted == "overwrites"
                           else "should say 'not answered yet'"):
            run_lesson(tmp_path / "99_probe.ipynb", store=False)
