"""Every slide of every deck fits the screen: opened in headless Chromium at 1280x720 and at 1920x1080, each slide is
shown in turn and its content measured against reveal.js's slide size (1280x720, 16:9). A slide whose content is
taller or wider than the slide fails the test, with the deck, the slide number and the first words of the slide.

Each deck is built from its lesson's fast-mode run, the one tests/test_lessons.py made and stored in
build/executed/fast/ (under ``pytest -n`` a lesson's tests run on one worker, that run first: tests/conftest.py; run alone, this test
executes the lesson itself): the figures and outputs have the sizes of a real run. How to make a slide fit: give a
figure's code cell the tag ``slide-output-only`` (the slide shows the figure, not the code), split a long text with a
``subslide``, or shorten it. Screenshots of overflowing slides go to artifacts/browser/.
"""
from __future__ import annotations

import pytest

from coursetools import lesson_paths

from ..test_lessons import lesson_param
from .conftest import ARTIFACTS

LESSONS = lesson_paths()

VIEWPORTS = [(1280, 720), (1920, 1080)]

# For each slide (leaf <section>): its index, its content size in slide pixels (reveal.js scales the whole slide, so
# scrollHeight/scrollWidth are in the same units as the configured width and height), and its first words.
MEASURE = """() => {
  const cfg = Reveal.getConfig();
  const out = [];
  const leaves = [...document.querySelectorAll('.reveal .slides section')].filter(s => !s.querySelector('section'));
  for (const s of leaves) {
    const i = Reveal.getIndices(s);
    Reveal.slide(i.h, i.v || 0);
    const words = (s.innerText || '').trim().replace(/\\s+/g, ' ').slice(0, 70);
    out.push({h: i.h, v: i.v || 0, height: s.scrollHeight, width: s.scrollWidth, words});
  }
  return {width: cfg.width, height: cfg.height, slides: out};
}"""


_DECKS: dict = {}


def deck_of(path, tmp_path_factory):
    """Lesson ``path`` executed in fast mode (cached in build/executed/fast/), exported as a deck; once per lesson."""
    from coursetools import BUILD_DIR
    from coursetools.execute import executed_lessons
    from coursetools.slides import export_slides

    if path not in _DECKS:
        executed = executed_lessons([path], BUILD_DIR / "executed", fast=True, log=lambda msg: None)
        [_DECKS[path]] = export_slides(executed, tmp_path_factory.mktemp(f"fit-{path.stem[:2]}"))
    return _DECKS[path]


def overflowing(page, deck) -> tuple[dict, list[dict]]:
    page.goto(deck.as_uri(), timeout=180_000)  # a deck is several MB of figures; a busy machine is slow to load it
    page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=120_000)
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=120_000)
    page.evaluate("MathJax.startup.promise")
    page.evaluate("Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
    measured = page.evaluate(MEASURE)
    tolerance = 2  # px: rounding
    bad = [s for s in measured["slides"] if s["height"] > measured["height"] + tolerance
           or s["width"] > measured["width"] + tolerance]
    return measured, bad


# Every lesson's slides must fit, a new lesson's included: lay it out (subslides for long code and figure cells, long
# text cells split at a paragraph, slide-output-only) before it lands.


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v[0]}x{v[1]}")
@pytest.mark.parametrize("path", [lesson_param(p) for p in LESSONS])
def test_every_slide_fits(path, viewport, chromium_context, tmp_path_factory):
    deck = deck_of(path, tmp_path_factory)
    page = chromium_context.new_page()
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    problems = []
    try:
        measured, bad = overflowing(page, deck)
        assert (measured["width"], measured["height"]) == (1280, 720), "decks are laid out for 16:9"
        assert len(measured["slides"]) > 5, f"{deck.name}: only {len(measured['slides'])} slides"
        for s in bad:
            page.evaluate("([h, v]) => Reveal.slide(h, v)", [s["h"], s["v"]])
            shot = ARTIFACTS / f"overflow-{deck.stem}-{s['h']}-{s['v']}-{viewport[0]}.png"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
            problems.append(f"{deck.name} slide {s['h'] + 1}.{s['v'] + 1}: content {s['width']}x{s['height']} "
                            f"on a {measured['width']}x{measured['height']} slide ({s['words']!r})")
    finally:
        page.close()
    assert not problems, "slides that do not fit:\n" + "\n".join(problems)


def test_fit_check_catches_an_overflowing_slide(chromium_context, tmp_path):
    """The measurement itself: a deck with one slide of 60 lines must be reported, a short one must not."""
    import nbformat

    from coursetools.slides import export_slides

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Short\n\nOne line.", metadata={"slideshow": {"slide_type": "slide"}}),
        nbformat.v4.new_markdown_cell("## Long\n\n" + "\n\n".join(f"line {i}" for i in range(60)),
                                      metadata={"slideshow": {"slide_type": "slide"}}),
    ])
    nbformat.write(nb, tmp_path / "99_probe.ipynb")
    [deck] = export_slides([tmp_path / "99_probe.ipynb"], tmp_path / "slides")
    page = chromium_context.new_page()
    page.set_viewport_size({"width": 1280, "height": 720})
    try:
        measured, bad = overflowing(page, deck)
    finally:
        page.close()
    assert [s["words"][:4].lower() for s in bad] == ["long"], bad  # the theme sets headings in capitals
    assert len(measured["slides"]) == 2

