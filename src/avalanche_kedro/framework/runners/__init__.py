"""Runners that execute the study outside the ``kedro run`` process.

``kedro run --runner avalanche_kedro.framework.runners.DaskRunner --runner-params address=tcp://host:8786``
runs every node as a task on a Dask cluster (see ``docs/scaling.md``).
"""

from .dask_runner import DaskRunner

__all__ = ["DaskRunner"]
