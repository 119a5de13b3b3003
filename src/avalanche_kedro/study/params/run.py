"""Parameter blocks of the per-model measurement: runtime, models, windows, calibration, events.

Each block is a pydantic model that Kedro builds from ``conf/<env>/parameters*.yml`` before
any node runs (a node's ``params:<block>`` argument annotated with the model), so an unknown
key, a wrong type or an out-of-range value stops the run with the key, the file and the
allowed values (:mod:`avalanche_kedro.study.params.explain`). Defaults live here, once.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, RootModel, field_validator, model_validator

from ...core import threads
from ._base import Block, Coercible, Gain, Intervention, SpikeDef

#: SPEC §3: the paper's grid {1, 2, 4, 8}e-5 at its d_ff = 18944, as expected events per site
#: r * d_ff; any model's target rates are these counts over its own d_ff.
PAPER_EVENTS_PER_SITE = (0.18944, 0.37888, 0.75776, 1.51552)
#: significant digits of a derived target rate (the paper's d_ff gives exactly 1e-5 ... 8e-5)
RATE_DIGITS = 3

Rate = Annotated[float, Field(gt=0, lt=1)]
Positive = Annotated[int, Field(ge=1)]


class RuntimeParams(Block):
    """``runtime``: where and how models run."""

    key: ClassVar[str] = "runtime"

    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="auto, cpu, mps, cuda or cuda:<index> (auto = cuda -> mps -> cpu)",
    )
    dtype: Literal["auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"] = Field(
        "auto", description="auto (bfloat16 on CUDA, float32 elsewhere) or a torch float dtype"
    )
    attn_implementation: str | None = Field(
        None, description="null (the model's default), eager, sdpa or flash_attention_2"
    )
    batch_size: Positive = Field(8, description="windows per forward pass: an integer >= 1")
    torch_threads: Positive | None = Field(
        None,
        description="null (torch's own default, about one per physical core) or torch's intra-op "
        "threads per process: an integer from 1 to this machine's cores",
    )
    progress: bool = Field(False, description="true or false (progress bars on stderr)")
    scratch_dir: str = Field(
        "data/02_intermediate/scratch", description="a folder for temporary raster files"
    )
    validate_g: Gain = Field(
        0.9, description="the g != 1 of the SPEC §2 validate step: a positive number, not 1"
    )

    @field_validator("validate_g")
    @classmethod
    def _not_one(cls, value: float) -> float:
        if value == 1.0:
            raise ValueError("validate_g must differ from 1 (g = 1 changes nothing)")
        return value

    @field_validator("torch_threads")
    @classmethod
    def _within_cores(cls, value: int | None) -> int | None:
        cores = threads.available_cores()  # looked up per call: tests patch it
        if value is not None and value > cores:
            raise ValueError(
                f"{value} threads exceed the {cores} cores this process may use (more threads "
                f"than cores only compete for them); set 1 to {cores}, or null for torch's default"
            )
        return value


class ModelParams(Block):
    """``models.<role>``: one model role's checkpoint."""

    key: ClassVar[str] = "model"

    checkpoint: str = Field(
        min_length=1, description="a local save_pretrained() directory or a Hub id (org/name)"
    )
    step: Annotated[int, Field(ge=0)] | Literal["final"] | None = Field(
        None, description="null, final or a training step >= 0 (embedded recipes, series)"
    )
    revision: str | None = Field(None, description="null or a Hub revision (branch, tag, sha)")
    trust_remote_code: bool = Field(False, description="true or false")
    embedded: dict | None = Field(
        None, description="null, or a recipe mapping that builds a tiny model at checkpoint"
    )

    def spec(self) -> dict:
        """The mapping the measure functions take (keys the user set, no defaults added)."""
        return self.plain()


class TrainingSettings(Block):
    """``embedded_checkpoints.<name>.training``: the recipe's optimizer settings (their
    defaults live in measure.training.TRAINING_DEFAULTS, which also checks them)."""

    key: ClassVar[str] = "training"

    steps: Positive | None = None
    batch_size: Positive | None = None
    seq_len: Annotated[int, Field(ge=2)] | None = None
    learning_rate: Gain | None = None
    min_learning_rate_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    warmup_steps: Annotated[int, Field(ge=0)] | None = None
    weight_decay: Annotated[float, Field(ge=0)] | None = None
    beta1: Annotated[float, Field(ge=0, lt=1)] | None = None
    beta2: Annotated[float, Field(ge=0, lt=1)] | None = None
    grad_clip: Gain | None = None
    checkpoints: Annotated[int, Field(ge=2)] | None = None


class RecipeParams(Block):
    """``embedded_checkpoints.<name>``: a checkpoint the project builds itself."""

    key: ClassVar[str] = "embedded_checkpoints.<name>"

    path: str = Field(min_length=1, description="the folder the recipe is built in")
    seed_name: str | None = None
    finetune_from: str | None = Field(None, description="null or another recipe's name")
    perturb_from: str | None = None
    perturbation_scale: Annotated[float, Field(ge=0)] | None = None
    tokenizer_vocab_size: Positive | None = None
    hidden_size: Positive | None = None
    intermediate_size: Positive | None = None
    num_hidden_layers: Positive | None = None
    num_attention_heads: Positive | None = None
    num_key_value_heads: Positive | None = None
    max_position_embeddings: Positive | None = None
    initializer_range: Gain | None = None
    rms_norm_eps: Gain | None = None
    rope_theta: Gain | None = None
    tie_word_embeddings: bool | None = None
    training_text: str | None = Field(None, description="the catalog dataset to train on")
    training: TrainingSettings | None = None


class EmbeddedCheckpoints(Coercible, RootModel[dict[str, RecipeParams]]):
    """a mapping of recipe name -> recipe (embedded_checkpoints)"""

    key: ClassVar[str] = "embedded_checkpoints"

    def recipes(self) -> dict[str, dict]:
        """Each recipe as the plain mapping it was written as (its hash is taken over it)."""
        return {name: recipe.plain() for name, recipe in self.root.items()}


class WindowsParams(Block):
    """``windows``: SPEC §1 windows and slices."""

    key: ClassVar[str] = "windows"

    seq_len: Annotated[int, Field(ge=2)] = Field(
        description="tokens per window: an integer >= 2, at most the model's context"
    )
    window_pool_factor: Positive = Field(
        10, description="windows read per window needed: an integer >= 1"
    )
    n_calibration: Positive = Field(description="calibration windows of dataset A (>= 1)")
    n_raster: Positive = Field(description="analysis windows of dataset A (>= 1)")
    n_eval_b: Positive = Field(description="windows of dataset B (>= 1)")
    text_field: str = Field("text", min_length=1, description="the text column of a corpus")


class CalibrationParams(Block):
    """``calibration``: SPEC §3 moments, spike definitions and target rates."""

    key: ClassVar[str] = "calibration"

    eps: Gain = Field(1.0e-6, description="sigma floor of the standardisation: a number > 0")
    tau0: Gain = Field(2.5, description="baseline threshold of the rate profile: a number > 0")
    spike_defs: list[SpikeDef] = Field(
        min_length=1,
        description="a non-empty list of SPIKE_ONE_SIDED_POS and/or SPIKE_TWO_SIDED_ABS",
    )
    target_rates: Literal["auto"] | Annotated[list[Rate], Field(min_length=1)] = Field(
        "auto",
        description="auto (expected_events_per_site / d_ff of each model) or a non-empty "
        "list of rates, each in (0, 1)",
    )
    expected_events_per_site: Annotated[list[Gain], Field(min_length=1)] = Field(
        list(PAPER_EVENTS_PER_SITE),
        description="a non-empty list of positive numbers r * d_ff (used when target_rates is "
        "auto)",
    )

    @field_validator("spike_defs", "target_rates", "expected_events_per_site")
    @classmethod
    def _distinct(cls, value):
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError(f"the entries must be distinct, got {value}")
        return value

    def rates_for(self, d_ff: int) -> list[float]:
        """The target rates of a model of MLP width ``d_ff``, in the order configured.

        An explicit ``target_rates`` list is used as given. ``auto`` gives ``e / d_ff`` for
        each ``expected_events_per_site`` entry ``e``, rounded to :data:`RATE_DIGITS`
        significant digits (so d_ff = 18944 gives the paper's 1e-5, 2e-5, 4e-5, 8e-5).
        """
        if self.target_rates != "auto":
            return [float(r) for r in self.target_rates]
        if int(d_ff) < 1:
            raise ValueError(f"d_ff must be a positive integer, got {d_ff!r}")
        rates = [float(f"{e / int(d_ff):.{RATE_DIGITS}g}") for e in self.expected_events_per_site]
        bad = [r for r in rates if not 0 < r < 1]
        if bad or len(set(rates)) != len(rates):
            raise ValueError(
                f"expected_events_per_site {self.expected_events_per_site} give the rates "
                f"{rates} at d_ff = {d_ff}; each must be in (0, 1) and distinct"
            )
        return rates


class RateMatchingParams(Block):
    """``rate_matching``: SPEC §4 tolerance on achieved rates."""

    key: ClassVar[str] = "rate_matching"

    rel_tol: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.05, description="relative tolerance: a number in (0, 1)"
    )


GainSpec = Literal["grid"] | Annotated[list[Gain], Field(min_length=1)]


class EventsParams(Block):
    """``events``: interventions and the token-shuffle null recorded with the rasters."""

    key: ClassVar[str] = "events"

    interventions: dict[Intervention, GainSpec] = Field(
        default_factory=lambda: {"MLP_GLOBAL": "grid"},
        description="intervention id (MLP_GLOBAL, ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_MID, "
        "MLP_BAND_LATE) -> grid or a list of gains > 0",
    )
    token_shuffle_gains: GainSpec = Field(
        default_factory=lambda: [1.0], description="grid or a non-empty list of gains > 0"
    )
    gain_blocks: Positive = Field(
        1, description="blocks of gains recorded by separate nodes: an integer >= 1"
    )


class GainGrid(Coercible, RootModel[Annotated[list[Gain], Field(min_length=1)]]):
    """a non-empty list of distinct gains > 0 that includes 1.0 (gain_grid, SPEC §8)"""

    key: ClassVar[str] = "gain_grid"

    @model_validator(mode="after")
    def _distinct_with_one(self):
        if len(set(self.root)) != len(self.root) or 1.0 not in self.root:
            raise ValueError(
                f"gain_grid must be distinct gains > 0 that include 1.0, got {self.root}"
            )
        return self

    def gains(self) -> list[float]:
        return [float(g) for g in self.root]
