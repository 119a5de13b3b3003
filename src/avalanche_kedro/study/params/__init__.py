"""Typed parameter blocks: one pydantic model per ``params:<block>`` that the pipelines read.

Kedro builds each block from the active environment's ``parameters*.yml`` before any node runs
(the nodes' ``params:`` arguments are annotated with these models), so a typo, a wrong type or
an out-of-range value stops the run naming the key, the file and the allowed values. Kedro-free:
a notebook can validate a parameter mapping with ``CalibrationParams.model_validate(mapping)``.
"""

from ._base import as_plain
from .analysis import (
    AblationsParams,
    ArcParams,
    CascadesParams,
    ControlsParams,
    CracklingParams,
    GeneralizationParams,
    GstarParams,
    LensParams,
    ReplicationParams,
    TailFitParams,
    TrajectoryParams,
)
from .explain import parameter_problems, parameter_sources
from .run import (
    PAPER_EVENTS_PER_SITE,
    CalibrationParams,
    EmbeddedCheckpoints,
    EventsParams,
    GainGrid,
    ModelParams,
    RateMatchingParams,
    RecipeParams,
    RuntimeParams,
    WindowsParams,
)

#: top-level parameter key -> its model (``models`` holds one ModelParams per role)
BLOCKS = {
    "runtime": RuntimeParams,
    "windows": WindowsParams,
    "calibration": CalibrationParams,
    "rate_matching": RateMatchingParams,
    "events": EventsParams,
    "gain_grid": GainGrid,
    "embedded_checkpoints": EmbeddedCheckpoints,
    "cascades": CascadesParams,
    "controls": ControlsParams,
    "gstar": GstarParams,
    "generalization": GeneralizationParams,
    "arc": ArcParams,
    "ablations": AblationsParams,
    "lens": LensParams,
    "replication": ReplicationParams,
    "trajectory": TrajectoryParams,
}

__all__ = [
    "BLOCKS",
    "PAPER_EVENTS_PER_SITE",
    "AblationsParams",
    "ArcParams",
    "CalibrationParams",
    "CascadesParams",
    "ControlsParams",
    "CracklingParams",
    "EmbeddedCheckpoints",
    "EventsParams",
    "GainGrid",
    "GeneralizationParams",
    "GstarParams",
    "LensParams",
    "ModelParams",
    "RateMatchingParams",
    "RecipeParams",
    "ReplicationParams",
    "RuntimeParams",
    "TailFitParams",
    "TrajectoryParams",
    "WindowsParams",
    "as_plain",
    "parameter_problems",
    "parameter_sources",
]
