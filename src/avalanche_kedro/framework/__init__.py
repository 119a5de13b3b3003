"""Kedro plumbing: catalog datasets, project hooks (provenance manifest, input preflight,
active config), the Dask runner and the Airflow DAG template.

The only group besides :mod:`avalanche_kedro.pipelines` that imports Kedro; may import every
science group.
"""
