"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from avalanche_kedro.framework.context import AvalancheContext
from avalanche_kedro.framework.hooks import ActiveConfigHooks, InputCheckHooks, ProvenanceHooks
from avalanche_kedro.framework.interrupts import InterruptHooks

# Kedro calls hooks last-in-first-out: ActiveConfigHooks must see the context first, because
# the other hooks read parameters and pipelines (which makes Kedro register the pipelines).
HOOKS = (InterruptHooks(), InputCheckHooks(), ProvenanceHooks(), ActiveConfigHooks())

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
