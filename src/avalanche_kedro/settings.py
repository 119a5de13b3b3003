"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from avalanche_kedro.hooks import ActiveConfigHooks

HOOKS = (ActiveConfigHooks(),)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
