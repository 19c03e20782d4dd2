"""The lessons' interactive widgets: ``change_of_variables`` (lesson 01), ``matrix_deformation`` and
``local_linearization`` (lesson 02), ``layer_stepper`` (lesson 03)."""
from flowlib_teaching.widgets.widgets1d import ChangeOfVariablesWidget, change_of_variables, map_branches
from flowlib_teaching.widgets.widgets2d import layer_stepper, local_linearization, matrix_deformation

__all__ = ["ChangeOfVariablesWidget", "change_of_variables", "map_branches", "layer_stepper", "local_linearization",
           "matrix_deformation"]
