"""The training pipeline: one node that trains every embedded recipe the model roles use."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from .nodes import train_embedded_models


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                train_embedded_models,
                inputs=[
                    "corpus_A",
                    "corpus_B",
                    "training_text",
                    "instruction_text",
                    "params:embedded_checkpoints",
                    "params:models",
                    "params:model_roles",
                    "params:windows",
                    "params:runtime",
                ],
                outputs="embedded_models",
                name="train_embedded_models",
                tags=["model", "training"],
            )
        ]
    )
