"""``make bench``: each ``bench_*.py`` module measures one thing against a baseline run in
the same process (and prints the ratio plus absolute figures). Run ``python -m benchmarks``.
"""
