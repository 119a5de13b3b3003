"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

import warnings

from avalanche_kedro.framework.context import AvalancheContext
from avalanche_kedro.framework.hooks import (
    ActiveConfigHooks,
    InputCheckHooks,
    ProvenanceHooks,
    RemoteCodeHooks,
)
from avalanche_kedro.framework.interrupts import InterruptHooks
from avalanche_kedro.framework.lineage import LineageHooks
from avalanche_kedro.framework.threads import TorchThreadHooks

# Kedro 1.7's config loader calls OmegaConf's deprecated ``register_new_resolver`` whenever it
# is built (``kedro run``, ``%load_ext kedro.ipython``, ``KedroSession.create``): a warning for
# Kedro's maintainers, not for someone running the study.
_KEDRO_OMEGACONF_WARNING = r"register_new_resolver\(\) is deprecated"


def ignore_known_kedro_warnings() -> None:
    """Hide Kedro's own OmegaConf deprecation warning, that message and category only.

    Kedro imports this module before it builds the config loader on every entry point (CLI,
    IPython extension, notebooks, ``bootstrap_project``), so the filter is installed here; every
    other warning still shows.
    """
    warnings.filterwarnings("ignore", message=_KEDRO_OMEGACONF_WARNING, category=UserWarning)


ignore_known_kedro_warnings()

# Kedro calls hooks last-in-first-out: ActiveConfigHooks must see the context first, because
# the other hooks read parameters and pipelines (which makes Kedro register the pipelines).
# TorchThreadHooks orders itself (tryfirst/trylast): runtime.torch_threads is applied after the
# preflight, before each node (so the manifest records the count a node ran with) and undone
# after the run manifest is written. RemoteCodeHooks does the same for trust_remote_code.
# LineageHooks runs after InputCheckHooks (a missing input is named with its pipeline first),
# then verifies the saved inputs' content and parameters before any node runs.
HOOKS = (
    InterruptHooks(),
    LineageHooks(),
    InputCheckHooks(),
    ProvenanceHooks(),
    TorchThreadHooks(),
    RemoteCodeHooks(),
    ActiveConfigHooks(),
)

# Typed parameters (study.params): a bad value stops the run naming the key, file and allowed
# values, before any node runs (framework.context).
CONTEXT_CLASS = AvalancheContext


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Soft merge: an environment (paper, local) or `--params runtime.batch_size=16` changes only
    # the keys it names. Kedro's default replaces a whole top-level block, so with a non-base
    # environment `--params runtime.progress=false` would drop every other runtime setting.
    "merge_strategy": {"parameters": "soft"},
    # Target rates follow each model's d_ff in every environment (calibration.target_rates:
    # auto, resolved by study.params.CalibrationParams.rates_for from the loaded model).
}
