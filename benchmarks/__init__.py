"""On-demand benchmarks: ``python -m benchmarks --list`` names them, ``python -m benchmarks NAME`` runs one.

Every run ends with one JSON line per figure (see ``report``). Benchmarks are not tests: they measure, on a shared
and noisy machine, so they set the thread count, repeat, take medians, and compare side by side in one run.
"""
