"""The lessons' interactive widgets: ``change_of_variables`` (lesson 01), ``matrix_deformation`` and
``local_linearization`` (lesson 02), ``layer_stepper`` (lesson 03). Lesson 04's coupling widgets live in
``flowlib_teaching.widgets.widgets_coupling``, lesson 05's image widgets in ``flowlib_teaching.widgets.widgets_images``, lesson 07's in
``flowlib_teaching.widgets.latents``. They all draw through ``flowlib_teaching.widgets.base`` (``FigureOutput``: one
figure shown in an ipywidgets.Image and redrawn in place, its text from cached glyphs (``textcache``); ``FigureWidget``: controls, that figure, a message line)."""
from flowlib_teaching.widgets.widgets1d import ChangeOfVariablesWidget, change_of_variables, map_branches
from flowlib_teaching.widgets.widgets2d import layer_stepper, local_linearization, matrix_deformation

__all__ = ["ChangeOfVariablesWidget", "change_of_variables", "map_branches", "layer_stepper", "local_linearization",
           "matrix_deformation"]
