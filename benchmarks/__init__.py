"""Thunderdome's benchmark suite: fidelity, capacity, accuracy, costs.

Invariant: every benchmark module runs alone (``python -m benchmarks.NAME``)
and exposes ``run(...) -> list[Figure]`` (see ``common.Figure``): measured
values with their goals and the command that reproduces them. ``python -m
benchmarks`` runs the quick set, each module in its own process.
"""
