"""The package layout rule of docs/design.md ("Package layout"), checked on the source itself.

Groups, lowest first: core < analysis, measure < evaluation < study < framework < tools,
pipelines < the Kedro entry modules (settings, pipeline_registry, cli). A module may import its own
group and any group below it, never one above; analysis and measure are siblings and do not
import each other. The science groups import no Kedro, and core and analysis no torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

SOURCE = PROJECT_ROOT / "src" / "avalanche_kedro"
TESTS = PROJECT_ROOT / "tests"
PACKAGE = "avalanche_kedro"

#: group -> the groups it may import (besides itself)
ALLOWED = {
    "core": set(),
    "analysis": {"core"},
    "measure": {"core"},
    "evaluation": {"core", "analysis", "measure"},
    "study": {"core", "analysis", "measure", "evaluation"},
    "framework": {"core", "analysis", "measure", "evaluation", "study"},
    "tools": {"core", "analysis", "measure", "evaluation", "study", "framework"},
    "pipelines": {"core", "analysis", "measure", "evaluation", "study", "framework"},
    "entry": {"core", "analysis", "measure", "evaluation", "study", "framework", "pipelines"},
}
SCIENCE = ("core", "analysis", "measure", "evaluation", "study")
MAX_LINES = 500


def _modules() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _group(dotted: str) -> str | None:
    parts = dotted.split(".")
    if len(parts) < 2:
        return None  # the package root: __version__ and the moved-module finder
    if parts[1] in ALLOWED:
        return parts[1]
    entries = ("settings", "pipeline_registry", "cli", "__main__")  # modules Kedro imports
    return "entry" if parts[1] in entries else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module imported by ``path`` (top level and inside functions), absolute names."""
    tree = ast.parse(path.read_text())
    dotted = _dotted(path)
    package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from . import lattice` imports a module too
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _is_module(dotted: str) -> bool:
    relative = Path(*dotted.split("."))
    base = SOURCE.parent / relative
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def test_every_module_is_in_a_group_or_is_a_kedro_entry_point():
    loose = [
        _dotted(p)
        for p in _modules()
        if _group(_dotted(p)) is None and _dotted(p) not in (PACKAGE, f"{PACKAGE}._moved")
    ]
    assert loose == [], f"modules outside every group (docs/design.md): {loose}"


def test_lower_groups_never_import_higher_ones():
    violations = []
    for path in _modules():
        own = _group(_dotted(path))
        if own is None:
            continue
        for line, module in _imports(path):
            if not module.startswith(PACKAGE + ".") or not _is_module(module):
                continue
            target = _group(module)
            if target is None or target == own:
                continue
            if target not in ALLOWED[own]:
                violations.append(f"{path.relative_to(SOURCE)}:{line} ({own}) imports {module}")
    assert violations == []


@pytest.mark.parametrize(
    ("groups", "forbidden"),
    [
        (SCIENCE, ("kedro", "kedro_datasets", "kedro_viz")),
        (("core", "analysis"), ("torch", "transformers", "tokenizers")),
    ],
)
def test_science_groups_import_no_framework(groups, forbidden):
    offenders = [
        f"{path.relative_to(SOURCE)}:{line} imports {module}"
        for path in _modules()
        if _group(_dotted(path)) in groups
        for line, module in _imports(path)
        if module.split(".")[0] in forbidden
    ]
    assert offenders == []


def test_no_module_is_much_over_500_lines():
    long = {
        str(p.relative_to(SOURCE)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_project_never_imports_an_old_flat_path():
    from avalanche_kedro._moved import MOVED_MODULES

    old = {f"{PACKAGE}.{name}" for name in MOVED_MODULES}
    offenders = []
    for path in [*_modules(), *TESTS.rglob("*.py")]:
        if path.name in ("_moved.py", "test_moved.py"):
            continue
        importer = path if path.is_relative_to(SOURCE) else None
        for line, module in _imports(path) if importer else _absolute_imports(path):
            if any(module == o or module.startswith(o + ".") for o in old):
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{line} {module}")
    assert offenders == []


def _absolute_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _expected_test_module(path: Path) -> Path | None:
    relative = path.relative_to(SOURCE)
    if path.name in ("__init__.py", "__main__.py"):
        # a package's own code is tested with its modules; pipelines are tested per package
        if relative.parts[0] == "pipelines" and len(relative.parts) == 3:
            return TESTS / "pipelines" / f"test_{relative.parts[1]}.py"
        return None
    if relative.parts[0] == "pipelines" and len(relative.parts) == 3:
        return None  # nodes.py / pipeline.py: covered by tests/pipelines/test_<pipeline>.py
    return TESTS / relative.parent / f"test_{path.stem.lstrip('_')}.py"


def test_tests_mirror_the_source_layout():
    missing = sorted(
        str(expected.relative_to(PROJECT_ROOT))
        for path in _modules()
        if (expected := _expected_test_module(path)) is not None and not expected.exists()
    )
    assert missing == [], "source modules without their test module: " + ", ".join(missing)
