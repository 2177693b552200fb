"""Benchmarks: ``python -m benchmarks.engine`` (backends, batching on/off) and
``python -m benchmarks.load`` (the whole local stack under HTTP load).

Results and how to read them: ``benchmarks/RESULTS.md``.
"""
