"""Nodes of the training pipeline: decontaminated training text, trained embedded checkpoints.

Only the recipes some model role uses are trained (a fine-tuning recipe after its base); any
other configuration (a Hub model, a local checkpoint) makes this pipeline a no-op that reads
no text. The science is in :mod:`avalanche_kedro.measure.training`,
:mod:`avalanche_kedro.measure.trained` and :mod:`avalanche_kedro.measure.corpora`.
"""

from __future__ import annotations

import logging
from typing import Any

from ...core.errors import ConfigurationError
from ...core.paths import project_path
from ...measure.corpora import DECONTAMINATION_WORDS, decontaminate
from ...measure.forward import token_progress
from ...measure.trained import (
    ensure_trained_checkpoints,
    is_trained_recipe,
    reusable_record,
    trained_recipe,
)
from ...measure.windows import iter_text_records
from ...study.params import EmbeddedCheckpoints, ModelParams, RuntimeParams, WindowsParams

logger = logging.getLogger(__name__)

#: Word-run length of the decontamination (corpus A and B are the measured text).
SHINGLE_WORDS = DECONTAMINATION_WORDS


def recipes_in_use(
    embedded_checkpoints: EmbeddedCheckpoints | dict | None, models: dict, model_roles: list[str]
) -> list[str]:
    """Names of the trained recipes some role's checkpoint points at, bases first.

    ``models`` maps roles to :class:`ModelParams` (or their mappings): the whole ``models``
    block, whose entries Kedro already validated as ``params:models.<role>``."""
    specs = _recipes(embedded_checkpoints)
    by_path = {project_path(spec["path"]): name for name, spec in specs.items() if "path" in spec}
    used: list[str] = []
    for role in model_roles:
        checkpoint = ModelParams.coerce(models[role]).checkpoint if role in models else None
        name = by_path.get(project_path(str(checkpoint))) if checkpoint else None
        if name is None or not is_trained_recipe(specs[name]):
            continue
        base = specs[name].get("finetune_from")
        for needed in ([base] if base else []) + [name]:
            if needed not in used:
                used.append(needed)
    return used


def _recipes(embedded_checkpoints: EmbeddedCheckpoints | dict | None) -> dict[str, dict]:
    if embedded_checkpoints is None:
        return {}
    return EmbeddedCheckpoints.coerce(embedded_checkpoints).recipes()


def _summary(
    path: str, source: str, record: dict, dropped: int | None, trained_here: bool = False
) -> dict:
    """What ``embedded_models`` says about one trained recipe.

    ``dropped``: records removed by decontamination, None when the checkpoint was reused
    without reading the text; ``trained_here``: this run trained it (False when another run
    built it while this one waited for the build lock, or it was there already).
    """
    return {
        "path": str(path),
        "recipe_sha256": record["recipe_sha256"],
        "training_text": source,
        "training_text_sha256": record["training_text_sha256"],
        "training_records": record["training_records"],
        "records_dropped_by_decontamination": record.get("records_dropped", dropped),
        "reused": not trained_here,
        "steps": record["steps"],
        "final_step": record["final_step"],
        "log": record["log"],
    }


def _bar_callback(bar, steps: int):
    """Advance ``bar`` (tokens) by one step's tokens per update; show the step and the loss."""
    per_step = bar.total // steps

    def progress(step: int, loss: float, tokens_per_second: float) -> None:
        bar.update(per_step)
        bar.set_postfix_str(f"step {step}/{steps} loss {loss:.3f}", refresh=False)

    return progress


def train_embedded_models(
    corpus_A: Any,
    corpus_B: Any,
    training_text: Any,
    instruction_text: Any,
    embedded_checkpoints: EmbeddedCheckpoints | None,
    models: dict,
    model_roles: list[str],
    windows: WindowsParams,
    runtime: RuntimeParams,
) -> dict:
    """Train (or reuse) every embedded recipe in use; returns their training records by name.

    The training text of each recipe (``training_text`` or ``instruction_text``, the catalog
    datasets of that name) is first stripped of every record that shares an 8-word run with
    corpus A or corpus B, so no measured window was ever trained on.
    """
    names = recipes_in_use(embedded_checkpoints, models or {}, list(model_roles or []))
    if not names:
        return {"recipes": {}, "decontamination": None}
    sources = {"training_text": training_text, "instruction_text": instruction_text}
    specs = _recipes(embedded_checkpoints)
    recipes = {name: trained_recipe(name, specs) for name in names}
    for name, recipe in recipes.items():
        if recipe["training_text"] not in sources:
            raise ConfigurationError(
                f"embedded_checkpoints.{name}.training_text is '{recipe['training_text']}', "
                "which is not a training text of the catalog.",
                f"Use one of {sorted(sources)}.",
            )
    field = WindowsParams.coerce(windows).text_field
    # Checkpoints this Python built from the same recipes are reused without reading any text.
    reusable = {
        name: reusable_record(project_path(specs[name]["path"]), recipes[name]) for name in names
    }
    measured: list[str] | None = None
    texts: dict[str, tuple[list[str], int]] = {}
    built: dict[str, dict] = {}
    show = RuntimeParams.coerce(runtime).progress
    for name in names:
        recipe = recipes[name]
        source = recipe["training_text"]
        if reusable[name] is not None:
            built[name] = _summary(specs[name]["path"], source, reusable[name], None)
            continue
        if measured is None:
            measured = [*iter_text_records(corpus_A, field), *iter_text_records(corpus_B, field)]
        if source not in texts:
            texts[source] = decontaminate(
                iter_text_records(sources[source], field), measured, SHINGLE_WORDS
            )
        records, dropped = texts[source]
        base = recipe.get("finetune_from")
        settings = recipe["training"]
        bar = token_progress(
            settings["steps"] * settings["batch_size"] * settings["seq_len"],
            f"training {name}",
            enabled=show,
        )
        steps_run: list[int] = []  # training steps this run took (none: reused)
        advance = _bar_callback(bar, int(settings["steps"]))

        def progress(step: int, loss: float, rate: float, advance=advance, steps_run=steps_run):
            steps_run.append(step)
            advance(step, loss, rate)

        with bar:
            record = ensure_trained_checkpoints(
                project_path(specs[name]["path"]),
                recipe,
                records,
                base_directory=project_path(specs[base]["path"]) if base else None,
                progress=progress,
                notes={"records_dropped": dropped, "shingle_words": SHINGLE_WORDS},
            )
        built[name] = _summary(
            specs[name]["path"], source, record, dropped, trained_here=bool(steps_run)
        )
        logger.info(
            "Embedded model %s: %d steps, loss %.3f -> %.3f (%d training records, %d dropped as "
            "overlapping corpus A or B)",
            name,
            record["final_step"],
            record["log"]["loss_first"],
            record["log"]["loss_last"],
            record["training_records"],
            dropped,
        )
    return {
        "recipes": built,
        "decontamination": {"shingle_words": SHINGLE_WORDS, "measured": ["corpus_A", "corpus_B"]},
    }
