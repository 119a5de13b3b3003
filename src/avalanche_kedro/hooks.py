"""Project hooks."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl


class ActiveConfigHooks:
    """Hands the session's config loader to the pipeline registry.

    The model roles (one namespace per role) are read from the parameters of the *active*
    environment (``kedro run --env paper``, ``--params``), which only the session knows; Kedro
    registers pipelines after the context is created, so the registry can use this loader.
    """

    @hook_impl
    def after_context_created(self, context) -> None:
        from .paths import remember_project_root
        from .pipeline_registry import remember_config_loader

        remember_config_loader(context.config_loader)
        remember_project_root(context.project_path)
