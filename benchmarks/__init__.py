"""Benchmarks of the governor, run with ``make bench`` (``python -m benchmarks``).

Outside the test suite on purpose: the machines are shared and noisy, so every
target is a ratio measured in one run or a count, never a timed unit test.
"""
