"""avalanche_kedro: activation-event cascades inside large language models, as a Kedro project.

The package is layered (docs/design.md, "Package layout"): ``core`` < ``analysis`` and
``measure`` < ``evaluation`` < ``study`` < ``framework`` < ``tools`` and ``pipelines``; a
group imports only groups below it. Old flat import paths (``avalanche_kedro.lattice``)
still work, with a FutureWarning naming the new path (:mod:`avalanche_kedro._moved`).
"""

from ._moved import install as _install_moved_module_finder

__version__ = "0.1"

_install_moved_module_finder()
