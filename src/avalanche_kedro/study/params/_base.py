"""The base class of every parameter block and the constrained types they share."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...core.errors import ConfigurationError


class Coercible:
    """``Model.coerce(value)``: the model itself, or a mapping validated into it; a bad value is
    a :class:`ConfigurationError` naming the key and the allowed values (for nodes called
    outside ``kedro run``, e.g. from a notebook or a test, where Kedro validated nothing)."""

    #: the parameter key the block is read from (conf/<env>/parameters*.yml)
    key: ClassVar[str] = ""

    @classmethod
    def coerce(cls, value: Any):
        if isinstance(value, cls):
            return value
        try:
            return cls.model_validate(value)  # type: ignore[attr-defined]
        except ValidationError:
            from .explain import parameter_problems

            lines = parameter_problems({cls.key: value}, {cls.key: cls})
            raise ConfigurationError(
                "Invalid parameters:\n" + "\n".join(f"  - {line}" for line in lines),
                f"Correct {cls.key} in conf/<env>/parameters*.yml (conf/base lists every key "
                "with its default).",
            ) from None


class Block(Coercible, BaseModel):
    """A parameter block: unknown keys are errors, values are never re-assigned after a run
    starts (frozen), and every field carries the allowed values in its description."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def plain(self) -> dict:
        """The block as the plain mapping it was written as (keys the user set only)."""
        return self.model_dump(mode="python", exclude_unset=True)


SpikeDef = Literal["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"]
Adjacency = Literal["ADJ_4N", "ADJ_8N"]
Intervention = Literal[
    "MLP_GLOBAL", "ATTN_GLOBAL", "MLP_BAND_EARLY", "MLP_BAND_MID", "MLP_BAND_LATE"
]

# The literals repeat the ids of measure.thresholds.SPIKE_DEFS, analysis.lattice.ADJACENCIES and
# measure.gain.INTERVENTIONS (a test keeps them in step) so this module imports no torch.

Gain = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Replicates = Annotated[
    int, Field(ge=1, description="bootstrap replicates: an integer >= 1 (the paper uses 500)")
]


def as_plain(value):
    """``value`` with every parameter model turned back into the mapping or list it was written
    as (keys the user set only), e.g. Kedro's whole ``parameters`` for hashing and provenance."""
    if isinstance(value, BaseModel):
        # a RootModel (gain_grid, embedded_checkpoints) dumps as its root value
        return value.model_dump(mode="python", exclude_unset=True)
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(as_plain(v) for v in value)
    return value
