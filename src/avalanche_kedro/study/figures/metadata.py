"""Figure ids and provenance: what each figure is, and the run, models, condition and config
hash it was drawn from.

Each figure carries its provenance as a plain dict in the attribute :data:`METADATA_ATTRIBUTE`
(:func:`figure_metadata`); :class:`avalanche_kedro.framework.datasets.FigureDataset` writes it
into the PNG text chunks and the PDF info dictionary. Tables and ``run_provenance`` must
describe the same run, otherwise drawing stops with an :class:`ArtifactError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ...core.errors import ArtifactError
from ...measure.gain import MLP_GLOBAL
from ...measure.sweep import NULL_NONE
from .frames import _condition_text

#: Figure ids (catalog names) and their one-line descriptions (the files' ``Title``).
FIGURES = {
    "F01_RASTER": "Event raster of one window with its avalanches coloured",
    "F02_RATE_MATCHING": "Achieved vs target event rate per layer across gains",
    "F03_BRANCHING_VS_GAIN": "Branching ratios b_time, b_depth, b_tot vs MLP gain",
    "F04_DELTA_B_VS_GAIN": "Branching above the within-layer permutation null vs MLP gain",
    "F05_GSTAR_SELECTION": "Selection of g*: |b_tot - 1| vs MLP gain",
    "F06_GENERALIZATION_B": "Dataset B at g = 1 vs g* (paired)",
    "F07_ARC_ACCURACY": "ARC multiple-choice accuracy at g = 1 and g*",
    "F08_SPIKE_DEF_ROBUSTNESS": "Spike-definition robustness: two-sided vs one-sided events",
    "F09_SUSCEPTIBILITY": "Susceptibility chi vs MLP gain",
    "F10_NULL_COMPARISON": "Null comparison: permutation vs circular shift vs token shuffle",
    "F11_ABLATIONS": "Ablations: MLP_GLOBAL vs ATTN_GLOBAL vs MLP layer bands",
    "F12_TRAINING_TRAJECTORY": "Cascade statistics, perplexity and ARC across training steps",
    "F13_LENS_DEPTH": "Logit-lens entropy, KL to the final layer and event density vs layer",
    "F14_COLLAPSE_VS_CASCADE": "Prediction collapse layer vs cascade depth per token",
}


#: The contact sheet (every figure of a run as a thumbnail): drawn from the figures, not from
#: the tables, so it is not one of :data:`FIGURES`.
CONTACT_SHEET = "CONTACT_SHEET"
#: Every figure id a figure function attaches -> its description (``FIGURES`` and the sheet).
FIGURE_TITLES = {
    **FIGURES,
    CONTACT_SHEET: "Contact sheet: every figure of the run as a thumbnail with its id",
}


#: Attribute of a Figure holding its provenance metadata (a ``dict[str, str]``).
METADATA_ATTRIBUTE = "avalanche_metadata"


#: Keys every figure's metadata has (checked by the dataset before anything is written).
REQUIRED_METADATA = ("figure_id", "run_id", "model_ids", "condition", "config_hash")


def figure_metadata(figure: Figure) -> dict[str, str] | None:
    """The provenance dict a figure function attached, or None."""
    return getattr(figure, METADATA_ATTRIBUTE, None)


def attach_metadata(figure: Figure, metadata: Mapping[str, Any]) -> Figure:
    """Attach provenance metadata (values turned into ASCII text) to ``figure``."""
    text = {str(k): _ascii(v) for k, v in metadata.items()}
    setattr(figure, METADATA_ATTRIBUTE, text)
    return figure


def _ascii(value: Any) -> str:
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, default=str)
    return value.encode("ascii", "backslashreplace").decode("ascii")


def _unique(table: pd.DataFrame, column: str, name: str) -> str | None:
    if column not in table:
        return None
    values = sorted({str(v) for v in table[column].dropna().unique()})
    if len(values) > 1:
        raise ArtifactError(
            f"{name} mixes several values of '{column}': {values}.",
            "Draw figures from tables of one run (kedro run --pipelines reporting).",
        )
    return values[0] if values else None


def _resolve_provenance(
    provenance: Mapping[str, Any] | None,
    tables: Sequence[tuple[str, pd.DataFrame]],
    roles: Sequence[str],
) -> dict[str, Any]:
    """Run id, config hash, code version and model ids, from run_provenance and the tables.

    The tables carry the provenance columns of the run that built them; when ``provenance``
    (the ``run_provenance`` dataset) is given too, both must describe the same run.
    """
    provenance = dict(provenance or {})
    resolved: dict[str, Any] = {}
    for key in ("run_id", "config_hash", "code_version"):
        value = provenance.get(key)
        for name, table in tables:
            from_table = _unique(table, key, name)
            if from_table is None:
                continue
            if value is not None and str(value) != from_table:
                raise ArtifactError(
                    f"{name} was built with {key} '{from_table}' but run_provenance says "
                    f"'{value}'.",
                    "Rebuild the tables and figures in one run: kedro run --pipelines reporting.",
                )
            value = from_table
        if value is None and key != "code_version":
            raise ArtifactError(
                f"No {key} for the figure: neither run_provenance nor its tables carry one.",
                "Pass the run_provenance dataset (describe_run) to the figure function.",
            )
        resolved[key] = value if value is not None else "unknown"
    models = provenance.get("models") or {}
    model_ids: dict[str, str] = {}
    for role in roles:
        model_id = (models.get(role) or {}).get("model_id")
        for name, table in tables:
            if "model_role" in table and "model_id" in table:
                ids = table.loc[table["model_role"] == role, "model_id"]
                if len(ids):
                    from_table = _unique(ids.to_frame(), "model_id", name)
                    if model_id is not None and model_id != from_table:
                        raise ArtifactError(
                            f"{name} names model '{from_table}' for role '{role}', "
                            f"run_provenance names '{model_id}'.",
                            "Rebuild the tables and figures in one run.",
                        )
                    model_id = from_table
        model_ids[role] = model_id or "unknown"
    resolved["model_ids"] = model_ids
    resolved["models"] = {
        role: {
            k: (models.get(role) or {}).get(k)
            for k in ("model_id", "revision", "content_sha256", "source")
            if (models.get(role) or {}).get(k) is not None
        }
        or {"model_id": model_ids[role]}
        for role in roles
    }
    return resolved


def _attach(
    figure: Figure,
    figure_id: str,
    condition: str,
    provenance: Mapping[str, Any] | None,
    tables: Sequence[tuple[str, pd.DataFrame]],
    roles: Sequence[str],
    sources: Sequence[str],
) -> Figure:
    info = _resolve_provenance(provenance, tables, roles)
    models_text = ", ".join(f"{role}:{mid}" for role, mid in info["model_ids"].items())
    from ... import __version__

    return attach_metadata(
        figure,
        {
            "Title": f"{figure_id}: {FIGURE_TITLES[figure_id]}",
            "Subject": f"{FIGURE_TITLES[figure_id]}. Models: {models_text}. Condition: {condition}",
            "Keywords": (
                f"run_id={info['run_id']}; config_hash={info['config_hash']}; "
                f"models={models_text}; condition={condition}"
            ),
            "Creator": f"avalanche_kedro {__version__} (code {info['code_version']})",
            "figure_id": figure_id,
            "run_id": info["run_id"],
            "model_ids": models_text,
            "models": info["models"],
            "condition": condition,
            "config_hash": info["config_hash"],
            "code_version": info["code_version"],
            "source_datasets": ", ".join(sources),
        },
    )


REAL_MLP_CONDITION = f"intervention_id={MLP_GLOBAL}; null_id={NULL_NONE}"


def _attach_t01(
    figure: Figure,
    figure_id: str,
    t01: pd.DataFrame,
    provenance: Mapping[str, Any] | None,
    roles: Sequence[str],
    condition: str = REAL_MLP_CONDITION,
) -> Figure:
    """:func:`_attach` for a figure drawn from T01 alone (dataset A)."""
    return _attach(
        figure,
        figure_id,
        _condition_text(t01, "A", condition),
        provenance,
        [("T01_SUMMARY", t01)],
        roles,
        ["T01_SUMMARY"],
    )
