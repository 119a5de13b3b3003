"""The run's save version as a dataset: how the report links the figures of its own run.

Every versioned dataset of one ``kedro run`` is saved under the same version folder, the
session's save version (``2026-12-01T03.02.50.777Z``): the report goes to
``08_reporting/report.md/<V>/report.md`` and figure F03 to
``08_reporting/figures/F03_BRANCHING_VS_GAIN/<V>/F03_BRANCHING_VS_GAIN/F03_BRANCHING_VS_GAIN.png``.
A node cannot see <V>, so the catalog entry ``run_save_version`` (this class) hands it over as
an input: Kedro gives every dataset whose class sets ``versioned = True`` the catalog's
``Version(load, save)`` when it creates the catalog, and :meth:`SaveVersionDataset.load`
returns its ``save`` part. It writes nothing and has no file, so nothing has to exist for it
and the Dask runner's shared-storage check (which looks at ``_filepath``) skips it.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError, Version


class SaveVersionDataset(AbstractDataset[None, str]):
    """Loads the save version of the catalog it belongs to (read-only)."""

    #: Kedro passes ``version=Version(load_version, save_version)`` to a class with this flag
    versioned = True

    def __init__(self, *, version: Version | None = None, metadata: dict[str, Any] | None = None):
        self._version = version
        self.metadata = metadata

    def load(self) -> str:
        if self._version is None or not self._version.save:
            raise DatasetError(
                "run_save_version has no save version: it is only known inside a Kedro run "
                "(or a catalog created with save_version=...)."
            )
        return str(self._version.save)

    def save(self, data: None) -> None:
        raise DatasetError("run_save_version is read-only: it is the run's save version.")

    def _exists(self) -> bool:
        return self._version is not None and bool(self._version.save)

    def _describe(self) -> dict[str, Any]:
        return {"save_version": self._version.save if self._version else None}
