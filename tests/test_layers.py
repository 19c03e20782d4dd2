"""The layers of the repository: the maths (flowlib) needs torch, numpy, scipy and tqdm only and never imports the
teaching layer (flowlib_teaching) or the course tools (coursetools); the teaching layer never imports the tools."""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_importing_every_module_of_the_maths_pulls_no_jupyter_no_plotting():
    # `pip install flowlib` pulls no Jupyter: importing every module of the maths package in a fresh interpreter
    # loads no Jupyter, ipywidgets, matplotlib, scikit-learn or teaching module.
    code = f"""
import importlib, pkgutil, sys
sys.path.insert(0, {str(ROOT)!r})
import flowlib
assert flowlib.__file__.startswith({str(ROOT)!r}), flowlib.__file__
for m in pkgutil.walk_packages(flowlib.__path__, "flowlib."):
    if m.name.endswith("__main__"):
        continue
    mod = importlib.import_module(m.name)
    if not str(getattr(mod, "__file__", "")).startswith(flowlib.__path__[0]):
        continue
banned = ("jupyter", "jupyterlab", "ipywidgets", "IPython", "ipykernel", "matplotlib", "sklearn", "nbformat",
          "flowlib_teaching", "coursetools")
loaded = sorted(n for n in sys.modules if n.split(".")[0] in banned)
print(len([n for n in sys.modules if n.startswith("flowlib.")]))
print(" ".join(loaded))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    count, loaded = out.stdout.splitlines()[0], out.stdout.splitlines()[1:]
    assert int(count) > 20, "the walk imported too few modules to mean anything"
    assert not "".join(loaded).strip(), f"importing flowlib loaded {loaded}"


def _imports(package: str) -> set[tuple[str, str]]:
    out = set()
    for path in (ROOT / package).rglob("*.py"):
        for m in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", path.read_text(), flags=re.M):
            out.add((str(path.relative_to(ROOT)), m.group(1).split(".")[0]))
    return out


def test_arrows_point_only_downward():
    maths_up = sorted(p for p, top in _imports("flowlib") if top in ("flowlib_teaching", "coursetools"))
    assert not maths_up, f"the maths imports the layers above it: {maths_up}"
    teaching_up = sorted(p for p, top in _imports("flowlib_teaching") if top == "coursetools")
    assert not teaching_up, f"the teaching layer imports the course tools: {teaching_up}"


def test_the_maths_does_not_read_the_courses_environment():
    # fast mode is the course's business: only flowlib.runtime (the session set-up the lessons call) may read
    # FLOWS_FAST, and no maths module asks it (fast_mode, pick) what to do
    flags = re.compile(r"FLOWS_FAST|FAST_ENV|fast_mode|runtime import[^\n]*\bpick\b|runtime\.pick\b")
    readers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "flowlib").rglob("*.py")
                     if flags.search(p.read_text()) and p.name not in ("runtime.py", "__init__.py"))
    assert not readers, f"maths modules that read the course's fast mode: {readers}"


def test_the_library_holds_no_test_only_code():
    # the library does not know it is being tested: no pytest, no test-run variables, no configurations or
    # "check" methods kept for the tests (those live in tests/; flowlib.testing is the public brute-force checker)
    pattern = re.compile(r"\bpytest\b|PYTEST_|-tiny\b|quadrature_check|for (?:the )?tests\b")
    found = sorted(f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "flowlib").rglob("*.py") if p.name != "testing.py"
                   for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line))
    assert not found, f"test-only code in the library: {found}"
