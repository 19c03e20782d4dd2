import os
import re

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # headless: widgets and plots draw into memory
os.environ.setdefault("FLOWS_FAST", "1")
# One thread: on a shared 2-core machine two OpenMP threads can run tens of times slower than one.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def built_exports(tmp_path_factory):
    """Slides and site built once for the tests that check them (tests/test_teaching.py, tests/browser/):
    lesson 01 executed in fast mode (so widgets and figures are in it; the copy tests/test_lessons.py stored in
    build/executed/fast/, executed here only if it is missing or out of date), the other lessons as stored (the real
    ``./course slides`` and ``./course site`` use every lesson executed).
    """
    from coursetools import BUILD_DIR, lesson_paths
    from coursetools.execute import executed_lessons
    from coursetools.site import build_site
    from coursetools.slides import export_slides

    base = tmp_path_factory.mktemp("exports")
    lessons = lesson_paths()
    executed = executed_lessons(lessons[:1], BUILD_DIR / "executed", fast=True, log=lambda msg: None)
    notebooks = executed + lessons[1:]
    decks = export_slides(notebooks, base / "slides")
    index = build_site(notebooks, base / "site", src=base / "site-src", log=lambda msg: None)
    return {"base": base, "lessons": lessons, "executed": executed, "slides": base / "slides", "decks": decks,
            "site": base / "site", "site_index": index}


# ---- order, and workers -----------------------------------------------------------------------------------------------
# ./course test runs the suite on two workers or more (pytest-xdist). Some tests must share a process and run in
# order: the lessons run in the browser share one JupyterLab server ("lab"), and tests/test_lessons.py runs lesson NN
# and stores the executed copy that tests/browser/test_slides_fit.py then checks ("lesson-NN"). The scheduler below
# sends each such group to one worker as one unit, and every other test on its own; groups go first, largest first,
# so that neither worker is left with a long tail. (xdist's own --dist loadgroup does not group under pytest 9.2.)
FIRST = ("tests/browser/test_jupyterlab.py", "tests/test_lessons.py", "tests/browser/test_slides_fit.py")
_LESSON_TEST = re.compile(r"^tests/(?:test_lessons\.py|browser/test_slides_fit\.py)::\w+\[(\d\d)_")


def test_group(nodeid: str) -> str:
    """The unit of work a test belongs to: "lab", "lesson-NN", or the test itself."""
    if nodeid.startswith("tests/browser/test_jupyterlab.py::"):
        return "lab"
    m = _LESSON_TEST.match(nodeid)
    return f"lesson-{m.group(1)}" if m else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":
        return None  # an explicit --dist keeps xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return test_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return FIRST.index(path) if path in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the order inside each file is kept
