"""Sphinx configuration of the course site, built by ``./course site`` (flowlib/course/site.py).

The builder copies this folder to build/site-src/, adds the executed lessons under lessons/, the lecturer's guide
and MathJax under _static/, and runs Sphinx. Everything the pages load is local: the furo theme ships its own CSS
and JavaScript, MathJax comes from _static/, and widgets are already static snapshots.
"""
project = "Flows from Scratch"
author = "Flows from Scratch authors"
copyright = "the Flows from Scratch authors (MIT licence)"

extensions = ["myst_nb"]
# The lessons arrive executed (coursetools.execute runs them once for the slides and the site) or, with
# --no-execute, deliberately without outputs: MyST-NB must not run them again.
nb_execution_mode = "off"
nb_output_stderr = "remove"  # warnings and progress bars belong in a live session, not on the page
nb_ipywidgets_js = {}  # widgets are drawn as static snapshots; no widget JavaScript from a CDN
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"]

html_theme = "furo"
html_title = "Flows from Scratch"
html_static_path = ["_static"]
html_show_sourcelink = False
html_copy_source = False
# MathJax 3 from _static/mathjax (copied there by the builder), never from a CDN
mathjax_path = "mathjax/es5/tex-chtml-full.js"

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
