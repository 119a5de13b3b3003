"""The project's Kedro context: typed-parameter errors that name the key, file and allowed values.

Kedro (>= 1.3) builds every ``params:<block>`` input annotated with a pydantic model when it
creates the catalog, before any node runs or any model loads, and raises
``ParameterValidationError`` with pydantic's text. This context catches it and raises
:class:`ParameterError` instead: one line per bad value with its dotted key, the file of the
active environment that set it (or ``--params``) and the values the key allows
(:func:`avalanche_kedro.study.params.parameter_problems`).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kedro.framework.context import KedroContext
from kedro.validation.exceptions import ParameterValidationError

from ..core.errors import ConfigurationError

FIX = (
    "Correct the values above in the files named (or in --params); every key, its default "
    "and its allowed values are listed in conf/base/parameters*.yml and docs/design.md "
    '("Typed parameters").'
)


VALIDATOR_LOGGER = "kedro.validation.parameter_validator"


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only CRITICAL records of logger ``name`` while the block runs."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


class ParameterError(ConfigurationError, ParameterValidationError):
    """A parameter block does not match its model; raised before any node runs."""


class AvalancheContext(KedroContext):
    """:class:`KedroContext` whose parameter validation errors say where and what to write."""

    def _get_validated_params(self) -> dict[str, Any]:
        try:
            # Kedro logs pydantic's raw text at ERROR before raising; the ParameterError below
            # says the same per key, with its file and allowed values, so the log stays quiet.
            with _quiet(VALIDATOR_LOGGER):
                return super()._get_validated_params()
        except ParameterError:
            raise
        except ParameterValidationError as exc:
            raise self._explained(exc) from exc

    def _explained(self, exc: ParameterValidationError) -> Exception:
        try:
            problems = explain_parameters(
                self.config_loader, self.env, self._requirements(), self._runtime_params
            )
        except Exception:  # the explanation must never hide Kedro's own message
            problems = []
        if not problems:
            return ParameterError(str(exc), FIX)
        return ParameterError(
            "Invalid parameters (checked before any model was loaded):\n"
            + "\n".join(f"  - {line}" for line in problems),
            FIX,
        )

    def _requirements(self) -> dict[str, type]:
        from kedro.framework.project import pipelines
        from kedro.validation.type_extractor import TypeExtractor

        names = self._pipelines_to_validate
        scoped = dict(pipelines) if names is None else {n: pipelines[n] for n in names}
        return TypeExtractor(scoped).extract_types_from_pipelines()


def explain_parameters(
    config_loader: Any,
    env: str | None,
    requirements: dict[str, type],
    runtime_params: dict[str, Any] | None = None,
) -> list[str]:
    """One line per invalid parameter of ``config_loader`` under ``requirements``."""
    from ..study.params import parameter_problems

    sources = _sources_of(config_loader, env, runtime_params)
    return parameter_problems(config_loader["parameters"], requirements, sources)


def _runtime_params(config_loader: Any, runtime_params: dict[str, Any] | None = None) -> dict:
    return dict(runtime_params or getattr(config_loader, "runtime_params", None) or {})


def _sources_of(config_loader: Any, env: str | None = None, runtime_params=None):
    """:func:`parameter_sources` for the base and run environments of ``config_loader``."""
    from ..study.params import parameter_sources

    base_env = getattr(config_loader, "base_env", None) or "base"
    run_env = (
        env
        or getattr(config_loader, "env", None)
        or getattr(config_loader, "default_run_env", None)
        or "local"
    )
    runtime = _runtime_params(config_loader, runtime_params)
    return parameter_sources(config_loader.conf_source, [base_env, run_env], runtime)


#: top-level parameter keys that are not blocks of study.params.BLOCKS (checked by the registry)
STRUCTURAL_KEYS = ("model_roles", "models")
#: blocks the pipeline registry reads to decide which nodes exist (events.gain_blocks,
#: lens.enabled, replication.control_role, trajectory.enabled): checked when pipelines are
#: registered, because a typo there would otherwise drop nodes whose parameters Kedro then
#: never validates
REGISTRY_BLOCKS = ("events", "lens", "replication", "trajectory")


def registry_parameters(config_loader: Any = None) -> dict[str, Any]:
    """The active parameters, once their top-level keys and :data:`REGISTRY_BLOCKS` are valid.

    Kedro validates only the blocks that registered nodes read, so a misspelt block name
    (``calibation:``) or a bad key in a block that decides which pipelines exist would
    otherwise be ignored silently. Raises :class:`ParameterError` naming the key, its file and
    the allowed keys; keys given with ``--params`` at the top level are runtime parameters
    (``conf/local_model`` reads them) and allowed.
    """
    from ..study.params import BLOCKS, parameter_problems
    from .active_config import active_config_loader

    loader = config_loader if config_loader is not None else active_config_loader()
    parameters = loader["parameters"]
    runtime = _runtime_params(loader)
    try:
        source_of = _sources_of(loader)
    except Exception:  # the check must never fail for want of a file name
        source_of = lambda key: None  # noqa: E731
    known = sorted({*BLOCKS, *STRUCTURAL_KEYS})
    lines = []
    for key in sorted(set(parameters) - set(known) - set(runtime)):
        close = difflib.get_close_matches(key, known, n=1)
        where = source_of(key)
        lines.append(
            f"{key}{f' (from {where})' if where else ''}: unknown parameter block"
            + (f" (did you mean {close[0]}?)" if close else "")
            + f"; allowed top-level keys: {', '.join(known)}"
        )
    present = {key: BLOCKS[key] for key in REGISTRY_BLOCKS if key in parameters}
    lines += parameter_problems(parameters, present, source_of)
    if lines:
        raise ParameterError(
            "Invalid parameters (checked before any model was loaded):\n"
            + "\n".join(f"  - {line}" for line in lines),
            FIX,
        )
    return parameters
