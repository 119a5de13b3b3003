"""Project settings (see https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from avalanche_kedro.framework.hooks import ActiveConfigHooks, InputCheckHooks, ProvenanceHooks

# Kedro calls hooks last-in-first-out: ActiveConfigHooks must see the context first, because
# the other hooks read parameters and pipelines (which makes Kedro register the pipelines).
HOOKS = (InputCheckHooks(), ProvenanceHooks(), ActiveConfigHooks())


def _per_site_rates(checkpoint, events_per_site):
    from avalanche_kedro.measure.checkpoints import rates_for_expected_events

    return rates_for_expected_events(str(checkpoint), list(events_per_site))


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Soft merge: an environment (paper, local) or `--params runtime.batch_size=16` changes only
    # the keys it names. Kedro's default replaces a whole top-level block, so with a non-base
    # environment `--params runtime.progress=false` would drop every other runtime setting.
    "merge_strategy": {"parameters": "soft"},
    # ${per_site_rates:<checkpoint>,<expected events per site>} -> target rates for that model's
    # d_ff (used by conf/local_model, so any local checkpoint gets sensible rates).
    "custom_resolvers": {"per_site_rates": _per_site_rates},
}
