"""Parameter blocks of the analysis: cascades, controls, g*, dataset B, ARC, ablations, lens."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator

from ._base import Adjacency, Block, Gain, Intervention, Replicates

Positive = Annotated[int, Field(ge=1)]


class CracklingParams(Block):
    """``cascades.crackling``: the SPEC §6 crackling-relation fit."""

    key: ClassVar[str] = "cascades.crackling"

    d_min: Positive = Field(3, description="shortest duration fitted: an integer >= 1")
    d_max: Positive = Field(64, description="longest duration fitted: an integer >= d_min")
    min_points: Annotated[int, Field(ge=2)] = Field(
        8, description="distinct durations needed: an integer >= 2"
    )
    max_ci_width: Gain = Field(0.5, description="quality gate on gamma's CI width: > 0")
    bootstrap_replicates: Replicates = 500

    @model_validator(mode="after")
    def _ordered(self):
        if self.d_max < self.d_min:
            raise ValueError(f"d_max ({self.d_max}) must be >= d_min ({self.d_min})")
        return self


class TailFitParams(Block):
    """``cascades.tail_fits``: the power-law tail fits."""

    key: ClassVar[str] = "cascades.tail_fits"

    min_tail_samples: Positive = Field(100, description="an integer >= 1")
    workers: Annotated[int, Field(ge=0)] = Field(
        0, description="processes for the fits: an integer >= 0 (0 = one per CPU)"
    )


class CascadesParams(Block):
    """``cascades``: SPEC §6 avalanches, crackling relation and tail fits."""

    key: ClassVar[str] = "cascades"

    adjacencies: Annotated[list[Adjacency], Field(min_length=1)] = Field(
        default_factory=lambda: ["ADJ_4N", "ADJ_8N"],
        description="a non-empty list of ADJ_4N and/or ADJ_8N",
    )
    crackling: CracklingParams = Field(default_factory=CracklingParams)
    tail_fits: TailFitParams = Field(default_factory=TailFitParams)

    @field_validator("adjacencies")
    @classmethod
    def _distinct(cls, value):
        if len(set(value)) != len(value):
            raise ValueError(f"the adjacencies must be distinct, got {value}")
        return value


class ControlsParams(Block):
    """``controls``: SPEC §7 nulls and the paired window bootstrap."""

    key: ClassVar[str] = "controls"

    bootstrap_replicates: Replicates = 500
    token_shuffle_at_gstar: bool = Field(True, description="true or false")


class GstarParams(Block):
    """``gstar``: SPEC §8 choice of g* from dataset A."""

    key: ClassVar[str] = "gstar"

    tie_tolerance: Annotated[float, Field(ge=0)] = Field(
        1.0e-12, description="|b_tot - 1| values this close tie: a number >= 0"
    )
    #: windows resampled (paired across gains) to decide whether g* beats every other gain
    bootstrap_replicates: Replicates = 500


class GeneralizationParams(Block):
    """``generalization``: dataset B at g = 1, every g* and these gains."""

    key: ClassVar[str] = "generalization"

    bootstrap_replicates: Replicates = 500
    perplexity_gains: list[Gain] = Field(
        default_factory=list, description="a list of gains > 0 from gain_grid"
    )


class ArcParams(Block):
    """``arc``: the ARC multiple-choice evaluation."""

    key: ClassVar[str] = "arc"

    bootstrap_replicates: Replicates = 500
    max_questions: Positive | None = Field(
        None, description="null (every question) or an integer >= 1"
    )


class AblationsParams(Block):
    """``ablations``: interventions compared at g = 1 and g*."""

    key: ClassVar[str] = "ablations"

    interventions: list[Intervention] = Field(
        default_factory=list,
        description="a list of ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_MID, MLP_BAND_LATE, "
        "MLP_GLOBAL",
    )
    bootstrap_replicates: Replicates = 500
    reuse_unchanged_layers: bool = Field(
        True,
        description="true or false: compute an ablation only from its first changed block and "
        "take the layers below from the g = 1 thresholds and rasters (bit-identical, less work)",
    )


class LensParams(Block):
    """``lens``: the logit lens next to the cascades (docs/lens.md)."""

    key: ClassVar[str] = "lens"

    enabled: bool = Field(False, description="true or false")
    top_k: Positive = Field(5, description="tokens listed per layer: an integer >= 1")
    bootstrap_replicates: Replicates = 500
    null_permutations: Positive = Field(200, description="an integer >= 1")
    adjacency: Adjacency = Field("ADJ_4N", description="ADJ_4N or ADJ_8N")
    max_windows: Annotated[int, Field(ge=2)] | None = Field(
        None, description="null (every analysis window) or an integer >= 2"
    )
    max_logit_elements: Positive | None = Field(
        None, description="null (the device's default) or an integer >= 1"
    )
    self_check_kl_tolerance: Gain | None = Field(
        None, description="null (1e-6 in fp32, 1e-2 in bf16/fp16) or a number > 0"
    )
    prompts: list[Annotated[str, Field(min_length=1, pattern=r"\S")]] | None = Field(
        default_factory=list, description="a list of non-empty strings ([] skips the view)"
    )


class ReplicationParams(Block):
    """``replication``: the control role of T08."""

    key: ClassVar[str] = "replication"

    control_role: str | None = Field("untrained", description="null or one of model_roles")


class TrajectoryParams(Block):
    """``trajectory``: the roles as one training series (T09)."""

    key: ClassVar[str] = "trajectory"

    enabled: bool = Field(False, description="true or false")
