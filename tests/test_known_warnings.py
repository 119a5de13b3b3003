"""settings.py hides Kedro's OmegaConf deprecation warning on every entry point, and only it."""

from __future__ import annotations

import importlib
import warnings

import avalanche_kedro.settings as settings

KEDRO_MESSAGE = (
    "register_new_resolver() is deprecated and will be removed in a future release.\n"
    "Use register_resolver() instead."
)


def _shown(message: str, category: type[Warning]) -> list[str]:
    """The warnings Python shows for one ``warnings.warn`` under the filters now installed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # pytest's own filters out of the way
        warnings.simplefilter("always")  # every warning shows ...
        settings.ignore_known_kedro_warnings()  # ... but what importing settings.py hides
        warnings.warn(message, category, stacklevel=1)
    return [str(warning.message) for warning in caught]


def test_kedros_omegaconf_warning_is_hidden():
    assert _shown(KEDRO_MESSAGE, UserWarning) == []


def test_every_other_warning_still_shows():
    assert _shown("something else is deprecated", UserWarning) == ["something else is deprecated"]
    # the same text with another category is not Kedro's warning
    assert _shown(KEDRO_MESSAGE, DeprecationWarning) == [KEDRO_MESSAGE]


def test_the_kedro_cli_installs_the_same_filter():
    import avalanche_kedro.cli

    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        importlib.reload(avalanche_kedro.cli)  # the CLI module's import-time filter
        warnings.warn(KEDRO_MESSAGE, UserWarning, stacklevel=1)
        warnings.warn("another warning", UserWarning, stacklevel=1)
    assert [str(warning.message) for warning in caught] == ["another warning"]
