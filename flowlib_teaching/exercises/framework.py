"""The framework of the exercise checkers: a checker says WHAT is wrong, not just "incorrect".

Every ``check_*`` of a lesson (``flowlib_teaching.exercises.lesson01`` ... ``lesson05``) takes the learner's answer
and returns an ``ExerciseResult`` that shows as one message: ✓ (correct), ✗ with a diagnosis and a hint, or "not
answered yet" for an untouched placeholder (a function that returns ``None`` or ``...``, or raises
``NotImplementedError``). Nothing is raised unless ``strict=True``, which raises ``ExerciseError`` (an
AssertionError) on anything but a correct answer: the solution cells use it, so that running the notebooks proves the
solutions pass. Checks are deterministic: random ones run under a fixed seed and leave the global random state as it
was.

To write a checker: decorate a function that returns a message for a correct answer and raises ``wrong(diagnosis,
message, hint)`` otherwise with ``@checker(title, placeholder_hint)``; call the learner's function through
``call(fn, *args)``, which turns placeholders and crashes into verdicts, and read what it hands back with
``number(value, what)`` (one number) or ``numbers(value, what, shape)`` (a float64 tensor), which turn anything
else into a verdict that says what was expected.

Solution cells (every lesson): a reference answer lives in a code cell tagged ``solution``, collapsed
(``jupyter.source_hidden``), whose first line is ``%%solution`` and a neutral note. Importing this module (which
every lesson's checkers do) registers that IPython cell magic: it runs the cell in a *copy* of the notebook's
namespace, so the reference may define the same names as the exercise (``def q_ex1(x): ...``) without replacing the
learner's answer, and it shows the value of the cell's last expression (the checker's verdict on the reference). Run
All therefore keeps the learner's own answer, and the collapsed cell shows the note, not the answer. See
``run_solution``.
"""
from __future__ import annotations

import ast
import functools
import html
import inspect
from dataclasses import dataclass
from typing import Callable

__all__ = ["CORRECT", "WRONG", "MISSING", "ExerciseError", "ExerciseResult", "Verdict", "wrong", "checker", "call",
           "short", "number", "numbers", "SOLUTION_MAGIC", "SOLUTION_FIRST_LINE", "run_solution", "register_solution_magic"]

CORRECT, WRONG, MISSING = "correct", "wrong", "not answered"


class ExerciseError(AssertionError):
    """Raised by a checker with ``strict=True`` when the answer is wrong or missing."""


@dataclass
class ExerciseResult:
    """The verdict on one answer. ``diagnosis`` names the mistake found (e.g. "multiplied_by_jacobian")."""

    exercise: str
    status: str  # "correct", "wrong" or "not answered"
    message: str
    hint: str = ""
    diagnosis: str = ""

    @property
    def passed(self) -> bool:
        return self.status == CORRECT

    def __str__(self) -> str:
        mark = {CORRECT: "✓", WRONG: "✗", MISSING: "…"}[self.status]
        head = {CORRECT: "correct", WRONG: "not yet right", MISSING: "not answered yet"}[self.status]
        text = f"{mark} {self.exercise}: {head}. {_capital(self.message)}"
        if self.hint:
            text += f"\n  Hint: {self.hint}"
        return text

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        colour = {CORRECT: "#2ca02c", WRONG: "#d62728", MISSING: "#7f7f7f"}[self.status]
        mark = {CORRECT: "✓", WRONG: "✗", MISSING: "…"}[self.status]
        head = {CORRECT: "Correct", WRONG: "Not yet right", MISSING: "Not answered yet"}[self.status]
        hint = f"<br><i>Hint:</i> {html.escape(self.hint)}" if self.hint else ""
        return (f"<div style='border-left:5px solid {colour}; padding:4px 10px; margin:4px 0'>"
                f"<b style='color:{colour}'>{mark} {head}</b> — {html.escape(self.exercise)}<br>"
                f"{html.escape(_capital(self.message))}{hint}</div>")


def _capital(text: str) -> str:
    """Capitalise a message that starts with a word ("your q(x) ..."), not one that starts with maths ("q(x) = ...",
    "log q(x) ...")."""
    first = text.split(" ", 1)[0]
    if len(first) > 1 and first.isalpha() and first.islower() and first != "log":
        return text[0].upper() + text[1:]
    return text


class Verdict(Exception):
    """Raised inside a checker to stop with a verdict."""

    def __init__(self, status: str, message: str, hint: str = "", diagnosis: str = ""):
        super().__init__(message)
        self.status, self.message, self.hint, self.diagnosis = status, message, hint, diagnosis


def wrong(diagnosis: str, message: str, hint: str = "") -> Verdict:
    return Verdict(WRONG, message, hint, diagnosis)


def checker(title: str, placeholder_hint: str, answer: str = "function",
            derive: Callable[[dict], dict] | None = None):
    """Turns a function that raises ``Verdict`` into a checker with the common behaviour (placeholders, strict).

    ``title`` and ``placeholder_hint`` may name the checker's arguments (with their defaults) and a few derived
    strings in braces, e.g. "{x_eq}"; other braces are left as they are. ``answer`` says what the learner hands
    in: "function" (anything else is refused as not_a_function) or "value" (a number, a dict, ...: the check
    itself judges its type). ``derive(names)`` may add more such strings computed from the arguments.
    """
    if answer not in ("function", "value"):
        raise ValueError(f"answer must be 'function' or 'value', got {answer!r}.")

    def decorate(check):
        signature = inspect.signature(check)

        @functools.wraps(check)
        def wrapper(given, *args, strict: bool = False, **kwargs) -> ExerciseResult:
            bound = signature.bind(given, *args, **kwargs)
            bound.apply_defaults()
            names = {k: v for k, v in bound.arguments.items() if k != next(iter(signature.parameters))}
            if derive is not None:
                names.update(derive(names))
            heading, hint = _fill(title, names), _fill(placeholder_hint, names)
            try:
                if given is None or given is Ellipsis:
                    raise Verdict(MISSING, "there is no answer yet.", hint, "missing")
                if answer == "function" and not callable(given):
                    raise wrong("not_a_function", f"expected a function, got {type(given).__name__} "
                                                   f"({short(given)}).", hint)
                message = check(given, *args, **kwargs)
                result = ExerciseResult(heading, CORRECT, message, "", "correct")
            except Verdict as v:
                result = ExerciseResult(heading, v.status, v.message, v.hint, v.diagnosis)
            if strict and not result.passed:
                raise ExerciseError(str(result))
            return result

        return wrapper

    return decorate


def _fill(text: str, names: dict) -> str:
    """Replace "{name}" by its value for the known names only (other braces are left alone)."""
    for key, value in names.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def short(v, n: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def call(fn, *args):
    """Call the learner's function; a placeholder becomes MISSING, an exception a diagnosis."""
    try:
        out = fn(*args)
    except NotImplementedError:
        raise Verdict(MISSING, "the function still raises NotImplementedError.",
                       "replace the placeholder with your answer and run the cell again.", "missing") from None
    except Exception as err:  # the learner's bug: report it, do not crash the notebook
        hint = "read the error message; test your function on a few values first."
        if "ambiguous" in str(err):
            hint = ("your function receives a whole tensor of x values at once, so `if x > ...` cannot work; "
                    "use torch.where(condition, value_if_true, value_if_false).")
        raise wrong("raised", f"calling your function raised {type(err).__name__}: {err}", hint) from None
    if out is None or out is Ellipsis:
        raise Verdict(MISSING, "your function returns nothing yet.",
                       "replace the `...` (or add a `return`) and run the cell again.", "missing")
    return out


def number(value, what: str = "your answer", diagnosis: str = "not_numeric") -> float:
    """``value`` as one float (a Python number, a NumPy scalar or a one-element tensor); anything else raises the
    verdict ``wrong(diagnosis, "<what> should be a number, got ...")``."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise wrong(diagnosis, f"{what} should be a number, got {type(value).__name__} ({short(value)}).") from None


def numbers(value, what: str, shape: tuple[int, ...] | None = None, hint: str = ""):
    """``value`` (a tensor, array or nested list) as a detached float64 tensor; anything that is not numbers raises
    the verdict ``not_numeric``, and, when ``shape`` is given, a tensor of another shape raises ``shape`` (with
    ``hint``)."""
    import torch

    try:
        t = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise wrong("not_numeric", f"{what} is a {type(value).__name__} ({short(value)}), not numbers.") from None
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise wrong("shape", f"{what} has shape {tuple(t.shape)}, expected {tuple(shape)}.", hint)
    return t


# ---- solution cells that neither spoil nor overwrite ----------------------------------------------------------------
SOLUTION_MAGIC = "solution"
SOLUTION_FIRST_LINE = ("%%solution  (reference answer, collapsed: expand it after your own attempt; running it "
                       "leaves your answer as it is)")


def run_solution(source: str, namespace: dict):
    """Run ``source`` (a reference answer) in a shallow copy of ``namespace`` and return the value of its last
    expression (None if it ends with a statement). Names the reference defines or rebinds stay in the copy, so the
    learner's answer under the same name is untouched; the verdict of the checker the cell ends with is returned
    for display."""
    scope = dict(namespace)
    tree = ast.parse(source, filename="<solution>", mode="exec")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<solution>", "exec"), scope)  # noqa: S102 -- the course's own reference answers
    if last is None:
        return None
    return eval(compile(ast.Expression(last.value), "<solution>", "eval"), scope)  # noqa: S307


def _solution_magic(line: str, cell: str):
    """%%solution [note]: run the cell as a reference answer in a copy of the namespace (see run_solution)."""
    from IPython import get_ipython

    return run_solution(cell, get_ipython().user_ns)


def register_solution_magic(shell=None) -> bool:
    """Register ``%%solution`` in the running IPython (a no-op outside IPython); True if registered."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    shell.register_magic_function(_solution_magic, magic_kind="cell", magic_name=SOLUTION_MAGIC)
    return True


register_solution_magic()
