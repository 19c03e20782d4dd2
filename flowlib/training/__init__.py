"""Training: the loop (``fit``, ``History``, callbacks), checkpoints, and the resumable image-training command
(``python -m flowlib.training NAME``)."""
from flowlib.training.loop import Callback, History, KeepBest, NonFiniteLossError, fit

__all__ = ["Callback", "History", "KeepBest", "NonFiniteLossError", "fit"]
