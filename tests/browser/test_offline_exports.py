"""Slides and site opened from disk in headless Chromium with the network cut: every request the page makes must be
a file (or data:) URL, reveal.js must start, MathJax must typeset, and the widget snapshot's figure must load.
Screenshots go to artifacts/browser/."""
from __future__ import annotations

import pytest


@pytest.fixture
def offline_page(chromium_context):
    """A page whose every request off the disk is recorded and refused."""
    remote = []

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            remote.append(url)
            r.abort()

    page = chromium_context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", route)
    yield page, remote, errors
    page.close()


def _typeset(page):
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    page.evaluate("MathJax.startup.promise")
    return page.locator("mjx-container").count()


def test_slides_present_offline(built_exports, offline_page, artifacts):
    page, remote, errors = offline_page
    deck = built_exports["decks"][0]
    page.goto(deck.as_uri())
    page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
    assert _typeset(page) > 20, "MathJax did not typeset lesson 01's formulas"
    assert page.evaluate("Reveal.getTotalSlides()") > 10
    # go to the slide with the first widget snapshot and look at it
    indices = page.evaluate("""() => {
        const s = document.querySelector('.flows-widget-snapshot').closest('section');
        return Reveal.getIndices(s); }""")
    page.evaluate("([h, v]) => Reveal.slide(h, v)", [indices["h"], indices.get("v") or 0])
    page.wait_for_timeout(600)
    img = page.locator(".flows-widget-snapshot img").first
    assert img.evaluate("img => img.complete && img.naturalWidth > 400")
    page.screenshot(path=str(artifacts / "slides-01-widget.png"))
    assert remote == [], f"the slides asked the network for {remote}"
    assert errors == [], errors


def test_site_reads_offline(built_exports, offline_page, artifacts):
    page, remote, errors = offline_page
    page.goto((built_exports["site"] / "lessons" / f"{built_exports['lessons'][0].stem}.html").as_uri())
    page.wait_for_load_state("load")
    assert _typeset(page) > 20, "MathJax did not typeset lesson 01's formulas"
    snapshot = page.locator(".flows-widget-snapshot").first
    snapshot.scroll_into_view_if_needed()
    assert snapshot.locator("img").first.evaluate("img => img.complete && img.naturalWidth > 400")
    snapshot.screenshot(path=str(artifacts / "site-01-widget.png"))
    assert remote == [], f"the site asked the network for {remote}"
    assert errors == [], errors
