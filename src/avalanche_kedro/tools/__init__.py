"""Command-line tools beside the pipelines: the benchmarks that write JSON
(``python -m avalanche_kedro.tools.benchmark``, docs/performance.md).

May import every science group and the framework; nothing imports it.
"""
