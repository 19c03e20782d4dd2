"""The teaching layer of "Flows from Scratch": widgets, plots, exercise checkers, 2D maps and the experiments the
lessons run. It imports ``flowlib`` (the maths) and is never imported by it. Needs the ``course`` extra
(matplotlib, ipywidgets, scikit-learn, JupyterLab): ``pip install -e ".[course]"``."""
