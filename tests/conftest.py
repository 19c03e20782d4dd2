import os

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
    lesson 01 executed in fast mode (so widgets and figures are in it), the other lessons as stored (the real
    ``./course slides`` and ``./course site`` execute every lesson; here that would only repeat the notebook tests).
    """
    from coursetools import lesson_paths
    from coursetools.execute import executed_lessons
    from coursetools.site import build_site
    from coursetools.slides import export_slides

    base = tmp_path_factory.mktemp("exports")
    lessons = lesson_paths()
    executed = executed_lessons(lessons[:1], base / "executed", fast=True, log=lambda msg: None)
    notebooks = executed + lessons[1:]
    decks = export_slides(notebooks, base / "slides")
    index = build_site(notebooks, base / "site", src=base / "site-src", log=lambda msg: None)
    return {"base": base, "lessons": lessons, "executed": executed, "slides": base / "slides", "decks": decks,
            "site": base / "site", "site_index": index}
