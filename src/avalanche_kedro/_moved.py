"""Old import paths of the modules that moved into subpackages (issue 11), kept working.

Until version 0.2 the package was one flat folder (``avalanche_kedro.lattice``,
``avalanche_kedro.figures``, ...). Notebooks and configurations written against it keep
working: importing an old path returns the module at its new path (the same module object, so
monkeypatching and ``isinstance`` behave) and emits one :class:`FutureWarning` that names the
new path. Nothing in the project itself uses the old paths (``tests/integration/test_package_layout.py`` checks).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

PACKAGE = "avalanche_kedro"

#: old module path (relative to the package) -> new module path
MOVED_MODULES: dict[str, str] = {
    "errors": "core.errors",
    "seeds": "core.seeds",
    "threads": "core.threads",
    "paths": "core.paths",
    "lattice": "analysis.lattice",
    "nulls": "analysis.nulls",
    "bootstrap": "analysis.bootstrap",
    "scaling": "analysis.scaling",
    "windows": "measure.windows",
    "moments": "measure.moments",
    "thresholds": "measure.thresholds",
    "gain": "measure.gain",
    "adapters": "measure.adapters",
    "checkpoints": "measure.checkpoints",
    "forward": "measure.forward",
    "sweep": "measure.sweep",
    "rasters": "measure.rasters",
    "conditions": "measure.conditions",
    "gstar": "evaluation.gstar",
    "perplexity": "evaluation.perplexity",
    "arc": "evaluation.arc",
    "comparison": "evaluation.comparison",
    "provenance": "study.provenance",
    "replication": "study.replication",
    "tables": "study.tables",
    "schemas": "study.schemas",
    "figures": "study.figures",
    "report": "study.report",
    "datasets": "framework.datasets",
    "hooks": "framework.hooks",
    "runners": "framework.runners",
    "benchmark": "tools.benchmark",
}

_WARNED: set[str] = set()


def new_module_name(fullname: str) -> str | None:
    """The new dotted path of an old one (a moved module or anything inside a moved package)."""
    if not fullname.startswith(PACKAGE + "."):
        return None
    relative = fullname[len(PACKAGE) + 1 :]
    head, _, rest = relative.partition(".")
    if head not in MOVED_MODULES:
        return None
    return ".".join(part for part in (PACKAGE, MOVED_MODULES[head], rest) if part)


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path by importing the new one and returning that very module object."""

    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def create_module(self, spec) -> ModuleType:
        old_top = self.old.split(".")[1]
        if old_top not in _WARNED:
            _WARNED.add(old_top)
            warnings.warn(
                f"{PACKAGE}.{old_top} moved to {PACKAGE}.{MOVED_MODULES[old_top]}; import it "
                "from there (the old path is kept as an alias and will be removed in 0.3).",
                FutureWarning,
                stacklevel=2,
            )
        module = importlib.import_module(self.new)
        self._real_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the import system set __spec__ to the alias spec; the module keeps its own identity
        module.__spec__ = self._real_spec

    def get_code(self, fullname: str):
        """For ``python -m <old path>``: the code of the module at the new path."""
        spec = importlib.util.find_spec(self.new)
        return spec.loader.get_code(self.new)


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of :data:`MOVED_MODULES` (installed once by the package)."""

    def find_spec(self, fullname, path=None, target=None):
        new = new_module_name(fullname)
        if new is None:
            return None
        real = importlib.util.find_spec(new)
        if real is None:
            raise ImportError(
                f"{fullname} moved to {new}, which does not exist either; see docs/design.md "
                "(package layout) for where each module lives now.",
                name=fullname,
            )
        return importlib.util.spec_from_loader(
            fullname,
            _AliasLoader(fullname, new),
            is_package=real.submodule_search_locations is not None,
        )


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
